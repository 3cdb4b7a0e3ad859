//! Prometheus text straight from the SDK's collected data
//! (`remora_build_info`) and from remora's other own series and the store's
//! families (handed in as [`Collected`] by `pipeline`), and the naming
//! function of served families
//! ([`served_name`], which `names` uses too).
//!
//! The pipeline's reader is the SDK's `ManualReader` (cumulative); a render
//! collects once and writes each family's text directly from the data
//! points. It follows `opentelemetry-prometheus` 0.33 with `prometheus`'s
//! `TextEncoder` (as remora set them up: no scope info, no resource labels on
//! series, `target_info` only with a resource) byte for byte, which the
//! test `text_matches_opentelemetry_prometheus` checks against both crates:
//!
//! - family names: the instrument name sanitised (`[a-zA-Z0-9_:]`, a leading
//!   digit gets `_`), the unit's suffix (`s` -> `_seconds`, `By` -> `_bytes`,
//!   `1` -> `_ratio`, `x/y` -> `_x_per_y`), `_total` for monotonic sums;
//! - the first instrument seen under a family name fixes its type and HELP for
//!   the life of the pipeline; a later one of another type is left out;
//! - label names: attribute keys with every character but `[a-zA-Z0-9:]`
//!   turned into `_`, sorted; keys that collide once sanitised are joined,
//!   their values joined with `;` in the order of the original keys;
//! - families sorted by name, series by number of labels then label values,
//!   families without series left out; values as Rust prints an `f64`.
//!
//! What it skips: one `MetricFamily` (and its label strings) per data point,
//! the registry's merge of those families, and the per-point `BTreeMap`s.
//! Histograms are not written: remora's instruments are all observable
//! gauges, counters and up-down counters.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use super::ExpositionError;
use crate::model::passthrough::Kind;

pub(super) const TARGET_INFO_NAME: &str = "target_info";
pub(super) const TARGET_INFO_HELP: &str = "Target metadata";

/// The pipeline's metric reader: collects on demand, cumulative. Cloning
/// shares the reader (one clone goes to the meter provider).
#[derive(Debug, Clone)]
pub(super) struct TextReader {
    inner: Arc<ReaderInner>,
}

#[derive(Debug)]
struct ReaderInner {
    reader: ManualReader,
    target_info: bool,
    /// The type and HELP of the first instrument seen under each family name.
    first: Mutex<HashMap<String, (Kind, String)>>,
}

impl MetricReader for TextReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.inner.reader.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.inner.reader.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.reader.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.reader.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, _kind: InstrumentKind) -> Temporality {
        Temporality::Cumulative
    }
}

/// The pipeline's families, already encoded (HELP, TYPE, samples) one
/// after the other in `text`, sorted by name.
#[derive(Debug, Default)]
pub(crate) struct Own {
    pub(crate) text: Vec<u8>,
    pub(crate) blocks: Vec<OwnBlock>,
}

/// One family of [`Own`]: its name, type and where its text is.
#[derive(Debug)]
pub(crate) struct OwnBlock {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) text: std::ops::Range<usize>,
}

/// One series: sanitised label names and values, and its value.
#[derive(Debug)]
pub(super) struct Point<'a> {
    pub(super) labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub(super) value: f64,
}

/// One family as collected: type, HELP and series (sorted by
/// [`TextReader::families`]), and sample lines already written in order.
#[derive(Debug)]
pub(super) struct Fam<'a> {
    pub(super) kind: Kind,
    pub(super) help: Cow<'a, str>,
    pub(super) points: Vec<Point<'a>>,
    pub(super) lines: Vec<u8>,
}

