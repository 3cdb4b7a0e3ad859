#!/usr/bin/env bash
# Reports import circles between remora's modules and exits 1 if there is one.
#
# It reads every `crate::` and `super::` path in src/ (use lines and inline
# paths, brace groups expanded; comments, `tests.rs` files and everything after
# a column-0 `#[cfg(test)] mod tests` are skipped), maps each to the module that defines
# it, and looks for cycles in two graphs:
#   - between top-level modules (`app -> server -> app`);
#   - between sibling submodules of one parent (`host::cpu -> host::read -> host::cpu`).
# A child naming its own parent (`super::Roots`) is not an edge.
# Usage: scripts/check-modules.sh [src-dir]   (-v lists every edge)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, sys

args = [a for a in sys.argv[1:] if a != "-v"]
verbose = "-v" in sys.argv[1:]
src = args[0] if args else "src"

def module_of(path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)

files = {}
for root, _, names in os.walk(src):
    for n in names:
        if n.endswith(".rs") and n != "tests.rs":
            p = os.path.join(root, n)
            files[module_of(p)] = p
modules = set(files)
# inline `mod x { ... }` and `mod x;` declared in a file without a file of its own are ignored

def strip(text):
    out = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and n + 1 < len(lines) and lines[n + 1].startswith("mod tests"):
            break
        line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        i = line.find("//")
        if i >= 0:
            line = line[:i]
        out.append(line)
    return "\n".join(out)

IDENT = re.compile(r"\s*(\w+)")

def parse_tree(s, i):
    """Parses `a::b::{c, d::e}` at s[i:]; returns (list of paths, end index)."""
    segs = []
    while True:
        m = IDENT.match(s, i)
        if m and s[m.start(1)] != "{":
            segs.append(m.group(1))
            i = m.end()
            j = i
            while j < len(s) and s[j].isspace():
                j += 1
            if s.startswith("::", j):
                i = j + 2
                k = i
                while k < len(s) and s[k].isspace():
                    k += 1
                if k < len(s) and s[k] == "{":
                    paths, i = parse_group(s, k + 1)
                    return [segs + p for p in paths], i
                continue
            return [segs], i
        return [segs], i

def parse_group(s, i):
    paths = []
    while i < len(s):
        while i < len(s) and (s[i].isspace() or s[i] == ","):
            i += 1
        if i < len(s) and s[i] == "}":
            return paths, i + 1
        if s[i] == "{":
            sub, i = parse_group(s, i + 1)
            paths += sub
            continue
        sub, j = parse_tree(s, i)
        paths += [p for p in sub if p]
        if j == i:
            j = i + 1
        i = j
    return paths, i

def resolve(segs):
    """The longest module prefix of an absolute path."""
    best = ()
    for n in range(1, len(segs) + 1):
        if tuple(segs[:n]) in modules:
            best = tuple(segs[:n])
    return best

edges = {}
for mod, path in files.items():
    text = strip(open(path, encoding="utf-8").read())
    for m in re.finditer(r"\b(crate|super)::", text):
        if m.start() > 0 and text[m.start() - 1] in ":":
            continue
        # `super` in a/b.rs and in a/b/mod.rs both name module a
        base = [] if m.group(1) == "crate" else list(mod[:-1])
        trees, _ = parse_tree(text, m.end())
        for t in trees:
            b = list(base)
            while t and t[0] == "super":
                b = b[:-1]
                t = t[1:]
            target = resolve(b + t)
            if target and target != mod:
                edges.setdefault(mod, set()).add(target)

graphs = {}
for a, targets in edges.items():
    for b in targets:
        # top level
        if a and b and a[0] != b[0]:
            graphs.setdefault((), {}).setdefault(a[0], set()).add(b[0])
        # siblings under one parent
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        if n < len(a) and n < len(b) and n > 0:
            graphs.setdefault(a[:n], {}).setdefault(a[n], set()).add(b[n])

def cycles(g):
    """Elementary cycles (each reported once, starting at its least node)."""
    found = []
    nodes = sorted(set(g) | {x for v in g.values() for x in v})
    for start in nodes:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(g.get(node, ())):
                if nxt == start:
                    found.append(path + [start])
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return found

total = 0
for parent in sorted(graphs):
    g = graphs[parent]
    name = "::".join(parent) or "crate"
    if verbose:
        for a in sorted(g):
            print(f"{name}: {a} -> {', '.join(sorted(g[a]))}")
    for c in cycles(g):
        total += 1
        print(f"circle in {name}: {' -> '.join(c)}")
print(f"{total} import circle(s)")
sys.exit(1 if total else 0)
PY
