//! remora: a sidecar metrics exporter.
//!
//! It polls an application's status endpoints and the host it runs on, keeps
//! what it finds as families of series named like OpenTelemetry instruments,
//! and serves them in Prometheus text format (and, with `otlp:`, pushes them
//! as OTLP). The binary in `main.rs` is a thin shell over [`cli::main`].
//!
//! The data path, with the type at each step: a poll ([`targets::poller`],
//! [`host`]) gives an `Outcome` or `CollectorReport`; it is published into a
//! [`store`] slot; a render of the [`exposition`] pipeline takes one snapshot
//! of the store and writes its families straight to text (only remora's own
//! `remora_*` instruments go through the OpenTelemetry SDK), merged with the
//! pass-through families; the render thread publishes a `Rendered` that
//! [`server`] hands to every `/metrics` scrape.
//!
//! Modules by concern: [`config`] (exporter.yaml), [`targets`] (polling and
//! extraction), [`host`] (host, container and process collectors and the
//! host loop), [`model`] (the data sources hand over), [`store`] (latest
//! state), [`readiness`] (the `/-/ready` latch), [`exposition`]
//! (pipeline, text, encoding, render thread), [`server`] (HTTP),
//! [`web`] (TLS and auth), [`instance`] (this process's token, against polling itself), [`fdlimit`] (open-file limit and target connection permits), [`otlp`] (OTLP push), [`app`] (lifecycle and reload), [`logging`],
//! [`cli`]. ARCHITECTURE.md at the repository root says where state lives and
//! what runs on which thread.

pub mod app;
pub mod cli;
pub mod config;
pub mod exposition;
pub mod fdlimit;
pub mod host;
pub mod init;
pub mod instance;
pub mod logging;
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
