//! Content negotiation of `/metrics`: which exposition format and name
//! escaping a scrape's `Accept` header asks for, and the `Content-Type` that
//! names the answer. Pure functions, no I/O.
//!
//! The formats, in remora's order of preference: OpenMetrics 1.0.0
//! (`application/openmetrics-text`, `version=1.0.0` or no version), the
//! Prometheus text format 1.0.0 (`text/plain;version=1.0.0`) and 0.0.4
//! (`text/plain;version=0.0.4`, `text/plain` without a version, `text/*`,
//! `*/*`). The highest `q` wins; equal `q`s go to the earlier format of that
//! order. For each format the most specific media range that matches it
//! gives its `q` (as RFC 9110 says), so `text/plain;version=0.0.4;q=0, */*`
//! refuses 0.0.4. `q=0` refuses; an unknown type or version is ignored; a
//! malformed part (no `/`, a `q` that is not a number from 0 to 1) is
//! skipped. OpenMetrics `version=0.0.1` is not offered by remora: a range
//! asking for it is ignored (every Prometheus that offers 0.0.1 offers 1.0.0
//! first). No `Accept` header, or nothing acceptable, is text 0.0.4, the
//! response remora gave before negotiation.
//!
//! The escaping comes from the `escaping=` parameter of the range that won:
//! `underscores` (also when absent or unknown), `allow-utf-8`, `dots`,
//! `values`. Text 0.0.4 has no escaping parameter and is always
//! `underscores`.

use std::fmt;
use std::str::FromStr;

/// The syntax of an exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Syntax {
    /// Prometheus text 0.0.4, what remora always served before negotiation.
    Text004,
    /// Prometheus text 1.0.0: 0.0.4 with quoted UTF-8 names.
    Text100,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

/// How names outside `[a-zA-Z_:][a-zA-Z0-9_:]*` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Escaping {
    /// Every other character becomes `_` (names as remora always served them).
    Underscores,
    /// Names kept as UTF-8, quoted where they are not legacy names.
    AllowUtf8,
    /// `.` -> `_dot_`, `_` -> `__`, any other character -> `_`.
    Dots,
    /// Legacy names unchanged; others `U__`, `_` -> `__`, others `_HEX_`.
    Values,
}

impl Escaping {
    /// Every escaping, in a fixed order.
    pub const ALL: [Escaping; 4] = [
        Escaping::Underscores,
        Escaping::AllowUtf8,
        Escaping::Dots,
        Escaping::Values,
    ];

    /// The `escaping=` parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Escaping::Underscores => "underscores",
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }

    /// The escaping an `escaping=` value names; unknown values are
    /// `underscores`, as the escaping-schemes document says.
    pub fn from_param(v: &str) -> Escaping {
        match v.trim().to_ascii_lowercase().as_str() {
            "allow-utf-8" => Escaping::AllowUtf8,
            "dots" => Escaping::Dots,
            "values" => Escaping::Values,
            _ => Escaping::Underscores,
        }
    }
}

/// One answer of `/metrics`: a syntax and an escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub syntax: Syntax,
    pub escaping: Escaping,
}

impl Variant {
    /// Text 0.0.4, underscores: the answer without negotiation.
    pub const TEXT_004: Variant = Variant {
        syntax: Syntax::Text004,
        escaping: Escaping::Underscores,
    };

    /// How many variants there are (see [`Variant::index`]).
    pub const COUNT: usize = 12;

    /// A dense index below [`Variant::COUNT`] (for per-variant slots).
    pub fn index(self) -> usize {
        let s = match self.syntax {
            Syntax::Text004 => 0,
            Syntax::Text100 => 1,
            Syntax::OpenMetrics => 2,
        };
        let e = match self.escaping {
            Escaping::Underscores => 0,
            Escaping::AllowUtf8 => 1,
            Escaping::Dots => 2,
            Escaping::Values => 3,
        };
        s * 4 + e
    }

    /// Every variant.
    pub fn all() -> impl Iterator<Item = Variant> {
        [Syntax::Text004, Syntax::Text100, Syntax::OpenMetrics]
            .into_iter()
            .flat_map(|syntax| Escaping::ALL.map(|escaping| Variant { syntax, escaping }))
    }

