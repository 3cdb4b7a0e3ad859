//! The data every source hands to the exposition pipeline (a leaf: it
//! imports no other module of remora). `passthrough` holds the families of
//! `format: prometheus` targets, `explain` the explain record of a JSON
//! target's poll, `labels` the global labels every series gets.
//!
//! A source (a polled target, a host collector) declares the instruments it can
//! produce up front as [`InstrumentSpec`]s, and after each poll publishes the
//! latest values as [`Family`]s: one per instrument, each with its series.
//! A render writes these families from a snapshot of the store (the OTLP
//! push's callbacks read them too); neither does I/O.

use std::sync::Arc;

use opentelemetry::KeyValue;

pub mod explain;
pub mod labels;
pub mod passthrough;

/// How a value is aggregated and therefore how Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstrumentKind {
    /// A value that goes up and down (`# TYPE gauge`).
    Gauge,
    /// A cumulative, monotonic value the source already counts (`_total`, `# TYPE counter`).
    Counter,
    /// A cumulative sum that may go down (served as a gauge).
    UpDownCounter,
}

/// Everything needed to create one OpenTelemetry instrument.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstrumentSpec {
    /// OpenTelemetry instrument name, e.g. `system.memory.usage`.
    pub name: String,
    /// HELP text.
    pub description: String,
    /// UCUM unit (`s`, `By`, `1`, `{request}`), or empty.
    pub unit: String,
    /// Aggregation kind.
    pub kind: InstrumentKind,
}

impl InstrumentSpec {
    /// Shorthand constructor.
    pub fn new(name: &str, kind: InstrumentKind, unit: &str, description: &str) -> Self {
        InstrumentSpec {
            name: name.to_string(),
            description: description.to_string(),
            unit: unit.to_string(),
            kind,
        }
    }
}

/// One series: an attribute set and its latest value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Attributes (become labels, dots turned into underscores by the exporter).
    pub attributes: Vec<KeyValue>,
    /// The value.
    pub value: f64,
}

impl Series {
    /// Shorthand constructor.
    pub fn new(attributes: Vec<KeyValue>, value: f64) -> Self {
        Series { attributes, value }
    }
}

/// The latest series of one instrument from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Instrument name; must match an [`InstrumentSpec::name`] the source declared.
    pub name: Arc<str>,
    /// The series.
    pub series: Vec<Series>,
}
