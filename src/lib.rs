//! remora: a sidecar metrics exporter.
//!
//! It polls an application's status endpoints and the host it runs on, turns
//! what it finds into OpenTelemetry instruments and serves them in Prometheus
//! text format. The binary in `main.rs` is a thin shell over [`cli::main`].

pub mod config;
pub mod host;
pub mod model;
pub mod targets;