    /// Whether the body is text 0.0.4's (text 1.0.0 with underscores is
    /// byte for byte the 0.0.4 body; only the Content-Type differs).
    pub fn body_is_004(self) -> bool {
        self.syntax == Syntax::Text004
            || (self.syntax == Syntax::Text100 && self.escaping == Escaping::Underscores)
    }

    /// The variant whose body this one is served: itself with
    /// `--web.utf8-names`; else the `underscores` body of its syntax, for
    /// without it every name is the legacy one text 0.0.4 serves, a name
    /// every escaping leaves as it is (the Content-Type still names the
    /// escaping asked for).
    pub fn body(self, utf8_names: bool) -> Variant {
        if utf8_names {
            self
        } else {
            Variant {
                syntax: self.syntax,
                escaping: Escaping::Underscores,
            }
        }
    }

    /// The `Content-Type` of the answer.
    pub fn content_type(self) -> &'static str {
        use Escaping::*;
        use Syntax::*;
        match (self.syntax, self.escaping) {
            (Text004, _) => "text/plain; version=0.0.4; charset=utf-8",
            (Text100, Underscores) => {
                "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"
            }
            (Text100, AllowUtf8) => {
                "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
            }
            (Text100, Dots) => "text/plain; version=1.0.0; charset=utf-8; escaping=dots",
            (Text100, Values) => "text/plain; version=1.0.0; charset=utf-8; escaping=values",
            (OpenMetrics, Underscores) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
            }
            (OpenMetrics, AllowUtf8) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
            }
            (OpenMetrics, Dots) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=dots"
            }
            (OpenMetrics, Values) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=values"
            }
        }
    }
}

/// `--web.exposition-format`: negotiate, or one format whatever the scraper asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatPin {
    #[default]
    Negotiate,
    OpenMetrics,
    Text100,
    Text004,
}

/// A `--web.exposition-format` value that is none of the four.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown exposition format {0:?} (expected negotiate, openmetrics, text-1.0.0 or text-0.0.4)"
)]
pub struct FormatPinError(String);

impl FromStr for FormatPin {
    type Err = FormatPinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "negotiate" => FormatPin::Negotiate,
            "openmetrics" => FormatPin::OpenMetrics,
            "text-1.0.0" => FormatPin::Text100,
            "text-0.0.4" => FormatPin::Text004,
            other => return Err(FormatPinError(other.to_string())),
        })
    }
}

impl fmt::Display for FormatPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatPin::Negotiate => "negotiate",
            FormatPin::OpenMetrics => "openmetrics",
            FormatPin::Text100 => "text-1.0.0",
            FormatPin::Text004 => "text-0.0.4",
        })
    }
}

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
struct Range<'a> {
    kind: &'a str,
    sub: &'a str,
    version: Option<&'a str>,
    escaping: Option<&'a str>,
    q: f32,
}

/// The media ranges of `accept`; malformed parts skipped.
fn ranges(accept: &str) -> Vec<Range<'_>> {
    let mut out = Vec::new();
    'parts: for part in accept.split(',') {
        let mut params = part.split(';');
        let Some((kind, sub)) = params.next().and_then(|m| m.trim().split_once('/')) else {
            continue;
        };
        let (kind, sub) = (kind.trim(), sub.trim());
        if kind.is_empty() || sub.is_empty() {
            continue;
        }
        let mut r = Range {
            kind,
            sub,
            version: None,
            escaping: None,
            q: 1.0,
        };
        for p in params {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => match v.parse::<f32>() {
                    Ok(q) if (0.0..=1.0).contains(&q) => r.q = q,
                    _ => continue 'parts,
                },
                "version" => r.version = Some(v),
                "escaping" => r.escaping = Some(v),
                _ => {}
            }
        }
        out.push(r);
    }
    out
}

