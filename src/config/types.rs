//! The checked configuration: what the rest of remora works with once
//! `exporter.yaml` has been parsed, expanded and validated.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json_path::JsonPath;

use super::yaml::Mark;
use crate::model::InstrumentKind;

/// The whole, validated exporter.yaml.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages and `/-/status`).
    pub path: PathBuf,
    pub server: ServerConfig,
    pub global: GlobalConfig,
    /// OpenTelemetry resource attributes (served as `target_info`); empty means no `target_info`.
    pub resource: BTreeMap<String, String>,
    pub limits: Limits,
    pub host: HostConfig,
    pub targets: Vec<std::sync::Arc<Target>>,
    /// `otlp:`, when set.
    pub otlp: Option<OtlpConfig>,
    /// Where each rule's `name:` is written, by (target, rule) index, for
    /// problems found after loading (served-name collisions).
    pub rule_names_at: BTreeMap<(usize, usize), Located>,
    /// Where each target's `url:` is written, by target index (the
    /// self-scrape check made again at start with the listen flag).
    pub target_urls_at: Vec<Located>,
}

/// A position in the config file and the key written there.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub mark: Mark,
    /// Dotted key path, e.g. `targets[0].metrics[2].name`.
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_path: String,
}

#[derive(Debug, Clone)]
pub struct GlobalConfig {
    pub interval: Duration,
    pub timeout: Duration,
    /// Constant labels on every series remora serves.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_series_per_target: usize,
    pub max_body_bytes: u64,
}

/// Host collector names, in the order of `host.collectors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectorName {
    Cpu,
    Memory,
    Load,
    Filesystem,
    Network,
    Uptime,
    Container,
}

impl CollectorName {
    pub const ALL: [CollectorName; 7] = [
        CollectorName::Cpu,
        CollectorName::Memory,
        CollectorName::Load,
        CollectorName::Filesystem,
        CollectorName::Network,
        CollectorName::Uptime,
        CollectorName::Container,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CollectorName::Cpu => "cpu",
            CollectorName::Memory => "memory",
            CollectorName::Load => "load",
            CollectorName::Filesystem => "filesystem",
            CollectorName::Network => "network",
            CollectorName::Uptime => "uptime",
            CollectorName::Container => "container",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub enabled: bool,
    /// Poll interval of the host collectors (`global.interval`).
    pub interval: Duration,
    pub collectors: Vec<CollectorName>,
    /// Mount points matching this are skipped.
    pub mount_points_exclude: Regex,
    /// File system types matching this are skipped (pseudo file systems by default).
    pub fs_types_exclude: Regex,
    /// Network devices matching this are skipped.
    pub devices_exclude: Regex,
    pub processes: Vec<ProcessMatcher>,
    pub app_container: Option<AppContainer>,
}

#[derive(Debug, Clone)]
pub struct ProcessMatcher {
    /// Value of the `process_name` label.
    pub name: String,
    /// Matched against the process's command line (arguments joined by spaces).
    pub cmdline: Regex,
}

#[derive(Debug, Clone)]
pub struct AppContainer {
    pub name: String,
    /// Bytes; `None` when the value was empty (no limit set).
    pub memory_limit: Option<f64>,
    /// Cores; `None` when the value was empty.
    pub cpu_limit: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Prometheus,
}

/// Which redirects a target's polls follow (`follow_redirects`). Configured
/// headers and credentials only ever go to the target's own origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FollowRedirects {
    /// Follow redirects within the target's origin (scheme, host, port); a
    /// redirect elsewhere fails the poll.
    #[default]
    SameOrigin,
    /// Follow any redirect; headers and credentials are sent to the target's
    /// origin only.
    Any,
    /// Never follow: the 3xx is the response (`accept_status` decides).
    None,
}

impl FollowRedirects {
    pub const NAMES: &'static str = "same_origin, any or none";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "same_origin" => Some(FollowRedirects::SameOrigin),
            "any" => Some(FollowRedirects::Any),
            "none" => Some(FollowRedirects::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    /// Re-read at each poll.
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
    pub method: Method,
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Re-read at each poll.
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    pub tls: TlsConfig,
    /// Statuses whose body is read; empty means any 2xx.
    pub accept_status: Vec<u16>,
    pub format: Format,
    pub follow_redirects: FollowRedirects,
    /// Constant labels of this target (the `target` label comes on top).
    pub labels: BTreeMap<String, String>,
    /// Shared with the targets of equal rules ([`super::share`]).
    pub metrics: Rules,
}

/// A target's metric rules, in the order written, behind an `Arc`:
/// cloning shares them, and the loader gives targets of equal rules one
/// list ([`super::share`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules(Arc<[MetricRule]>);

impl Rules {
    /// Whether `a` and `b` are the same shared list (not only equal).
    pub fn ptr_eq(a: &Rules, b: &Rules) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The shared list's address: equal for [`Rules::ptr_eq`] lists, a
    /// map key while they are held.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<MetricRule>() as usize
    }

    /// How many targets hold this list (for tests and figures).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl Deref for Rules {
    type Target = [MetricRule];

    fn deref(&self) -> &[MetricRule] {
        &self.0
    }
}

