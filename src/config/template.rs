//! Label value templates: literal text mixed with `{JSONPath}` and
//! `{@key}`, compiled once at load time.

use serde_json_path::JsonPath;

use super::types::{Template, TemplatePart};

/// `@.x` (relative to the current node) is written `$.x` for the JSONPath parser.
pub(super) fn relative_path(s: &str) -> String {
    match s.strip_prefix('@') {
        Some(rest) => format!("${rest}"),
        None => s.to_string(),
    }
}

/// Parses a label template: literal text, `{JSONPath}`, `{@key}`; `{{` and `}}` are literal braces.
pub fn parse_template(s: &str) -> Result<Template, String> {
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
                let end = end.ok_or_else(|| format!("unclosed '{{' in template {s:?} (expected {{JSONPath}} or {{@key}}; write {{{{ for a literal brace)"))?;
                let expr = s[i + 1..end].trim();
                if !lit.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut lit)));
                }
                if expr == "@key" {
                    parts.push(TemplatePart::Key);
                } else {
                    let text = relative_path(expr);
                    let path = JsonPath::parse(&text).map_err(|e| {
                        format!("invalid JSONPath {expr:?} in template: {e} (expected {{$.field}}, {{@.field}} or {{@key}})")
                    })?;
                    parts.push(TemplatePart::Path(path));
                }
            }
            '}' => {
                return Err(format!(
                    "unmatched '}}' in template {s:?} (write }}}} for a literal brace)"
                ))
            }
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