impl TextReader {
    /// A reader that writes `target_info` when the resource has attributes
    /// and `target_info` is true.
    pub(super) fn new(target_info: bool) -> Self {
        TextReader {
            inner: Arc::new(ReaderInner {
                reader: ManualReader::builder()
                    .with_temporality(Temporality::Cumulative)
                    .build(),
                target_info,
                first: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs every callback and collects the data points.
    pub(super) fn collect_now(&self) -> Result<ResourceMetrics, ExpositionError> {
        let mut rm = ResourceMetrics::default();
        self.inner
            .reader
            .collect(&mut rm)
            .map_err(ExpositionError::Collect)?;
        Ok(rm)
    }

    /// The families of `rm` and of `more` (instruments collected without
    /// the SDK, see `pipeline`) by name (sorted), each one's series sorted,
    /// families without series left out. `more` comes after the SDK's
    /// instruments, as if registered after them.
    pub(super) fn families<'a>(
        &self,
        rm: &'a ResourceMetrics,
        more: impl IntoIterator<Item = Collected<'a>>,
    ) -> BTreeMap<String, Fam<'a>> {
        let mut out: BTreeMap<String, Fam<'a>> = BTreeMap::new();
        if self.inner.target_info && !rm.resource().is_empty() {
            out.insert(
                TARGET_INFO_NAME.to_string(),
                Fam {
                    kind: Kind::Gauge,
                    help: Cow::Borrowed(TARGET_INFO_HELP),
                    points: vec![Point {
                        labels: labels(rm.resource().iter()),
                        value: 1.0,
                    }],
                    lines: Vec::new(),
                },
            );
        }
        let sdk = rm
            .scope_metrics()
            .flat_map(|sm| sm.metrics())
            .filter_map(collected);
        let mut first = self.inner.first.lock().unwrap_or_else(|e| e.into_inner());
        for c in sdk.chain(more) {
            let Collected {
                kind,
                name,
                help,
                mut points,
                mut lines,
            } = c;
            let help = match first.get(&name) {
                Some((k, _)) if *k != kind => continue,
                Some((_, h)) if h != help => Cow::Owned(h.clone()),
                Some(_) => Cow::Borrowed(help),
                None => {
                    first.insert(name.clone(), (kind, help.to_string()));
                    Cow::Borrowed(help)
                }
            };
            if points.is_empty() && lines.is_empty() {
                continue;
            }
            match out.get_mut(&name) {
                Some(fam) => {
                    fam.points.append(&mut points);
                    fam.lines.append(&mut lines);
                }
                None => {
                    out.insert(
                        name,
                        Fam {
                            kind,
                            help,
                            points,
                            lines,
                        },
                    );
                }
            }
        }
        drop(first);
        for fam in out.values_mut() {
            fam.points.sort_by(|a, b| order(&a.labels, &b.labels));
        }
        out
    }
}

/// Labels as [`labels`] gives them.
pub(super) type Labels<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The order of series in a family: by number of labels, then by label
/// values in the order of the (sorted) label names.
pub(super) fn order(a: &Labels<'_>, b: &Labels<'_>) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.1.cmp(&y.1))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

/// One instrument's collected data: its family's type and name, HELP and series.
#[derive(Debug)]
pub(super) struct Collected<'a> {
    pub(super) kind: Kind,
    pub(super) name: String,
    pub(super) help: &'a str,
    pub(super) points: Vec<Point<'a>>,
    /// Sample lines already written, in order (after `points` once sorted).
    pub(super) lines: Vec<u8>,
}

/// An SDK metric as [`Collected`] (`None` for what the exporter leaves out).
fn collected(m: &Metric) -> Option<Collected<'_>> {
    let (kind, name) = kind_and_name(m)?;
    let mut points = Vec::new();
    if let AggregatedMetrics::F64(data) = m.data() {
        match data {
            MetricData::Gauge(g) => points.extend(g.data_points().map(|dp| Point {
                labels: labels(dp.attributes().map(|kv| (&kv.key, &kv.value))),
                value: dp.value(),
            })),
            MetricData::Sum(s) => points.extend(s.data_points().map(|dp| Point {
                labels: labels(dp.attributes().map(|kv| (&kv.key, &kv.value))),
                value: dp.value(),
            })),
            _ => {}
        }
    }
    Some(Collected {
        kind,
        name,
        help: m.description(),
        points,
        lines: Vec::new(),
    })
}

