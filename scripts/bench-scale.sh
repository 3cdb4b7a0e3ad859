#!/usr/bin/env bash
# Cost per series at the limit, and the host collectors beside node_exporter,
# in one run.
#
#   scripts/bench-scale.sh                 (sizes 100 1000 10000 33334 items)
#   SIZES="100 10000" WINDOW=20 scripts/bench-scale.sh
#
# Scale part: one JSON target (a small Python server) serving N items x 3
# values (3N series, values changing at every request; limits.max_series_per_target
# max(2000, 3N + 1000)), polled every second
# by remora (host collectors off), scraped every second by a client for
# WINDOW seconds after a warm-up. Per size it prints:
#   - CPU ms per second of remora (run time of its threads, from
#     /proc/PID/task/*/schedstat) and
#     that CPU per series per poll-and-render cycle (one cycle per second);
#   - RSS at the end (VmRSS) and its peak (VmHWM), and the RSS per series
#     above the smallest size's (the marginal cost of a series);
#   - scrape p50 / p99 / max (GET /metrics with Accept-Encoding: gzip as
#     Prometheus sends it, whole body read, one client) over a second window
#     of LAT_WINDOW seconds right after the first, scraping 10 times a second
#     (about 300 scrapes in 30 s, so that the p99 is not just the slowest of
#     30), on a period of 101.3 ms so that the scrapes fall at every phase of
#     the poll cycle; the 1 Hz window's slowest scrape is printed beside it.
# Host part: remora with the host collectors only (cpu, memory, load,
# filesystem, network, uptime; no targets) and prometheus-node-exporter with
# the matching collectors (cpu, meminfo, loadavg, filesystem, netdev, stat),
# both scraped every second for WINDOW seconds (equal freshness: remora polls
# every 1 s, node_exporter reads the host at each scrape): CPU ms per second,
# RSS, and the ratios.
# Start part: `remora` with the repository's exporter.yaml (demo app running)
# to 200 on /-/ready, the median of 7 starts.
#
# Every line carries /proc/loadavg at the time: the machine may be shared.
# Environment: REMORA_BIN (target/release/remora), NODE_EXPORTER
# (/usr/bin/prometheus-node-exporter), SIZES, WINDOW (30), LAT_WINDOW
# (WINDOW), WARMUP (8), PORT_BASE (19700), SKIP_HOST, SKIP_START.
set -euo pipefail
cd "$(dirname "$0")/.."

REMORA_BIN=${REMORA_BIN:-target/release/remora}
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
export REMORA_BIN NODE_EXPORTER
export SIZES=${SIZES:-"100 1000 10000 33334"}
export WINDOW=${WINDOW:-30} LAT_WINDOW=${LAT_WINDOW:-${WINDOW:-30}} WARMUP=${WARMUP:-8} PORT_BASE=${PORT_BASE:-19700}
export SKIP_HOST=${SKIP_HOST:-} SKIP_START=${SKIP_START:-}

# The binary is built on its own, as users build it.
if [ ! -x "$REMORA_BIN" ]; then
  cargo build --release --locked --quiet --bin remora
