//! remora: a sidecar metrics exporter.
//!
//! It polls an application's status endpoints and the host it runs on, turns
//! what it finds into OpenTelemetry instruments and serves them in Prometheus
//! text format. The binary in `main.rs` is a thin shell over [`cli::main`].
//!
//! The data path, with the type at each step: a poll ([`targets::poller`],
//! [`host`]) gives an `Outcome` or `CollectorReport`; it is published into a
//! [`store`] slot; the observable callbacks of the [`exposition`] pipeline
//! read the store; the collected data is written as text and merged
//! with the pass-through families; the render thread publishes a `Rendered`
//! that [`server`] hands to every `/metrics` scrape.
//!
//! Modules by concern: [`config`] (exporter.yaml), [`targets`] (polling and
//! extraction), [`host`] (host, container and process collectors and the
//! host loop), [`model`] (the data sources hand over), [`store`] (latest
//! state), [`readiness`] (the `/-/ready` latch), [`exposition`]
//! (OpenTelemetry pipeline, encoding, render thread), [`server`] (HTTP),
//! [`web`] (TLS and auth), [`fdlimit`] (open-file limit and target connection permits), [`otlp`] (OTLP push), [`app`] (lifecycle and reload), [`logging`],
//! [`cli`]. ARCHITECTURE.md at the repository root says where state lives and
//! what runs on which thread.

pub mod app;
pub mod cli;
pub mod config;
pub mod exposition;
pub mod fdlimit;
pub mod host;
pub mod init;
pub mod logging;
pub mod mathlib;
pub mod memory;
pub mod model;
pub mod otlp;
pub mod readiness;
pub mod sched;
pub mod server;
pub mod store;
pub mod targets;
pub mod units;
pub mod web;

/// The former paths of [`exposition`]'s pipeline and render thread
/// (`telemetry::Pipeline`, `render::Renderer`), kept for existing callers.
pub use exposition as render;
#[doc(hidden)]
pub use exposition as telemetry;
