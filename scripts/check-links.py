#!/usr/bin/env python3
"""Check the relative links of remora's Markdown documentation.

    scripts/check-links.py [FILE.md ...]

Without arguments: README.md, ARCHITECTURE.md, CHANGELOG.md, docs/*.md and
k8s/README.md. Every relative link `[text](path#anchor)` outside code must name
an existing file or directory, and an anchor must match a heading of the
Markdown file it points into (GitHub's rule: lower case, punctuation but `-`
and `_` dropped, spaces to `-`, `-1`, `-2` ... for repeated headings).
External links (http, https, mailto) are not fetched. Prints each broken link
as FILE:LINE: problem and exits 1 if there is one.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def default_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "CHANGELOG.md", ROOT / "k8s/README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    return [f for f in files if f.exists()]


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks, inline code removed."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        m = re.match(r"(`{3,}|~{3,})", stripped)
        if m:
            if fence is None:
                fence = m.group(1)[0] * len(m.group(1))
            elif stripped.startswith(fence):
                fence = None
            continue
        if fence is None:
            yield n, line


def slug(heading: str) -> str:
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    s = s.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


_anchors: dict[Path, set[str]] = {}


def anchors(path: Path) -> set[str]:
    if path not in _anchors:
        seen: dict[str, int] = {}
        found = set()
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(1))
            k = seen.get(base, 0)
            seen[base] = k + 1
            found.add(base if k == 0 else f"{base}-{k}")
        _anchors[path] = found
    return _anchors[path]


def check(md: Path) -> list[str]:
    errors = []
    rel = md.relative_to(ROOT) if md.is_relative_to(ROOT) else md
    for n, line in prose_lines(md.read_text(encoding="utf-8")):
        line = re.sub(r"`[^`]*`", "", line)
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (md.parent / path_part).resolve() if path_part else md
            if not dest.exists():
                errors.append(f"{rel}:{n}: {target}: no such file")
                continue
            if anchor:
                if dest.is_dir() or dest.suffix != ".md":
                    errors.append(f"{rel}:{n}: {target}: an anchor into a file that is not Markdown")
                elif anchor not in anchors(dest):
                    errors.append(f"{rel}:{n}: {target}: no heading with the anchor #{anchor}")
    return errors


def main(argv: list[str]) -> int:
    files = [Path(a).resolve() for a in argv] or default_files()
    errors = [e for f in files for e in check(f)]
    for e in errors:
        print(e)
    links = "broken link" if len(errors) == 1 else "broken links"
    print(f"{len(files)} files checked, {len(errors)} {links}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
