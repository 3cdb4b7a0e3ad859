#!/usr/bin/env python3
"""Memory of remora with many targets and rules (issue 28): prints figures.

Starts a local JSON app (an asyncio loop in a thread, every path answers
the same small document), writes a config of TARGETS targets of RULES rules each, runs
remora on it, waits for /-/ready and for a few poll rounds, and prints
private memory (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup,
sampled every 0.1 s for one poll interval: the least, idle between poll
rounds, and the most, during a round) and RSS, and per target net of a
one-target run of the same binary
(the base: code, runtime, render buffers); then reloads RELOADS times (POST /-/reload, each with a changed
label so the config really changes) and prints the same after each.

With --distinct-rules every target's rules differ (rule r of target t has
`scale: t+1`), so no two targets can share their rules or their compiled
extractor; by default all targets have the same rules, as a fleet of one
app has.

Usage: scripts/limits-memory.py [--bin target/debug/remora] [--targets 2000]
       [--rules 10] [--reloads 10] [--interval 5s] [--distinct-rules]
A config over remora's limits is reported as refused (the error printed).
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app(rules):
    """A local JSON app on an asyncio loop of its own thread: every request
    gets the same small document (fast enough that a poll round of
    thousands of targets ends well within the interval)."""
    body = json.dumps({f"m{i}": i for i in range(rules)}).encode()
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
              + f"content-length: {len(body)}\r\n\r\n".encode() + body)

    class Answer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.seen = transport, b""

        def data_received(self, data):
            self.seen += data
            while b"\r\n\r\n" in self.seen:
                self.seen = self.seen.split(b"\r\n\r\n", 1)[1]
                self.transport.write(answer)

    loop = asyncio.new_event_loop()
    srv = loop.run_until_complete(loop.create_server(Answer, "127.0.0.1", 0, backlog=4096))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return srv.sockets[0].getsockname()[1]


def config(app_port, targets, rules, interval, generation, distinct=False):
    out = [
        "host: {enabled: false}",
        f"global: {{interval: {interval}, timeout: 2s, labels: {{generation: g{generation}}}}}",
        "targets:",
    ]
    for t in range(targets):
        out.append(f"  - name: t{t}")
        out.append(f"    url: http://127.0.0.1:{app_port}/t{t}")
        out.append("    metrics:")
        scale = f", scale: {t + 1}" if distinct else ""
        for r in range(rules):
            out.append(f"      - {{name: app.m{r}, path: $.m{r}{scale}}}")
    return "\n".join(out) + "\n"


def memory(pid):
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                fields[parts[0][:-1]] = int(parts[1])
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return private / 1024, fields.get("Rss", 0) / 1024


def seconds(interval):
    """`5s`, `500ms`, `1m` as seconds."""
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60)):
        if interval.endswith(unit) and interval[: -len(unit)].isdigit():
            return int(interval[: -len(unit)]) * factor
    sys.exit(f"cannot read the interval {interval!r} (expected e.g. 5s)")


def over_interval(pid, secs):
    """Private memory every 0.1 s for one poll interval: the least (idle,
    between poll rounds), the most (during a round) and RSS at the least."""
    idle, peak, rss_idle = float("inf"), 0.0, 0.0
    end = time.time() + secs
    while time.time() < end:
        priv, rss = memory(pid)
        if priv < idle:
            idle, rss_idle = priv, rss
        peak = max(peak, priv)
        time.sleep(0.1)
    return idle, peak, rss_idle


def get(url, method="GET", timeout=30):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def wait(pred, secs, what):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"timed out waiting for {what}")


def polls(port):
    _, body = get(f"http://127.0.0.1:{port}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("remora_target_polls_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def settle(port, targets):
    """Waits until every target has been polled twice more."""
    start = polls(port)
    wait(lambda: polls(port) >= start + 2 * targets, 300, "two poll rounds")


def base(binary, app_port, rules, interval, distinct):
    """Private memory of the same binary with one target."""
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "exporter.yaml")
        with open(cfg, "w") as f:
            f.write(config(app_port, 1, rules, interval, 0, distinct))
        p = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait(lambda: get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 120, "ready")
            settle(port, 1)
            return over_interval(p.pid, seconds(interval))[0]
        finally:
            p.terminate()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/remora")
    ap.add_argument("--targets", type=int, default=2000)
    ap.add_argument("--rules", type=int, default=10)
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--interval", default="5s")
    ap.add_argument("--distinct-rules", action="store_true",
                    help="every target's rules differ (no sharing possible)")
    a = ap.parse_args()
    app_port = app(a.rules)
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "exporter.yaml")
        with open(cfg, "w") as f:
            f.write(config(app_port, a.targets, a.rules, a.interval, 0, a.distinct_rules))
        size = os.path.getsize(cfg)
        kind = "distinct rules per target" if a.distinct_rules else "the same rules for every target"
        print(f"config: {a.targets} targets x {a.rules} rules = {a.targets * a.rules} rules "
              f"({kind}), {size} bytes")
        check = subprocess.run([a.bin, "check", f"--config.file={cfg}"], capture_output=True, text=True)
        if check.returncode != 0:
            print("refused: " + (check.stderr.strip().splitlines() or [""])[0])
            return
        p = subprocess.Popen(
            [a.bin, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}",
             "--web.enable-lifecycle", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait(lambda: get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 300, "ready")
            settle(port, a.targets)
            secs = seconds(a.interval)
            idle, peak, rss = over_interval(p.pid, secs)
            first = None
            b = base(a.bin, app_port, a.rules, a.interval, a.distinct_rules)
            per = lambda m: (m - b) * 1024 / a.targets
            print(f"base (1 target): private {b:8.1f} MiB")
            print(f"start:     private {idle:8.1f} MiB idle, {peak:8.1f} MiB at most  rss {rss:8.1f} MiB  "
                  f"per target {per(idle):7.1f} KiB idle, {per(peak):7.1f} KiB at most (net of the base)")
            worst = 0.0
            for i in range(1, a.reloads + 1):
                with open(cfg, "w") as f:
                    f.write(config(app_port, a.targets, a.rules, a.interval, i, a.distinct_rules))
                get(f"http://127.0.0.1:{port}/-/reload", method="POST", timeout=120)
                settle(port, a.targets)
                idle, peak, rss = over_interval(p.pid, secs)
                if first is None:
                    first = idle
                worst = max(worst, idle / first)
                print(f"reload {i:2}: private {idle:8.1f} MiB idle, {peak:8.1f} MiB at most  rss {rss:8.1f} MiB  "
                      f"x{idle / first:.2f} of after the first reload (idle)")
            if a.reloads > 1:
                print(f"after {a.reloads} reloads: x{idle / first:.2f} of after the first (worst x{worst:.2f})")
        finally:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
