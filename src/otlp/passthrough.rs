//! Pass-through families as OTLP metrics, following the OpenTelemetry
//! specification's Prometheus compatibility rules: a counter becomes a
//! monotonic cumulative sum, a gauge or an untyped family a gauge, a
//! histogram a cumulative histogram with its bounds (the `le` values
//! without `+Inf`, bucket counts de-cumulated), a summary a summary with
//! its quantiles; HELP is the description, labels are attributes. The
//! start time is unknown (text 0.0.4 has no `_created`) and left at 0; a
//! sample's own timestamp is kept, others get the time of the push.
//!
//! Families with one name from several targets become one metric.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, summary_data_point::ValueAtQuantile, AggregationTemporality,
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint,
};

use crate::model::passthrough::{Kind, PromFamily};
use crate::store::Inner;

/// The instrumentation scope of pass-through metrics.
pub const SCOPE: &str = "remora.passthrough";

/// One sample line: name, labels (unescaped), value, timestamp (ms).
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads a sample line as the pass-through writes it (`name{k="v",...}
/// value [timestamp]`); `None` for anything else.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim_end();
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"")?;
            let key = rest[..eq].trim_start_matches(',').to_string();
            let body = &rest[eq + 2..];
            let mut end = None;
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end?;
            labels.push((key, unescape(&body[..end])));
            rest = body[end + 1..]
                .strip_prefix(',')
                .unwrap_or(&body[end + 1..]);
        }
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next()? {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let timestamp_ms = fields.next().and_then(|t| t.parse().ok());
    Some(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

fn attrs(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.clone())),
            }),
            ..Default::default()
        })
        .collect()
}

fn time(s: &Sample, now: u64) -> u64 {
    s.timestamp_ms
        .and_then(|t| u64::try_from(t).ok())
        .map_or(now, |t| t.saturating_mul(1_000_000))
}

fn number(s: &Sample, now: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs(&s.labels),
        time_unix_nano: time(s, now),
        value: Some(number_data_point::Value::AsDouble(s.value)),
        ..Default::default()
    }
}

/// The labels without `drop` (the series a bucket or quantile belongs to).
fn without(labels: &[(String, String)], drop: &str) -> Vec<(String, String)> {
    labels.iter().filter(|(k, _)| k != drop).cloned().collect()
}

#[derive(Default)]
struct Group {
    /// (bound or quantile, value).
    points: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
    time: u64,
}