fi
[ -x target/release/examples/demo_app ] || cargo build --release --locked --quiet --example demo_app
if [ -z "$SKIP_HOST" ] && [ ! -x "$NODE_EXPORTER" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
fi

exec python3 - <<'PY'
import http.client, http.server, json, os, random, signal, socketserver, statistics
import subprocess, sys, tempfile, threading, time

BIN = os.environ["REMORA_BIN"]
NODE = os.environ["NODE_EXPORTER"]
SIZES = [int(s) for s in os.environ["SIZES"].split()]
WINDOW = float(os.environ["WINDOW"])
LAT_WINDOW = float(os.environ["LAT_WINDOW"])
WARMUP = float(os.environ["WARMUP"])
PORT = int(os.environ["PORT_BASE"])
PAGE = os.sysconf("SC_PAGE_SIZE")
work = tempfile.mkdtemp(prefix="bench-scale-")
procs = []


def cleanup(*_):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


class CpuMeter:
    """CPU used by the threads of `pid` since the meter was made: each
    thread's run time in /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat
    counts in 10 ms ticks, and its total less the live threads' ticks is off by
    a tick or more per window, a third of a ms/s over 30 s: too coarse for the
    host part's 1 ms/s). Sampled at the start, after every scrape and at the
    end: a thread that ends between two samples counts with its last sampled
    run time, one that lives less than a second is not seen. `ended` counts
    the threads seen to end, so that a figure that may be short says so."""

    def __init__(self, pid):
        self.pid = pid
        self.start = self.read()
        self.last = dict(self.start)
        self.ended = set()

    def read(self):
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                out[tid] = int(open(f"/proc/{self.pid}/task/{tid}/schedstat").read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return out

    def sample(self):
        now = self.read()
        self.ended |= set(self.last) - set(now)
        self.last.update(now)

    def seconds(self):
        self.sample()
        return sum(ns - self.start.get(tid, 0) for tid, ns in self.last.items()) / 1e9


def status_kib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def get(port, path, timeout=30, gzip=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Accept-Encoding": "gzip"} if gzip else {})
        r = c.getresponse()
        body = r.read()
        return r.status, body
    finally:
        c.close()


def wait_ok(port, path, limit=60):
    end = time.time() + limit
    while time.time() < end:
        try:
            if get(port, path, timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"127.0.0.1:{port}{path} never answered 200")


# --- the JSON target: N items x 3 values, two bodies alternated so values change.
class Target(http.server.BaseHTTPRequestHandler):
    bodies = [b"{}"]
    n = 0

    def do_GET(self):
        Target.n += 1
        body = Target.bodies[Target.n % len(Target.bodies)]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def bodies(n):
    out = []
    for k in range(2):
        rnd = random.Random(k)
        items = [
            {"id": f"item-{i:06d}", "requests": i * 7 + k, "latency_ms": round(rnd.random() * 100, 3),
             "queue": rnd.randrange(1000)}
            for i in range(n)
        ]
        out.append(json.dumps({"items": items}).encode())
    return out


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve_target(n):
    """Serves the JSON target for N items in a process of its own, so that
    writing a large body never holds this process's interpreter lock while
    it times a scrape."""
    import multiprocessing
    ready = multiprocessing.Event()

    def run():
        Target.bodies = bodies(n)
        srv = Server(("127.0.0.1", PORT + 1), Target)
        ready.set()
        srv.serve_forever()

    proc = multiprocessing.get_context("fork").Process(target=run, daemon=True)
    proc.start()
    ready.wait(120)
    return proc

SCALE_CONFIG = """
server: {{listen: 127.0.0.1:{port}}}
global: {{interval: 1s, timeout: 1s}}
limits: {{max_series_per_target: {limit}, max_body_bytes: 64MiB}}
host: {{enabled: false}}
targets:
  - name: bench
    url: http://127.0.0.1:{tport}/items
    metrics:
      - name: bench.requests
        kind: counter
        each: $.items[*]
        path: $.requests
        labels: {{id: "{{$.id}}"}}
      - name: bench.latency
        unit: s
        scale: 0.001
        each: $.items[*]
        path: $.latency_ms
        labels: {{id: "{{$.id}}"}}
      - name: bench.queue
        each: $.items[*]
        path: $.queue
        labels: {{id: "{{$.id}}"}}
"""

HOST_CONFIG = """
server: {{listen: 127.0.0.1:{port}}}
global: {{interval: 1s, timeout: 1s}}
host:
  enabled: true
  collectors: [cpu, memory, load, filesystem, network, uptime]
"""


def start(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def scrape_every_second(port, seconds, path="/metrics", after=lambda: None):
    """Scrapes every second (on the second) for `seconds`, asking for gzip as
    Prometheus does, calling `after` after each; returns the latencies (ms)
    and the last plain body."""
    lat, body = [], b""
    t0 = time.monotonic()
    k = 0
    while True:
        due = t0 + k
        if due - t0 >= seconds:
            break
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        s = time.perf_counter()
        status, _ = get(port, path, gzip=True)
        lat.append((time.perf_counter() - s) * 1000)
        assert status == 200, status
        after()
        k += 1
    status, body = get(port, path)
    return lat, body


def scrape_often(port, seconds, period=0.1013):
    """Scrapes every `period` seconds for `seconds` (gzip asked, whole body
    read) and returns the latencies (ms). 101.3 ms does not divide the 1 s
    poll interval, so the scrapes sweep every phase of the poll cycle."""
    lat, t0, k = [], time.monotonic(), 0
    while True:
        due = t0 + k * period
        if due - t0 >= seconds:
            return lat
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        s = time.perf_counter()
        status, _ = get(port, "/metrics", gzip=True)
        lat.append((time.perf_counter() - s) * 1000)
        assert status == 200, status
        k += 1


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def series_of(body):
    return sum(1 for l in body.splitlines() if l and not l.startswith(b"#"))


ENDED = {}


def measure(pid, port, seconds):
    """CPU seconds per second, latencies and last body over `seconds` of
    scraping every second (threads seen to end: ENDED[pid])."""
    meter, w0 = CpuMeter(pid), time.monotonic()
    lat, body = scrape_every_second(port, seconds, after=meter.sample)
    cpu, w1 = meter.seconds(), time.monotonic()
    ENDED[pid] = len(meter.ended)
    return cpu / (w1 - w0), lat, body


rows = []
print(f"# bench-scale: {BIN}, window {WINDOW:.0f}s after {WARMUP:.0f}s warm-up, "
      f"{os.cpu_count()} CPUs, load at start {load()}", flush=True)
print(f"{'items':>6} {'series':>7} {'CPU ms/s':>9} {'us/series':>9} {'RSS MiB':>8} {'peak MiB':>9} "
      f"{'B/series':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'1Hz max':>7}  load", flush=True)
base = None
for n in SIZES:
    tproc = serve_target(n)
    cfg = os.path.join(work, f"scale-{n}.yaml")
    port = PORT + 10
    # The limit just above the need, as a user would set it (the SDK sizes
    # each instrument's table for its limit up front).
    limit = max(2000, 3 * n + 1000)
    open(cfg, "w").write(SCALE_CONFIG.format(port=port, tport=PORT + 1, limit=limit))
    p = start([BIN, f"--config.file={cfg}"])
    wait_ok(port, "/-/ready")
    time.sleep(WARMUP)
    cpu, lat, body = measure(p.pid, port, WINDOW)
    rss, hwm = status_kib(p.pid, "VmRSS"), status_kib(p.pid, "VmHWM")
    series = series_of(body)
    often = scrape_often(port, LAT_WINDOW)
    p.terminate(); p.wait()
    tproc.terminate(); tproc.join()
    if base is None:
        base = (series, rss)
    per = (rss - base[1]) * 1024 / (series - base[0]) if series > base[0] else float("nan")
    print(f"{n:>6} {series:>7} {cpu*1000:>9.1f} {cpu*1e6/series:>9.2f} {rss/1024:>8.1f} {hwm/1024:>9.1f} "
          f"{per:>9.0f} {pct(often,.5):>7.1f} {pct(often,.99):>7.1f} {max(often):>7.1f} {max(lat):>7.1f}  {load()}",
          flush=True)
    if ENDED.get(p.pid):
        print(f"  (note: {ENDED[p.pid]} thread(s) of remora ended in the window: CPU may be short)")
print("(us/series: CPU per series per poll-and-render cycle, one cycle per second, the HTTP "
      "client, runtime and scrapes included; B/series: RSS above the first size's, per series added; "
      f"p50/p99/max: {LAT_WINDOW:.0f} s of scrapes every 101.3 ms after the CPU window; "
      "1Hz max: the slowest scrape of the CPU window)")

if not os.environ.get("SKIP_HOST"):
    cfg = os.path.join(work, "host.yaml")
    rport, nport = PORT + 20, PORT + 21
    open(cfg, "w").write(HOST_CONFIG.format(port=rport))
    r = start([BIN, f"--config.file={cfg}"])
    ne = start([NODE, f"--web.listen-address=127.0.0.1:{nport}", "--collector.disable-defaults",
                "--collector.cpu", "--collector.meminfo", "--collector.loadavg",
                "--collector.filesystem", "--collector.netdev", "--collector.stat"])
    wait_ok(rport, "/-/ready"); wait_ok(nport, "/metrics")
    time.sleep(WARMUP)
    res = {}
    # Both scraped at once, every second, so both see the same load.
    def run(name, pid, port):
        res[name] = measure(pid, port, WINDOW)
    ts = [threading.Thread(target=run, args=a) for a in (("remora", r.pid, rport), ("node", ne.pid, nport))]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(f"\n# host collectors, both scraped every 1 s for {WINDOW:.0f}s (remora polls every 1 s)")
    print(f"{'':>14} {'CPU ms/s':>9} {'RSS MiB':>8} {'peak MiB':>9} {'series':>7} {'p50 ms':>7} {'p99 ms':>7}  load")
    for name, pid in (("remora", r.pid), ("node_exporter", ne.pid)):
        cpu, lat, body = res["remora" if name == "remora" else "node"]
        print(f"{name:>14} {cpu*1000:>9.2f} {status_kib(pid,'VmRSS')/1024:>8.1f} {status_kib(pid,'VmHWM')/1024:>9.1f} "
              f"{series_of(body):>7} {pct(lat,.5):>7.2f} {pct(lat,.99):>7.2f}  {load()}")
    rc, nc = res["remora"][0], res["node"][0]
    print(f"ratios remora/node_exporter: CPU {rc/nc:.2f}, RSS {status_kib(r.pid,'VmRSS')/status_kib(ne.pid,'VmRSS'):.2f}")
    for name, pid in (("remora", r.pid), ("node_exporter", ne.pid)):
        if ENDED.get(pid):
            print(f"  (note: {ENDED[pid]} thread(s) of {name} ended in the window: its CPU may be short)")
    r.terminate(); ne.terminate(); r.wait(); ne.wait()

if not os.environ.get("SKIP_START"):
    app = start(["target/release/examples/demo_app", "127.0.0.1:8080"])
    for _ in range(500):
        try:
            get(8080, "/health", timeout=2)
            break
        except OSError:
            time.sleep(0.01)
    times = []
    for _ in range(7):
        s = time.perf_counter()
        p = start([BIN, "--config.file=exporter.yaml", f"--web.listen-address=127.0.0.1:{PORT+30}"])
        while True:
            try:
                if get(PORT + 30, "/-/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.0005)
        times.append((time.perf_counter() - s) * 1000)
        p.terminate(); p.wait()
    print(f"\n# start to /-/ready with exporter.yaml (demo app up): median {statistics.median(times):.1f} ms, "
          f"min {min(times):.1f}, max {max(times):.1f} (7 starts)  load {load()}")
    app.terminate(); app.wait()
cleanup()
PY
