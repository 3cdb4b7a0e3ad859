//! Label value templates: literal text mixed with `{JSONPath}` and
//! `{@key}`, compiled once at load time.

use serde_json_path::JsonPath;

use super::types::{Template, TemplatePart};

/// Why a label template could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed '{{' in template {template:?} (expected {{JSONPath}} or {{@key}}; write {{{{ for a literal brace)")]
    Unclosed { template: String },
    #[error("invalid JSONPath {expr:?} in template: {error} (expected {{$.field}}, {{@.field}} or {{@key}})")]
    BadPath {
        expr: String,
        error: serde_json_path::ParseError,
    },
    #[error("unmatched '}}' in template {template:?} (write }}}} for a literal brace)")]
    Unmatched { template: String },
}

/// `@.x` (relative to the current node) is written `$.x` for the JSONPath parser.
pub(super) fn relative_path(s: &str) -> String {
    match s.strip_prefix('@') {
        Some(rest) => format!("${rest}"),
        None => s.to_string(),
    }
}

/// Parses a label template: literal text, `{JSONPath}`, `{@key}`; `{{` and `}}` are literal braces.
pub fn parse_template(s: &str) -> Result<Template, TemplateError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
                lit.push('{');
            }
            '}' if matches!(chars.peek(), Some((_, '}'))) => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                // Find the matching close brace, allowing nested brackets in filters.
                let mut depth = 1;
                let mut end = None;
                for (j, d) in chars.by_ref() {
                    match d {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| TemplateError::Unclosed { template: s.into() })?;
                let expr = s[i + 1..end].trim();
                if !lit.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
                }
                if expr == "@key" {
                    parts.push(TemplatePart::Key);
                } else {
                    let text = relative_path(expr);
                    let path = JsonPath::parse(&text).map_err(|error| TemplateError::BadPath {
                        expr: expr.into(),
                        error,
                    })?;
                    parts.push(TemplatePart::Path(path));
                }
            }
            '}' => return Err(TemplateError::Unmatched { template: s.into() }),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(TemplatePart::Literal(lit));
    }
    Ok(Template {
        source: s.to_string(),
        parts,
    })
}
