//! Logs: logfmt by default, JSON with `--log.format=json`; each line has
//! `ts`, `level`, `msg` and the event's fields (`target`, `error`, ...).
//! Callers never pass secrets or response bodies as fields.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Default)]
struct Fields {
    msg: String,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.msg = value.to_string(),
            // `target` is a keyword of tracing's macros, so call sites say target_name.
            "target_name" => self.pairs.push(("target", value.to_string())),
            name => self.pairs.push((name, value.to_string())),
        }
    }
}

fn logfmt_value(out: &mut String, v: &str) {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control())
    {
        out.push_str(v);
    } else {
        out.push('"');
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

struct Formatter(LogFormat);

impl<S, N> FormatEvent<S, N> for Formatter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let mut line = String::with_capacity(128);
        match self.0 {
            LogFormat::Logfmt => {
                let _ = write!(line, "ts={ts} level={level} msg=");
                logfmt_value(&mut line, &fields.msg);
                for (k, v) in &fields.pairs {
                    let _ = write!(line, " {k}=");
                    logfmt_value(&mut line, v);
                }
            }
            LogFormat::Json => {
                let mut map = serde_json::Map::new();
                map.insert("ts".into(), ts.into());
                map.insert("level".into(), level.into());
                map.insert("msg".into(), fields.msg.into());
                for (k, v) in fields.pairs {
                    map.insert(k.into(), v.into());
                }
                line = serde_json::Value::Object(map).to_string();
            }
        }
        writeln!(w, "{line}")
    }
}

/// Installs the global log subscriber (logs are the one global: they belong to the process).
pub fn init(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("warn,remora={level}"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Formatter(format))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quoting() {
        let mut s = String::new();
        logfmt_value(&mut s, "plain");
        s.push(' ');
        logfmt_value(&mut s, "has space \"q\"");
        s.push(' ');
        logfmt_value(&mut s, "");
        assert_eq!(s, r#"plain "has space \"q\"" """#);
    }
}