/// Writes one family: HELP (when not empty), TYPE, one line per series.
pub(super) fn write_family(out: &mut Vec<u8>, name: &str, fam: &Fam<'_>) {
    if !fam.help.is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        escape(out, &fam.help, false);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(fam.kind.as_str().as_bytes());
    out.push(b'\n');
    for p in &fam.points {
        write_sample(out, name, &p.labels, p.value);
    }
    out.extend_from_slice(&fam.lines);
}

/// Writes one sample line.
pub(super) fn write_sample(out: &mut Vec<u8>, name: &str, labels: &Labels<'_>, value: f64) {
    out.extend_from_slice(name.as_bytes());
    let mut sep = b'{';
    for (k, v) in labels {
        out.push(sep);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"=\"");
        escape(out, v, true);
        out.push(b'"');
        sep = b',';
    }
    if !labels.is_empty() {
        out.push(b'}');
    }
    out.push(b' ');
    write_value(out, value);
    out.push(b'\n');
}

/// Writes `v` exactly as Rust's `Display` prints an `f64` (what the
/// exporter wrote: `5`, `-0`, `0.125`, `1000000000000000000000`, `NaN`):
/// whole numbers below 1e15 through `itoa`, the rest through `Display`.
/// (`zmij` is faster but picks another of two shortest forms now and then.)
pub(super) fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        if v == 0.0 && v.is_sign_negative() {
            out.extend_from_slice(b"-0");
        } else {
            // Whole and below 1e15: exact as an i64.
            out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
        }
        return;
    }
    let _ = write!(out, "{v}");
}

/// Backslash and newline escaped, and the double quote when `quote`.
fn escape(out: &mut Vec<u8>, s: &str, quote: bool) {
    let special = |b: &u8| *b == b'\\' || *b == b'\n' || (quote && *b == b'"');
    if !s.as_bytes().iter().any(special) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// The family type and name the exporter gives a collected instrument.
fn kind_and_name(m: &Metric) -> Option<(Kind, String)> {
    let kind = match m.data() {
        AggregatedMetrics::F64(d) => data_kind(d),
        AggregatedMetrics::I64(d) => data_kind(d),
        AggregatedMetrics::U64(d) => data_kind(d),
    }?;
    Some((kind, served_name(m.name(), m.unit(), kind)))
}

/// The family name an instrument of `name` and `unit` is served under
/// with type `kind`: [`family_name`], and `_total` for a counter. The
/// served names (`names`) are computed with it.
pub(super) fn served_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut out = family_name(name, unit);
    if kind == Kind::Counter {
        out.push_str("_total");
    }
    out
}

fn data_kind<T>(d: &MetricData<T>) -> Option<Kind> {
    match d {
        MetricData::Gauge(_) => Some(Kind::Gauge),
        MetricData::Sum(s) if s.is_monotonic() => Some(Kind::Counter),
        MetricData::Sum(_) => Some(Kind::Gauge),
        MetricData::Histogram(_) => Some(Kind::Histogram),
        MetricData::ExponentialHistogram(_) => None,
    }
}

/// The instrument name sanitised, with its unit's suffix (no `_total`).
pub(super) fn family_name(name: &str, unit: &str) -> String {
    let mut out = String::with_capacity(name.len() + 12);
    for (i, c) in name.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
            out.push(c);
        } else if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    if let Some(suffix) = unit_suffix(unit) {
        out.push('_');
        out.push_str(&suffix);
    }
    out
}

