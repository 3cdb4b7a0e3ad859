//! remora's integration tests, in one binary (one link of the crate instead
//! of one per file). Each module is one concern; shared helpers (a fake
//! target, remora in-process, the metric matcher) live in [`common`].
//!
//! To add a file: put `tests/it/NAME.rs` beside this one, add `mod NAME;`
//! below, and `use crate::common::{...};` in it for the helpers.
//! Run one module with `cargo test --test it NAME::`.

mod common;

mod auth_redirects;
mod cli;
mod e2e_prometheus;
mod explain;
mod exposition;
mod formats;
mod host_fixtures;
mod host_truth;
mod init;
mod limits;
mod memory;
mod otlp;
mod peers;
mod recipes;
mod reload;
mod rules;
mod sched;
mod server;
mod serving;
mod targets;
