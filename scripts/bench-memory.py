#!/usr/bin/env python3
"""Peak memory of one poll of a hostile JSON body, against the body limit.

Builds the release binary (unless --bin is given), serves bodies of about
4 MB from a local HTTP server and runs `remora once` on each with a few rule
sets. For each case it prints the peak RSS of the process (ru_maxrss of the
child, through GNU time when installed), the idle figure (the same rules on a tiny body), and
the amplification (peak - idle) / max_body_bytes. The goal is peak <= idle
+ 3 x max_body_bytes (amplification under 3) for any body within the limit.

    scripts/bench-memory.py                       # this tree
    scripts/bench-memory.py --base /path/remora   # and an older binary beside it
    scripts/bench-memory.py --max-body-mib 1 --max-series 500   # the Kubernetes example's limits
"""

import argparse
import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BODY = 4 * 1024 * 1024  # the default limits.max_body_bytes
SIZE = 4_000_000  # bodies just under it
MAX_SERIES = 2000  # the default limits.max_series_per_target


def zeros():
    n = (SIZE - 2) // 2
    return "[" + ",".join(["0"] * n) + "]"


def strings():
    n = (SIZE - 2) // 4
    return "[" + ",".join(['"x"'] * n) + "]"


def objects():
    item = '{"a":0,"b":"x"}'
    n = (SIZE - 2) // (len(item) + 1)
    return "[" + ",".join([item] * n) + "]"


def deep():
    depth = 100
    item = "[" * depth + "0" + "]" * depth
    n = (SIZE - 2) // (len(item) + 1)
    return "[" + ",".join([item] * n) + "]"


def huge_string():
    return '{"s":"' + "x" * (SIZE - 8) + '"}'


def many_keys():
    parts = []
    size = 2
    i = 0
    while size < SIZE - 20:
        p = f'"k{i:07d}":0'
        parts.append(p)
        size += len(p) + 1
        i += 1
    return "{" + ",".join(parts) + "}"


def rule(name, **kw):
    r = {"name": name}
    r.update(kw)
    return r


# (case, body, rules)
CASES = [
    ("zeros, no rule reaches it", zeros, [rule("x", path="$.nope", optional=True)]),
    ("zeros, each $[*] succeeds", zeros, [rule("x", each="$[*]", path="$", labels={"i": "{@key}"})]),
    ("zeros, each $[*] all fail", zeros, [rule("x", each="$[*]", path="$.v")]),
    ("zeros, each $..* with keys", zeros, [rule("x", each="$..*", path="$", labels={"i": "{@key}"})]),
    ("strings, each $[*] all fail", strings, [
        rule("x", each="$[*]", path="$"),
        rule("y", each="$[*]", path="$", labels={"v": "{$}"}),
    ]),
    ("objects, each $[*] all fail", objects, [
        rule("x", each="$[*]", path="$.b"),
        rule("y", each="$[?@.a == 0]", path="$.b", labels={"i": "{@key}"}),
    ]),
    ("deep nesting, each $..*", deep, [rule("x", each="$..*", path="$", labels={"i": "{@key}"})]),
    ("huge string, value and label", huge_string, [
        rule("x", path="$.s"),
        rule("y", path="1", labels={"s": "{$.s}"}),
        rule("z", path="1", labels={"s": "{$.s}{$.s}"}),
    ]),
    ("many keys, each $.* succeeds", many_keys, [rule("x", each="$.*", path="$", labels={"k": "{@key}"})]),
    ("many keys, filter all fail", many_keys, [rule("x", each="$[?@ == 0]", path="$.v", labels={"k": "{@key}"})]),
]


def config(url, rules):
    return json.dumps({
        "host": {"enabled": False},
        "limits": {"max_body_bytes": MAX_BODY, "max_series_per_target": MAX_SERIES},
        "targets": [{"name": "t", "url": url, "timeout": "30s", "interval": "60s", "metrics": rules}],
    })


# A process's ru_maxrss starts from the memory of the process that forked it
# (this script holds the bodies): remora is started from a small process, GNU
# time, else a fresh Python (about 14 MB, which then floors the figures).
WRAPPER = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
)


def peak_rss(binary, cfg_path, tmp):
    """Peak RSS in bytes of `remora once`, and its exit status."""
    out = os.path.join(tmp, "rss.txt")
    cmd = [binary, "once", f"--config.file={cfg_path}"]
    if os.path.exists("/usr/bin/time"):
        cmd = ["/usr/bin/time", "-f", "%M", "-o", out] + cmd
    else:
        cmd = [sys.executable, "-c", WRAPPER, out] + cmd
    for _ in range(3):
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        with open(out) as f:
            lines = f.read().strip().splitlines()
        if lines and lines[-1].isdigit():
            return int(lines[-1]) * 1024, rc
    raise RuntimeError(f"no peak RSS reported for {cmd} (exit {rc})")


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def mib(n):
    return f"{n / 1048576:7.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="remora binary to measure (default: build this tree)")
    ap.add_argument("--base", help="an older remora binary to measure beside it")
    ap.add_argument("--max-body-mib", type=int, default=4, help="limits.max_body_bytes in MiB")
    ap.add_argument("--max-series", type=int, default=2000, help="limits.max_series_per_target")
    args = ap.parse_args()
    global MAX_BODY, SIZE, MAX_SERIES
    MAX_BODY = args.max_body_mib * 1024 * 1024
    SIZE = MAX_BODY * 95 // 100
    MAX_SERIES = args.max_series
    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "remora"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "release", "remora")
    binaries = [("after", binary)] + ([("before", args.base)] if args.base else [])

    with tempfile.TemporaryDirectory() as tmp:
        server = serve(tmp)
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        with open(os.path.join(tmp, "tiny.json"), "w") as f:
            f.write('{"a":0}')
        bodies = {}
        print(f"max_body_bytes {MAX_BODY} B, max_series_per_target {MAX_SERIES}; "
              "peak RSS of `remora once` in MiB; amp = (peak - idle) / max_body_bytes")
        header = f"{'case':34} {'body MB':>7}"
        for name, _ in binaries:
            header += f" | {name + ' idle':>11} {'peak':>7} {'amp':>5} {'rc':>2}"
        print(header)
        for i, (case, make, rules) in enumerate(CASES):
            if make not in bodies:
                path = os.path.join(tmp, f"{make.__name__}.json")
                with open(path, "w") as f:
                    f.write(make())
                bodies[make] = path
            body = bodies[make]
            size = os.path.getsize(body)
            row = f"{case:34} {size / 1e6:7.2f}"
            for _, b in binaries:
                idle_cfg = os.path.join(tmp, f"idle{i}.json")
                with open(idle_cfg, "w") as f:
                    f.write(config(f"{base_url}/tiny.json", rules))
                cfg = os.path.join(tmp, f"case{i}.json")
                with open(cfg, "w") as f:
                    f.write(config(f"{base_url}/{os.path.basename(body)}", rules))
                idle, _ = peak_rss(b, idle_cfg, tmp)
                peak, rc = peak_rss(b, cfg, tmp)
                row += f" | {mib(idle):>11} {mib(peak)} {(peak - idle) / MAX_BODY:5.2f} {rc:2}"
            print(row, flush=True)
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