pub(super) fn unit_suffix(unit: &str) -> Option<Cow<'static, str>> {
    if unit.is_empty() {
        return None;
    }
    if let Some(u) = unit_word(unit) {
        return Some(Cow::Borrowed(u));
    }
    let (first, second) = unit.split_once('/')?;
    let per = per_word(second)?;
    let plain = ["1", "d", "h", "min", "s", "ms", "us", "ns"].contains(&first);
    match (plain, unit_word(first)) {
        (false, Some(u)) => Some(Cow::Owned(format!("{u}_per_{per}"))),
        _ => Some(Cow::Owned(format!("per_{per}"))),
    }
}

fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" | "B" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" | "KB" => "kilobytes",
        "MBy" | "MB" => "megabytes",
        "GBy" | "GB" => "gigabytes",
        "TBy" | "TB" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "ratio",
        "%" => "percent",
        _ => return None,
    })
}

fn per_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// A label name: every character but `[a-zA-Z0-9:]` turned into `_`.
fn label_name(key: &str) -> Cow<'_, str> {
    if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':') {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(
            key.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == ':' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
        )
    }
}

fn label_value(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_string()),
    }
}

/// Sanitised, sorted labels of an attribute set; keys equal once sanitised
/// are joined, values with `;` in the order of the original keys.
pub(super) fn labels<'a>(
    attrs: impl Iterator<Item = (&'a opentelemetry::Key, &'a Value)>,
) -> Labels<'a> {
    let mut out = Vec::new();
    labels_into(&mut out, attrs);
    out
}

/// [`labels`] into `plain` (cleared first), so one vector serves many series.
pub(super) fn labels_into<'a>(
    plain: &mut Labels<'a>,
    attrs: impl Iterator<Item = (&'a opentelemetry::Key, &'a Value)>,
) {
    plain.clear();
    let attrs = attrs.map(|(k, val)| (label_name(k.as_str()), k.as_str(), label_value(val)));
    plain.reserve(attrs.size_hint().0);
    let mut attrs = attrs.peekable();
    // The usual case: every key already a label name, so sorting and
    // deduplicating by key is all there is to do (no joins).
    while let Some((name, _, value)) = attrs.next_if(|(n, _, _)| matches!(n, Cow::Borrowed(_))) {
        plain.push((name, value));
    }
    if attrs.peek().is_none() {
        plain.sort_by(|a, b| a.0.cmp(&b.0));
        plain.dedup_by(|later, kept| later.0 == kept.0);
        return;
    }
    let mut v: Vec<(Cow<'a, str>, &'a str, Cow<'a, str>)> = plain
        .drain(..)
        .filter_map(|(name, value)| match name {
            // Every plain name is borrowed: its key as it was.
            Cow::Borrowed(key) => Some((name, key, value)),
            Cow::Owned(_) => None,
        })
        .chain(attrs)
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    // One key given twice (a series label and a global label of one name):
    // the first stays, as the SDK keeps it.
    v.dedup_by(|later, kept| later.1 == kept.1);
    for (name, _, value) in v {
        match plain.last_mut() {
            Some((last, joined)) if *last == name => {
                let j = joined.to_mut();
                j.push(';');
                j.push_str(&value);
            }
            _ => plain.push((name, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn display(v: f64) -> String {
        format!("{v}")
    }

    fn written(v: f64) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    /// `write_value` prints every value as `Display` does: whole numbers on
    /// both sides of 1e15, signed zeros, decimals of every magnitude,
    /// subnormals, random bit patterns, NaN and infinities.
    #[test]
    fn values_are_written_as_display_prints_them() {
        let mut fixed = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.125,
            1e15,
            1e15 - 1.0,
            -1e15 + 1.0,
            9007199254740992.0,
            1e21,
            1.5e-7,
            1e-5,
            1e16,
            123456.789,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            fixed.push(f64::from_bits(next()));
            let digits = (next() % 1_000_000_000) as f64;
            let scale = 10f64.powi((next() % 40) as i32 - 20);
            fixed.push(digits * scale);
            fixed.push(-((next() % 4_000_000_000_000_000) as f64));
        }
        for v in fixed {
            assert_eq!(written(v), display(v), "bits {:#x}", v.to_bits());
        }
    }
}
