//! Loading `exporter.yaml`: YAML with positions ([`yaml`]), `${VAR}`
//! expansion ([`mod@env`]), and validation into the checked [`Config`] of
//! [`types`].
//!
//! Two steps, as ripgrep does with its arguments: the raw YAML tree is read
//! into checked structures, and every problem found on the way is collected
//! so a user sees all of them at once as `FILE:LINE:COLUMN: key: problem`.
//!
//! Rooms: [`load`] has the entry points and the top of the document;
//! `decode` the decoder every key is read through (position, key path,
//! unknown keys); `global` the `server:`, `global:`, `resource:` and
//! `limits:` sections; `host` the `host:` section; `target` one target;
//! `rule` one metric rule (`aggregate` its `aggregate:` / `count_by:`); `otlp` the `otlp:` push; [`share`] rule lists shared between targets; [`limits`] the config's size and the self-scrape check; [`template`] label templates; `checks` the checks
//! across targets. Value parsers (sizes, CPU quantities) are in
//! [`crate::units`].

mod aggregate;
mod checks;
mod decode;
pub mod env;
mod global;
mod host;
pub mod limits;
pub mod load;
mod otlp;
mod rule;
pub mod share;
mod target;
pub mod template;
pub mod types;
pub mod yaml;

#[cfg(test)]
mod tests;

pub use load::{load_file, load_text, parse_str, process_env, ConfigError, LoadError};
pub use types::*;
