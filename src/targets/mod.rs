//! Polled targets: the HTTP client and poll loop, JSON extraction, and
//! pass-through of Prometheus-format targets.

pub mod client;
pub mod extract;
pub mod poller;
pub mod prom;
pub mod report;
pub mod value;
