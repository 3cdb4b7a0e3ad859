//! Exposition: from a snapshot of the store to the Prometheus text a scrape
//! gets. With `otlp`, the only module that uses `opentelemetry_sdk`.
//!
//! - `pipeline`: one config's pipeline: `remora_build_info` on an
//!   `SdkMeterProvider` read by remora's text reader, remora's other own
//!   series and the store's families written straight to text beside it
//!   (every instrument on a second provider for the OTLP push);
//! - `snapshot`: what one render reads of the store, under one lock;
//! - `exporter`: the meter provider as remora sets it up;
//! - `text`: Prometheus text from the SDK's collected data, remora's own
//!   series and the store's families, and the naming function of served
//!   families;
//! - `names`: the family names served for each instrument (computed with
//!   `text`'s naming function) and the config's rule names checked against them;
//! - `own`: remora's own instruments and build facts;
//! - `encode`: text encoding, merged with the pass-through families;
//! - `render`: the render thread and the latest render every scrape shares;
//! - `negotiate`: the format and escaping an `Accept` header asks for;
//! - `openmetrics`: OpenMetrics and escaped text 1.0.0 from the 0.0.4 render;
//! - `meta`: what those need to know of a family beyond 0.0.4 (UTF-8 name,
//!   unit, info and stateset, `_created`, dotted label keys);
//! - `escape`: names under the escaping schemes;

mod encode;
mod escape;
mod exporter;
mod meta;
mod names;
mod negotiate;
mod openmetrics;
mod own;
mod pipeline;
mod render;
mod snapshot;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_formats;
mod text;

#[cfg(test)]
pub(crate) use encode::write_exposition;
pub use encode::write_passthrough;
pub use names::{check_rule_names, served_as, served_names, ServedAs};
pub use negotiate::{choose, negotiate, Escaping, FormatPin, FormatPinError, Syntax, Variant};
pub use own::{own_specs, REVISION, RUSTC_VERSION, VERSION};
pub use pipeline::Pipeline;
pub use render::{render_once, render_variant, Latest, RenderError, Rendered, Renderer};
#[cfg(test)]
pub(crate) use text::{Own, OwnBlock};

/// Errors building or rendering the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum ExpositionError {
    #[error("cannot build the Prometheus exporter: {0}")]
    Exporter(#[source] opentelemetry_sdk::error::OTelSdkError),
    #[error("cannot collect the instruments: {0}")]
    Collect(#[source] opentelemetry_sdk::error::OTelSdkError),
}

/// The former name of [`ExpositionError`].
pub type TelemetryError = ExpositionError;
