//! remora: a sidecar metrics exporter.
//!
//! It polls an application's status endpoints and the host it runs on, turns
//! what it finds into OpenTelemetry instruments and serves them in Prometheus
//! text format. The binary in `main.rs` is a thin shell over [`cli::main`].
//!
//! Modules by concern: [`config`] (exporter.yaml), [`targets`] (polling and
//! extraction), [`host`] (host, container and process collectors),
//! [`store`] (latest state), [`telemetry`] (OpenTelemetry pipeline),
//! [`render`] (exposition cache), [`server`] (HTTP), [`web`] (TLS and auth),
//! [`app`] (lifecycle), [`logging`], [`cli`].

pub mod app;
pub mod cli;
pub mod config;
pub mod exposition;
pub mod host;
pub mod logging;
pub mod model;
pub mod readiness;
pub mod server;
pub mod store;
pub mod targets;
pub mod web;

/// The former paths of [`exposition`]'s pipeline and render thread
/// (`telemetry::Pipeline`, `render::Renderer`), kept for existing callers.
pub use exposition as render;
#[doc(hidden)]
pub use exposition as telemetry;
