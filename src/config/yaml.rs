//! A YAML document as a tree that remembers where each node was written.
//!
//! serde-based YAML loaders stop at the first error and forget positions once a
//! value has been read; remora reports every problem as `FILE:LINE:COLUMN`, so
//! it reads the YAML event stream itself and keeps a [`Mark`] on every node.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in the file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Mark {
    fn from(m: Marker) -> Self {
        Mark {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub mark: Mark,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar; `plain` is false for quoted and block scalars (which are always strings).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys are kept as nodes so errors can point at them.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for `~`, `null` and an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar (before `${VAR}` expansion), `None` for a
    /// collection.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A short name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// A syntax error, with its position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{}: {message}", .mark.line, .mark.column)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

enum Frame {
    Seq(Mark, Vec<Node>),
    Map(Mark, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// Anchor ids of the open collections, so they can be recorded when closed.
    open_anchors: Vec<usize>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = Mark::from(marker);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.push(
                    Node {
                        mark,
                        kind: NodeKind::Scalar { text, plain },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.open_anchors.push(anchor);
                self.stack.push(Frame::Seq(mark, Vec::new()));
            }
            Event::MappingStart(anchor, _) => {
                self.open_anchors.push(anchor);
                self.stack.push(Frame::Map(mark, Vec::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let anchor = self.open_anchors.pop().unwrap_or(0);
                let node = match self.stack.pop() {
                    Some(Frame::Seq(mark, items)) => Node {
                        mark,
                        kind: NodeKind::Seq(items),
                    },
                    // Block mappings are reported at the first ':'; point at the first key instead.
                    Some(Frame::Map(mark, entries, _)) => Node {
                        mark: entries.first().map_or(mark, |(k, _)| k.mark),
                        kind: NodeKind::Map(entries),
                    },
                    None => return,
                };
                self.push(node, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.mark = mark;
                    self.push(node, 0);
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        mark,
                        message: "alias to an unknown anchor".into(),
                    });
                }
            },
            Event::DocumentStart if self.root.is_some() => {
                self.error.get_or_insert(SyntaxError {
                    mark,
                    message: "more than one YAML document in the file".into(),
                });
            }
            _ => {}
        }
    }
}

/// Parses YAML text into a tree. An empty file gives an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(SyntaxError {
            mark: Mark {
                line: m.line(),
                column: m.col() + 1,
            },
            message: e.info().to_string(),
        });
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.root.unwrap_or(Node {
        mark: Mark { line: 1, column: 1 },
        kind: NodeKind::Map(Vec::new()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &Vec<(Node, Node)> {
        match &node.kind {
            NodeKind::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn keeps_positions() {
        let doc = parse("a: 1\nb:\n  c: \"x\"\n  d: [1, 2]\n").unwrap();
        let m = map(&doc);
        assert_eq!(m[0].0.mark, Mark { line: 1, column: 1 });
        assert_eq!(m[1].0.mark, Mark { line: 2, column: 1 });
        let inner = map(&m[1].1);
        assert_eq!(inner[0].0.mark, Mark { line: 3, column: 3 });
        assert_eq!(
            inner[0].1.kind,
            NodeKind::Scalar {
                text: "x".into(),
                plain: false
            }
        );
        assert_eq!(inner[1].1.mark.line, 4);
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!((e.mark.line, e.mark.column), (2, 2), "{}", e.message);
        assert!(!e.message.is_empty());
    }

    #[test]
    fn aliases_resolve() {
        let doc = parse("base: &b {x: 1}\nother: *b\n").unwrap();
        let m = map(&doc);
        assert_eq!(m[1].1.kind, m[0].1.kind);
    }

    #[test]
    fn empty_document_is_empty_map() {
        assert_eq!(map(&parse("").unwrap()).len(), 0);
        assert_eq!(map(&parse("# only a comment\n").unwrap()).len(), 0);
    }

    #[test]
    fn null_detection() {
        let doc = parse("a: ~\nb:\nc: ''\n").unwrap();
        let m = map(&doc);
        assert!(m[0].1.is_null());
        assert!(m[1].1.is_null());
        assert!(!m[2].1.is_null());
    }
}
