//! Label value templates: literal text mixed with `{JSONPath}`, `{@key}`
//! and, under a list `each:`, the outer levels' `{@key:N}` and
//! `{@N$.path}`, compiled once at load time.

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
    #[error("malformed level reference {{{expr}}} in template {template:?} (expected {{@key}}, {{@key:N}} or {{@N$.path}} with N a level number)")]
    BadLevel { expr: String, template: String },
}

/// Reads `{@key:N}` and `{@N$.path}`: `Ok(None)` when `expr` is neither
/// (a plain JSONPath or `@key`), an error when it starts like one and is
/// malformed.
fn level_part(expr: &str, template: &str) -> Result<Option<TemplatePart>, TemplateError> {
    let bad = || TemplateError::BadLevel {
        expr: expr.into(),
        template: template.into(),
    };
    let level = |digits: &str| -> Result<usize, TemplateError> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        digits.parse().map_err(|_| bad())
    };
    if let Some(n) = expr.strip_prefix("@key:") {
        return Ok(Some(match level(n.trim())? {
            0 => TemplatePart::Key,
            n => TemplatePart::OuterKey(n),
        }));
    }
    let Some(rest) = expr.strip_prefix('@') else {
        return Ok(None);
    };
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        // `@key`, `@.x`, or a JSONPath error for the caller.
        return Ok(None);
    }
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let n = level(&rest[..digits_end])?;
    let path = &rest[digits_end..];
    if !path.starts_with('$') {
        return Err(bad());
    }
    let parsed = JsonPath::parse(path).map_err(|error| TemplateError::BadPath {
        expr: expr.into(),
        error,
    })?;
    Ok(Some(match n {
        0 => TemplatePart::Path(parsed),
        n => TemplatePart::OuterPath(n, parsed),
    }))
}

/// `@.x` (relative to the current node) is written `$.x` for the JSONPath parser.
pub(super) fn relative_path(s: &str) -> String {
    match s.strip_prefix('@') {
        Some(rest) => format!("${rest}"),
        None => s.to_string(),
    }
}

/// Parses a label template: literal text, `{JSONPath}`, `{@key}`,
/// `{@key:N}`, `{@N$.path}`; `{{` and `}}` are literal braces. Whether the
/// levels exist is the rule's check.
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
                } else if let Some(part) = level_part(expr, s)? {
                    parts.push(part);
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