impl From<Vec<MetricRule>> for Rules {
    fn from(rules: Vec<MetricRule>) -> Self {
        Rules(rules.into())
    }
}

impl<'a> IntoIterator for &'a Rules {
    type Item = &'a MetricRule;
    type IntoIter = std::slice::Iter<'a, MetricRule>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// How a raw JSON value becomes a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    Auto,
    Duration,
    Timestamp,
    Bytes,
    /// `"12.5%"` and plain numbers as percent, giving a ratio (`0.125`).
    Percent,
    /// Now minus a timestamp (what [`Parse::Timestamp`] reads), in seconds.
    Age,
}

/// The state a stateset serves, set to 1, when the current value is none of
/// its `states` (listing it in `states` is a load error).
pub const OTHER_STATE: &str = "other";

/// The kind of a metric rule as written in the config.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Gauge,
    Counter,
    UpDownCounter,
    /// Value 1; the labels carry the strings.
    Info,
    /// One series per state, label `state`, 1 for the current one.
    StateSet(Vec<String>),
}

impl RuleKind {
    /// The OpenTelemetry instrument kind the rule is served as.
    pub fn instrument_kind(&self) -> InstrumentKind {
        match self {
            RuleKind::Counter => InstrumentKind::Counter,
            RuleKind::UpDownCounter => InstrumentKind::UpDownCounter,
            _ => InstrumentKind::Gauge,
        }
    }
}

/// One piece of a label template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text.
    Literal(String),
    /// `{$.json.path}` or `{@.rel.path}`: the first node matched (relative to the `each` node when set).
    Path(JsonPath),
    /// `{@key}`: the object key or array index of the current `each` node.
    Key,
    /// `{@key:N}`, N >= 1: the key of the node N levels out of a list `each:`.
    OuterKey(usize),
    /// `{@N$.path}`, N >= 1: the first node matched from the node N levels
    /// out of a list `each:`.
    OuterPath(usize, JsonPath),
}

impl TemplatePart {
    /// How many levels out of the innermost `each` node the part reads
    /// (0 for the node itself or literal text).
    pub fn levels_out(&self) -> usize {
        match self {
            TemplatePart::OuterKey(n) | TemplatePart::OuterPath(n, _) => *n,
            _ => 0,
        }
    }

    /// Whether the part reads the document (a key or a path).
    pub fn reads_node(&self) -> bool {
        !matches!(self, TemplatePart::Literal(_))
    }
}

/// A label value template: literal text mixed with `{JSONPath}` and `{@key}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub source: String,
    pub parts: Vec<TemplatePart>,
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    /// A JSONPath (relative to the `each` node when set).
    Path(JsonPath),
    /// A number literal.
    Const(f64),
}

/// One instrument produced by a rule (a rule with `values:` has several).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleValue {
    /// Full instrument name (`NAME` or `NAME.KEY`).
    pub name: String,
    pub source: ValueSource,
}

/// One `metrics:` entry, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRule {
    /// The name as written (for `remora_extraction_errors_total{metric}`).
    pub name: String,
    pub description: String,
    pub kind: RuleKind,
    pub unit: String,
    /// Optional iteration: one series per node matched (the first level of
    /// a list `each:`).
    pub each: Option<JsonPath>,
    /// The further levels of a list `each:`, outermost first: each is
    /// evaluated from every node the level before matched.
    pub each_inner: Vec<JsonPath>,
    /// One entry for `path:`, one per key for `values:`.
    pub values: Vec<RuleValue>,
    pub labels: Vec<(String, Template)>,
    pub scale: Option<f64>,
    pub parse: Parse,
    pub map: BTreeMap<String, f64>,
    pub optional: bool,
    /// `aggregate:` / `count_by:`: series over all the nodes the rule
    /// matches instead of one per node.
    pub aggregate: Option<Aggregate>,
}

/// How a rule with `aggregate:` or `count_by:` folds the nodes it matches
/// (its `each` nodes, or the nodes its `path` matches in each of them).
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// The number of nodes matched (0 when none).
    Count,
    /// The sum, least and greatest of their values (no series when none).
    Sum,
    Min,
    Max,
    /// One series per distinct value of the label `label` (an index in
    /// [`MetricRule::labels`]), its count of nodes; with `states`, every
    /// listed value is served (0 when absent) and the others count under
    /// [`OTHER_STATE`].
    CountBy {
        label: usize,
        states: Vec<String>,
    },
}

impl Aggregate {
    /// The name as written (`count_by` for [`Aggregate::CountBy`]).
    pub fn as_str(&self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::CountBy { .. } => "count_by",
        }
    }
}

/// `otlp:`: push everything remora serves to an OTLP/HTTP endpoint. Unset
/// keys fall back to the standard `OTEL_EXPORTER_OTLP_*` and
/// `OTEL_METRIC_EXPORT_INTERVAL` variables, then to their defaults.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Base URL (`/v1/metrics` is appended, as for `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub headers: BTreeMap<String, String>,
    /// `Some(true)` gzip, `Some(false)` none, `None` from the environment.
    pub gzip: Option<bool>,
    pub tls: TlsConfig,
}
