//! Loading `exporter.yaml`: YAML with positions, `${VAR}` expansion, and
//! validation into the checked [`Config`] of [`types`].

pub mod types;
pub use types::*;