/// Groups histogram or summary samples by series: `split` is `le` or `quantile`.
fn groups(fam: &PromFamily, split: &str, now: u64) -> BTreeMap<Vec<(String, String)>, Group> {
    let mut out: BTreeMap<Vec<(String, String)>, Group> = BTreeMap::new();
    for s in fam.samples.lines().filter_map(parse_sample) {
        let g = out.entry(without(&s.labels, split)).or_default();
        g.time = g.time.max(time(&s, now));
        let suffix = s.name.strip_prefix(fam.name.as_str()).unwrap_or("");
        match suffix {
            "_sum" => g.sum = s.value,
            "_count" => g.count = s.value,
            _ => {
                let at = s.labels.iter().find(|(k, _)| k == split);
                let at = at.and_then(|(_, v)| match v.as_str() {
                    "+Inf" | "Inf" => Some(f64::INFINITY),
                    v => v.parse().ok(),
                });
                if let Some(at) = at {
                    g.points.push((at, s.value));
                }
            }
        }
    }
    for g in out.values_mut() {
        g.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn histogram(fam: &PromFamily, now: u64) -> Vec<HistogramDataPoint> {
    groups(fam, "le", now)
        .into_iter()
        .map(|(labels, g)| {
            let explicit_bounds: Vec<f64> = g
                .points
                .iter()
                .map(|p| p.0)
                .filter(|b| b.is_finite())
                .collect();
            let mut bucket_counts = Vec::with_capacity(g.points.len() + 1);
            let mut below = 0.0;
            for (_, cumulative) in &g.points {
                bucket_counts.push((cumulative - below).max(0.0) as u64);
                below = *cumulative;
            }
            if g.points.last().is_none_or(|p| p.0.is_finite()) {
                // No +Inf bucket written: the rest of the count is above the last bound.
                bucket_counts.push((g.count - below).max(0.0) as u64);
            }
            HistogramDataPoint {
                attributes: attrs(&labels),
                time_unix_nano: g.time,
                count: g.count.max(0.0) as u64,
                sum: Some(g.sum),
                bucket_counts,
                explicit_bounds,
                ..Default::default()
            }
        })
        .collect()
}

fn summary(fam: &PromFamily, now: u64) -> Vec<SummaryDataPoint> {
    groups(fam, "quantile", now)
        .into_iter()
        .map(|(labels, g)| SummaryDataPoint {
            attributes: attrs(&labels),
            time_unix_nano: g.time,
            count: g.count.max(0.0) as u64,
            sum: g.sum,
            quantile_values: g
                .points
                .iter()
                .map(|&(quantile, value)| ValueAtQuantile { quantile, value })
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// Adds `fam`'s points to `metric` (a new one when `None`).
fn add(metric: &mut Option<Metric>, fam: &PromFamily, now: u64) {
    let m = metric.get_or_insert_with(|| Metric {
        name: fam.name.clone(),
        description: fam.help.clone().unwrap_or_default(),
        data: Some(match fam.kind {
            Kind::Counter => Data::Sum(Sum {
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
                ..Default::default()
            }),
            Kind::Gauge | Kind::Untyped => Data::Gauge(Gauge::default()),
            Kind::Histogram => Data::Histogram(Histogram {
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                ..Default::default()
            }),
            Kind::Summary => Data::Summary(Summary::default()),
        }),
        ..Default::default()
    });
    let lines = || fam.samples.lines().filter_map(parse_sample);
    match &mut m.data {
        Some(Data::Sum(s)) => s.data_points.extend(lines().map(|s| number(&s, now))),
        Some(Data::Gauge(g)) => g.data_points.extend(lines().map(|s| number(&s, now))),
        Some(Data::Histogram(h)) => h.data_points.extend(histogram(fam, now)),
        Some(Data::Summary(s)) => s.data_points.extend(summary(fam, now)),
        _ => {}
    }
}

/// Every pass-through family in the store, as OTLP metrics.
pub fn metrics(inner: &Inner, now: u64) -> Vec<Metric> {
    let mut by_name: BTreeMap<(&str, &'static str), Option<Metric>> = BTreeMap::new();
    for t in inner.targets.values() {
        for fam in t.passthrough.iter().flat_map(|p| p.iter()) {
            add(
                by_name.entry((&fam.name, fam.kind.as_str())).or_default(),
                fam,
                now,
            );
        }
    }
    by_name.into_values().flatten().collect()
}

/// Appends the pass-through families to the request, as a scope of its
/// (first) resource.
pub fn append(request: &mut ExportMetricsServiceRequest, inner: &Inner) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let metrics = metrics(inner, now);
    if metrics.is_empty() {
        return;
    }
    if request.resource_metrics.is_empty() {
        request.resource_metrics.push(ResourceMetrics::default());
    }
    let scope = ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: SCOPE.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }),
        metrics,
        ..Default::default()
    };
    if let Some(rm) = request.resource_metrics.first_mut() {
        rm.scope_metrics.push(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(name: &str, kind: Kind, samples: &str) -> PromFamily {
        PromFamily {
            name: name.into(),
            help: Some("help".into()),
            kind,
            samples: samples.into(),
            openmetrics: None,
        }
    }

    #[test]
    fn parses_escaped_labels_and_timestamps() {
        let s =
            parse_sample("a_total{x=\"q\\\"\\n\\\\\",target=\"t\"} 1.5e3 1700000000000").unwrap();
        assert_eq!(s.name, "a_total");
        assert_eq!(
            s.labels,
            vec![
                ("x".into(), "q\"\n\\".into()),
                ("target".into(), "t".into())
            ]
        );
        assert_eq!(s.value, 1500.0);
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(parse_sample("b +Inf").unwrap().value, f64::INFINITY);
    }

    #[test]
    fn histogram_buckets_are_decumulated_with_finite_bounds() {
        let f = fam(
            "lat",
            Kind::Histogram,
            "lat_bucket{le=\"0.1\",t=\"a\"} 2\nlat_bucket{le=\"1\",t=\"a\"} 5\nlat_bucket{le=\"+Inf\",t=\"a\"} 7\nlat_sum{t=\"a\"} 9.5\nlat_count{t=\"a\"} 7\n",
        );
        let p = histogram(&f, 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].explicit_bounds, vec![0.1, 1.0]);
        assert_eq!(p[0].bucket_counts, vec![2, 3, 2]);
        assert_eq!((p[0].count, p[0].sum), (7, Some(9.5)));
    }

    #[test]
    fn summary_keeps_quantiles() {
        let f = fam(
            "rpc",
            Kind::Summary,
            "rpc{quantile=\"0.5\"} 0.2\nrpc{quantile=\"0.99\"} 0.9\nrpc_sum 12\nrpc_count 40\n",
        );
        let p = summary(&f, 1);
        assert_eq!(p[0].quantile_values.len(), 2);
        assert_eq!(p[0].quantile_values[1].value, 0.9);
        assert_eq!((p[0].count, p[0].sum), (40, 12.0));
    }
}
