//! Text encoding: the pipeline's families (written by `text`), merged with
//! the pass-through families of `format: prometheus` targets, one block per
//! family name.

use std::collections::BTreeMap;

use super::pipeline::Pipeline;
use super::text::Own;
use super::ExpositionError;
use crate::model::passthrough::{escape_help, Claims, Fit, Kind, PromFamily, ServedNames};

/// Writes the pass-through families of `sources` alone, as the exposition
/// serves them beside an empty pipeline whose served names are `served`
/// (the fuzz target checks that what this writes parses again).
pub fn write_passthrough<'a>(
    out: &mut Vec<u8>,
    served: &ServedNames,
    sources: impl Iterator<Item = &'a [PromFamily]>,
) {
    write_exposition(out, Own::default(), served, sources);
}

/// Writes remora's own families and the pass-through families of every
/// target (`sources`, in a stable order), one block per family name, sorted
/// by name.
///
/// A pass-through family with a name remora serves (`served`, present now or
/// not) joins that family when the types are the same and is left out when
/// not; remora's HELP text wins. Between targets, the first family placed
/// wins and a later family that collides with it is left out. The poller
/// already dropped (and counted) what collides with `served`; the check here
/// makes the response valid whatever the store holds, e.g. right after a
/// reload.
pub(crate) fn write_exposition<'a>(
    out: &mut Vec<u8>,
    own: Own,
    served: &ServedNames,
    sources: impl Iterator<Item = &'a [PromFamily]>,
) {
    struct Entry<'a> {
        own: Option<std::ops::Range<usize>>,
        help: Option<&'a str>,
        kind: Kind,
        samples: Vec<&'a str>,
    }
    let mut claims = Claims::of_served(served);
    let mut entries: BTreeMap<String, Entry<'a>> = BTreeMap::new();
    for block in own.blocks {
        if claims.fit(&block.name, block.kind) == Fit::New {
            claims.add(&block.name, block.kind);
        }
        entries.insert(
            block.name,
            Entry {
                own: Some(block.text),
                help: None,
                kind: block.kind,
                samples: Vec::new(),
            },
        );
    }
    for families in sources {
        for f in families {
            match claims.fit(&f.name, f.kind) {
                Fit::Collides(_) => continue,
                Fit::New => claims.add(&f.name, f.kind),
                Fit::Merge => {}
            }
            let e = entries.entry(f.name.clone()).or_insert_with(|| Entry {
                own: None,
                help: None,
                kind: f.kind,
                samples: Vec::new(),
            });
            if e.help.is_none() {
                e.help = f.help.as_deref();
            }
            e.samples.push(&f.samples);
        }
    }
    for (name, e) in entries {
        match e.own {
            Some(text) => out.extend_from_slice(own.text.get(text).unwrap_or_default()),
            None => {
                let help = served.get(&name).map(|s| s.help.as_str()).or(e.help);
                if let Some(h) = help.filter(|h| !h.is_empty()) {
                    let _ = writeln_bytes(out, format_args!("# HELP {name} {}", escape_help(h)));
                }
                let _ = writeln_bytes(out, format_args!("# TYPE {name} {}", e.kind.as_str()));
            }
        }
        for s in e.samples {
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn writeln_bytes(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    out.write_fmt(args)?;
    out.push(b'\n');
    Ok(())
}

impl Pipeline {
    /// Merges `own` (from [`Pipeline::gather`]) and the pass-through
    /// families of `passthrough` into Prometheus text 0.0.4, one block per
    /// family name (see [`write_exposition`]).
    pub(super) fn encode<'a>(
        &self,
        own: Own,
        passthrough: impl Iterator<Item = &'a [PromFamily]>,
    ) -> Vec<u8> {
        let mut passthrough = passthrough.peekable();
        if passthrough.peek().is_none() {
            // Nothing to merge: the pipeline's text, sorted by name, is the
            // exposition as it is (what `write_exposition` would copy).
            return own.text;
        }
        let mut out = Vec::with_capacity(own.text.len() + 16 * 1024);
        write_exposition(&mut out, own, &self.served, passthrough);
        out
    }

    /// Renders the pipeline's own store (one snapshot) as Prometheus text
    /// 0.0.4, without the pass-through families.
    pub fn render(&self) -> Result<Vec<u8>, ExpositionError> {
        let snap = self.snapshot(&self.store);
        Ok(self.encode(self.gather(&snap)?, std::iter::empty()))
    }
}