/// How specifically `r` matches `syntax` (higher is more specific), `None`
/// when it does not.
fn matches(r: &Range<'_>, syntax: Syntax) -> Option<u8> {
    let (kind, sub) = match syntax {
        Syntax::OpenMetrics => ("application", "openmetrics-text"),
        Syntax::Text100 | Syntax::Text004 => ("text", "plain"),
    };
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if r.kind == "*" && r.sub == "*" {
        // `*/*` stands for the default format only: a wildcard does not
        // opt a scraper into a format it did not name.
        return (syntax == Syntax::Text004).then_some(0);
    }
    if !eq(r.kind, kind) {
        return None;
    }
    if r.sub == "*" {
        return (syntax != Syntax::Text100).then_some(1);
    }
    if !eq(r.sub, sub) {
        return None;
    }
    match (syntax, r.version) {
        (Syntax::OpenMetrics, None) | (Syntax::Text004, None) => Some(2),
        (Syntax::OpenMetrics, Some("1.0.0"))
        | (Syntax::Text100, Some("1.0.0"))
        | (Syntax::Text004, Some("0.0.4")) => Some(3),
        _ => None,
    }
}

/// The variant an `Accept` header (absent: `None`) asks for.
pub fn negotiate(accept: Option<&str>) -> Variant {
    let Some(accept) = accept else {
        return Variant::TEXT_004;
    };
    let ranges = ranges(accept);
    let mut best: Option<(f32, Variant)> = None;
    for syntax in [Syntax::OpenMetrics, Syntax::Text100, Syntax::Text004] {
        // The most specific matching range decides (the first of equals).
        let mut decide: Option<(u8, &Range<'_>)> = None;
        for r in &ranges {
            if let Some(s) = matches(r, syntax) {
                if decide.is_none_or(|(d, _)| s > d) {
                    decide = Some((s, r));
                }
            }
        }
        let Some((_, r)) = decide else { continue };
        if r.q <= 0.0 || best.is_some_and(|(q, _)| r.q <= q) {
            continue;
        }
        let escaping = match syntax {
            Syntax::Text004 => Escaping::Underscores,
            _ => r
                .escaping
                .map(Escaping::from_param)
                .unwrap_or(Escaping::Underscores),
        };
        best = Some((r.q, Variant { syntax, escaping }));
    }
    best.map(|(_, v)| v).unwrap_or(Variant::TEXT_004)
}

/// The variant served: negotiated, or the pinned syntax (with the escaping
/// the `Accept` header asks for, when the pinned syntax takes one).
pub fn choose(accept: Option<&str>, pin: FormatPin) -> Variant {
    let syntax = match pin {
        FormatPin::Negotiate => return negotiate(accept),
        FormatPin::OpenMetrics => Syntax::OpenMetrics,
        FormatPin::Text100 => Syntax::Text100,
        FormatPin::Text004 => return Variant::TEXT_004,
    };
    // The escaping of the most preferred range that names one.
    let escaping = accept
        .map(ranges)
        .unwrap_or_default()
        .iter()
        .filter(|r| r.q > 0.0)
        .filter_map(|r| r.escaping.map(|e| (r.q, Escaping::from_param(e))))
        .fold(None::<(f32, Escaping)>, |best, (q, e)| match best {
            Some((bq, _)) if bq >= q => best,
            _ => Some((q, e)),
        })
        .map(|(_, e)| e)
        .unwrap_or(Escaping::Underscores);
    Variant { syntax, escaping }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROM3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    const PROM2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    fn v(syntax: Syntax, escaping: Escaping) -> Variant {
        Variant { syntax, escaping }
    }

    #[test]
    fn prometheus_3_gets_openmetrics_with_utf8_names() {
        let got = negotiate(Some(PROM3));
        assert_eq!(got, v(Syntax::OpenMetrics, Escaping::AllowUtf8));
        assert_eq!(
            got.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
        );
    }

    #[test]
    fn prometheus_2_gets_openmetrics_with_underscores() {
        let got = negotiate(Some(PROM2));
        assert_eq!(got, v(Syntax::OpenMetrics, Escaping::Underscores));
        assert_eq!(
            got.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
        );
    }

    #[test]
    fn curl_and_no_header_get_text_004() {
        for accept in [
            None,
            Some("*/*"),
            Some(""),
            Some("text/*"),
            Some("text/plain"),
        ] {
            let got = negotiate(accept);
            assert_eq!(got, Variant::TEXT_004, "{accept:?}");
            assert_eq!(
                got.content_type(),
                "text/plain; version=0.0.4; charset=utf-8"
            );
        }
    }

    #[test]
    fn q_values_decide_and_ties_follow_the_order() {
        let cases = [
            // Higher q wins whatever the order.
            (
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5",
                Variant::TEXT_004,
            ),
            (
                "text/plain;version=1.0.0;q=0.9,application/openmetrics-text;q=0.5",
                v(Syntax::Text100, Escaping::Underscores),
            ),
            // Ties: OpenMetrics, then text 1.0.0, then 0.0.4.
            (
                "text/plain;version=0.0.4,text/plain;version=1.0.0,application/openmetrics-text",
                v(Syntax::OpenMetrics, Escaping::Underscores),
            ),
            (
                "text/plain;version=0.0.4;q=0.5,text/plain;version=1.0.0;q=0.5",
                v(Syntax::Text100, Escaping::Underscores),
            ),
            // q=0 refuses, even beside a wildcard.
            ("application/openmetrics-text;q=0,*/*", Variant::TEXT_004),
            (
                "application/openmetrics-text;q=0,text/plain;version=1.0.0;escaping=dots;q=0.1",
                v(Syntax::Text100, Escaping::Dots),
            ),
            // Everything refused: 0.0.4.
            ("text/plain;version=0.0.4;q=0", Variant::TEXT_004),
            // A more specific range overrides the wildcard.
            (
                "application/*;q=0.2,application/openmetrics-text;version=1.0.0;q=0.9",
                v(Syntax::OpenMetrics, Escaping::Underscores),
            ),
            (
                "application/*",
                v(Syntax::OpenMetrics, Escaping::Underscores),
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(Some(accept)), want, "{accept}");
        }
    }

    #[test]
    fn unknown_and_malformed_parts_are_ignored() {
        let cases = [
            ("application/json, text/html;q=0.9", Variant::TEXT_004),
            ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=1.0.0;q=0.3", v(Syntax::Text100, Escaping::Underscores)),
            // OpenMetrics 0.0.1 alone is not offered: 0.0.4.
            ("application/openmetrics-text;version=0.0.1", Variant::TEXT_004),
            ("text/plain;version=2.0.0", Variant::TEXT_004),
            // Malformed: no slash, bad q, q above 1; the rest still counts.
            ("garbage,application/openmetrics-text;q=abc,text/plain;version=1.0.0;q=0.5", v(Syntax::Text100, Escaping::Underscores)),
            ("application/openmetrics-text;q=7,;;,=,/,text/plain;version=1.0.0;escaping=values", v(Syntax::Text100, Escaping::Values)),
            // Whitespace, case and quoted parameters.
            (" Application/OpenMetrics-Text ; Version=\"1.0.0\" ; Escaping=dots ; q=0.8 ", v(Syntax::OpenMetrics, Escaping::Dots)),
            // An unknown escaping is underscores.
            ("application/openmetrics-text;escaping=klingon", v(Syntax::OpenMetrics, Escaping::Underscores)),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(Some(accept)), want, "{accept}");
        }
    }

    #[test]
    fn a_pin_keeps_the_escaping_asked_for() {
        assert_eq!(
            choose(Some(PROM3), FormatPin::Text100),
            v(Syntax::Text100, Escaping::AllowUtf8)
        );
        assert_eq!(
            choose(None, FormatPin::OpenMetrics),
            v(Syntax::OpenMetrics, Escaping::Underscores)
        );
        assert_eq!(choose(Some(PROM3), FormatPin::Text004), Variant::TEXT_004);
        assert_eq!(
            choose(Some(PROM2), FormatPin::Negotiate),
            v(Syntax::OpenMetrics, Escaping::Underscores)
        );
        for s in ["negotiate", "openmetrics", "text-1.0.0", "text-0.0.4"] {
            assert_eq!(s.parse::<FormatPin>().unwrap().to_string(), s);
        }
        assert!("text".parse::<FormatPin>().is_err());
    }

    #[test]
    fn indexes_are_dense_and_distinct() {
        let mut seen = [false; Variant::COUNT];
        for syntax in [Syntax::Text004, Syntax::Text100, Syntax::OpenMetrics] {
            for escaping in Escaping::ALL {
                let i = v(syntax, escaping).index();
                assert!(!seen[i]);
                seen[i] = true;
            }
        }
        assert!(v(Syntax::Text100, Escaping::Underscores).body_is_004());
        assert!(!v(Syntax::Text100, Escaping::Dots).body_is_004());
    }
}
