//! Loading `exporter.yaml`: YAML with positions ([`yaml`]), `${VAR}` expansion,
//! and validation into the checked [`Config`] of [`types`] ([`load`]).
//!
//! Two steps, as ripgrep does with its arguments: the raw YAML tree is read
//! into checked structures, and every problem found on the way is collected
//! so a user sees all of them at once as `FILE:LINE:COLUMN: key: problem`.

pub mod load;
pub mod types;
pub mod yaml;

#[cfg(test)]
mod tests;

pub use load::{load_file, load_text, parse_str, process_env, ConfigError, LoadError};
pub use types::*;
