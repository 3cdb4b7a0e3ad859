//! The value parsers of `parse:` rules, as the extraction engine names them.
//!
//! They live in the leaf module [`crate::units`], shared with the config
//! loader; this module only re-exports them under their old path.

pub use crate::units::{parse_bytes, parse_duration, parse_number, parse_percent, parse_timestamp};
