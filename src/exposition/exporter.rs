//! The meter provider as remora sets it up (remora's text reader or the
//! OTLP push's reader, per-instrument cardinality limits, the resource), and
//! the registration of one observable instrument.

use std::collections::BTreeMap;

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{Instrument, SdkMeterProvider, Stream};
use opentelemetry_sdk::Resource;

use super::text::TextReader;
use super::ExpositionError;
use crate::model::{InstrumentKind, InstrumentSpec};

/// Registers one observable instrument of `spec` with callback `cb`.
pub(super) fn register(
    meter: &Meter,
    spec: &InstrumentSpec,
    cb: impl Fn(&dyn AsyncInstrument<f64>) + Send + Sync + 'static,
) {
    let name = spec.name.clone();
    let desc = spec.description.clone();
    let unit = spec.unit.clone();
    match spec.kind {
        InstrumentKind::Gauge => {
            meter
                .f64_observable_gauge(name)
                .with_description(desc)
                .with_unit(unit)
                .with_callback(move |o| cb(o))
                .build();
        }
        InstrumentKind::Counter => {
            meter
                .f64_observable_counter(name)
                .with_description(desc)
                .with_unit(unit)
                .with_callback(move |o| cb(o))
                .build();
        }
        InstrumentKind::UpDownCounter => {
            meter
                .f64_observable_up_down_counter(name)
                .with_description(desc)
                .with_unit(unit)
                .with_callback(move |o| cb(o))
                .build();
        }
    }
}

/// The meter provider of a pipeline, read by `reader` (remora's text
/// reader, see `text`) or by `push` (the OTLP push).
///
/// `limits` gives instruments their cardinality limit by name; the others
/// get `default_limit` (the SDK sizes each instrument's table for its limit
/// up front).
pub(super) fn provider(
    resource: &BTreeMap<String, String>,
    limits: BTreeMap<String, usize>,
    default_limit: usize,
    reader: Option<TextReader>,
    push: Option<crate::otlp::Reader>,
) -> Result<SdkMeterProvider, ExpositionError> {
    let attrs = resource
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
    let mut builder = SdkMeterProvider::builder();
    if let Some(reader) = reader {
        builder = builder.with_reader(reader);
    }
    if let Some(reader) = push {
        builder = builder.with_reader(reader);
    }
    Ok(builder
        .with_view(move |i: &Instrument| {
            let limit = limits.get(i.name()).copied().unwrap_or(default_limit);
            Stream::builder()
                .with_cardinality_limit(limit.max(1))
                .build()
                .ok()
        })
        .with_resource(Resource::builder_empty().with_attributes(attrs).build())
        .build())
}
