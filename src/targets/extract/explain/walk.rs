//! One streaming pass over a body along a rule's path steps, keeping only
//! where the path stops, the type found there and the keys nearest the
//! missing one (never the document).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::super::path::Step;
use super::super::EXAMPLE_CHARS;

/// Keys named as the nearest to a missing one.
const NEAREST: usize = 3;

/// What a path finds in a body.
#[derive(Debug, PartialEq)]
pub(super) enum Walked {
    /// The node `depth` steps down has no step `depth`: its type, the keys
    /// nearest the missing name (an object) or its length (an array).
    Stopped {
        depth: usize,
        kind: &'static str,
        near: Vec<String>,
        len: usize,
    },
    /// The path exists: the node's type and its first key (an object).
    Reached {
        kind: &'static str,
        first: Option<String>,
    },
}

/// Follows `steps` through `body` without keeping it (`None`: not JSON, or
/// a negative index).
pub(super) fn walk(body: &[u8], steps: &[Step]) -> Option<Walked> {
    let mut de = serde_json::Deserializer::from_slice(body);
    Walk { steps, depth: 0 }.deserialize(&mut de).ok()
}

struct Walk<'s> {
    steps: &'s [Step],
    depth: usize,
}

impl Walk<'_> {
    fn scalar<E>(self, kind: &'static str) -> Result<Walked, E> {
        Ok(if self.steps.is_empty() {
            Walked::Reached { kind, first: None }
        } else {
            Walked::Stopped {
                depth: self.depth,
                kind,
                near: Vec::new(),
                len: 0,
            }
        })
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Walked;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Walked, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Walked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Walked, E> {
        self.scalar("boolean")
    }
    fn visit_i64<E>(self, _: i64) -> Result<Walked, E> {
        self.scalar("number")
    }
    fn visit_u64<E>(self, _: u64) -> Result<Walked, E> {
        self.scalar("number")
    }
    fn visit_f64<E>(self, _: f64) -> Result<Walked, E> {
        self.scalar("number")
    }
    fn visit_str<E>(self, _: &str) -> Result<Walked, E> {
        self.scalar("string")
    }
    fn visit_unit<E>(self) -> Result<Walked, E> {
        self.scalar("null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walked, A::Error> {
        let want = match self.steps.first() {
            None => None,
            Some(Step::Index(i)) => Some(
                usize::try_from(*i)
                    .map_err(|_| de::Error::custom("a negative index is not followed"))?,
            ),
            Some(Step::Name(_)) => Some(usize::MAX),
        };
        let mut len = 0usize;
        let mut found = None;
        loop {
            if Some(len) == want && found.is_none() {
                let seed = Walk {
                    steps: &self.steps[1..],
                    depth: self.depth + 1,
                };
                match seq.next_element_seed(seed)? {
                    Some(w) => found = Some(w),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            len += 1;
        }
        Ok(match (want, found) {
            (None, _) => Walked::Reached {
                kind: "array",
                first: None,
            },
            (_, Some(w)) => w,
            (Some(_), None) => Walked::Stopped {
                depth: self.depth,
                kind: "array",
                near: Vec::new(),
                len,
            },
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walked, A::Error> {
        let want = match self.steps.first() {
            Some(Step::Name(n)) => Some(n.as_str()),
            _ => None,
        };
        let mut first = None;
        let mut found = None;
        // The nearest keys so far, by edit distance.
        let mut near: Vec<(usize, String)> = Vec::new();
        let mut len = 0usize;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            len += 1;
            if first.is_none() {
                first = Some(super::super::convert::cut(&key));
            }
            match want {
                Some(w) if w == key && found.is_none() => {
                    found = Some(map.next_value_seed(Walk {
                        steps: &self.steps[1..],
                        depth: self.depth + 1,
                    })?);
                    continue;
                }
                Some(w) => {
                    let d = distance(w, &key);
                    if near.len() < NEAREST || near.last().is_some_and(|(x, _)| d < *x) {
                        let at = near.partition_point(|(x, _)| *x <= d);
                        near.insert(at, (d, super::super::convert::cut(&key)));
                        near.truncate(NEAREST);
                    }
                }
                None => {}
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(match (self.steps.first(), found) {
            (None, _) => Walked::Reached {
                kind: "object",
                first,
            },
            (_, Some(w)) => w,
            (Some(_), None) => Walked::Stopped {
                depth: self.depth,
                kind: "object",
                near: near.into_iter().map(|(_, k)| k).collect(),
                len,
            },
        })
    }
}

/// Edit distance (Levenshtein, by character) between `a` and `b`, each cut
/// to [`EXAMPLE_CHARS`] characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(EXAMPLE_CHARS).collect();
    let mut row: Vec<usize> = (0..=a.len()).collect();
    for (j, cb) in b.chars().take(EXAMPLE_CHARS).enumerate() {
        let mut diag = row[0];
        row[0] = j + 1;
        for (i, ca) in a.iter().enumerate() {
            let next = (diag + usize::from(*ca != cb))
                .min(row[i] + 1)
                .min(row[i + 1] + 1);
            diag = row[i + 1];
            row[i + 1] = next;
        }
    }
    row[a.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("status", "status"), 0);
        assert_eq!(distance("statuss", "status"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn walk_names_the_nearest_keys_where_a_path_stops() {
        let body = br#"{"app": {"status": 1, "stats": 2, "zzz": 3, "uptime": 4}}"#;
        let steps = [Step::Name("app".into()), Step::Name("statuss".into())];
        let Some(Walked::Stopped {
            depth,
            kind,
            near,
            len,
        }) = walk(body, &steps)
        else {
            panic!("expected a stop");
        };
        assert_eq!((depth, kind, len), (1, "object", 4));
        assert_eq!(near, ["status", "stats", "uptime"]);
        let steps = [Step::Name("app".into())];
        assert_eq!(
            walk(body, &steps),
            Some(Walked::Reached {
                kind: "object",
                first: Some("status".into())
            })
        );
        let steps = [Step::Name("list".into()), Step::Index(5)];
        let body = br#"{"list": [1, 2]}"#;
        assert!(matches!(
            walk(body, &steps),
            Some(Walked::Stopped {
                depth: 1,
                kind: "array",
                len: 2,
                ..
            })
        ));
    }
}
