//! Polled targets: the HTTP poller and JSON extraction.

pub mod extract;
