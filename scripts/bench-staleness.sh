#!/usr/bin/env bash
# How fresh are the values remora serves when the node's CPUs are busy?
# Compares two remora binaries in one run (e.g. before and after a change to
# how remora schedules its threads, src/sched), outside any container of
# their own: remora, the target, the CPU hogs and the scraper share this
# machine's cgroup, as on a node where remora is not a sidecar.
#
#   scripts/bench-staleness.sh BEFORE_BINARY AFTER_BINARY
#
# For each binary in turn:
#   - a local JSON target (python http.server, a process of its own) serves
#     15,000 items whose value is the Unix time in ms at which the body was
#     made; remora polls it every second (host collectors on, as in
#     exporter.yaml, minus the app's processes and container);
#   - IDLE_SECONDS (default 15) with no load, then 2 x nproc CPU hogs (busy
#     loops at nice 0) for DURATION seconds (default 60);
#   - a scraper GETs /metrics (gzip, as Prometheus does) every 250 ms; the
#     staleness of a scrape is the time it was received minus the oldest
#     served time among the 15,000 series (a 1 s interval alone gives 0-1 s
#     plus the fetch, the parse and the render);
#   - half way through the load, each thread of remora with its policy and
#     nice from /proc/PID/task/*/stat and /proc/PID/task/*/sched.
# Prints staleness p50 / p99 / max for each phase and binary, and the threads.
# ROUNDS=N (default 1) alternates the binaries N times.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 2 || ! -x $1 || ! -x $2 ]]; then
    echo "usage: $0 BEFORE_BINARY AFTER_BINARY (both executable)" >&2
    exit 2
fi

exec python3 - "$1" "$2" "${DURATION:-60}" "${IDLE_SECONDS:-15}" "${ROUNDS:-1}" <<'PY'
import gzip, http.client, os, socket, subprocess, sys, tempfile, time

before, after, duration, idle, rounds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
SERIES = 15000
HOGS = 2 * os.cpu_count()
PERIOD = 0.25
POLICIES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE", 6: "SCHED_DEADLINE"}

SERVER = r'''
import http.server, sys, time
items = ",".join('{"id":"s%05d","t":@T@}' % i for i in range(@N@))
template = ('{"items":[' + items + ']}').encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = template.replace(b"@T@", str(time.time_ns() // 1_000_000).encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''.replace("@N@", str(SERIES))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path, timeout=10, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Encoding"), r.read()
    finally:
        c.close()


def wait_until(what, ok, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if ok():
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{what} did not come up")


def scrape(port):
    """One scrape: (staleness in s, scrape time in s, series seen)."""
    t0 = time.time()
    status, enc, body = get(port, "/metrics", headers={"Accept-Encoding": "gzip"})
    received = time.time()
    if status != 200:
        return None
    text = gzip.decompress(body).decode() if enc == "gzip" else body.decode()
    served = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("served_at")]
    if not served:
        return None
    return received - min(served) / 1000, received - t0, len(served)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def threads(pid):
    out = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            sched = open(f"/proc/{pid}/task/{tid}/sched").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        f = stat[stat.rindex(")") + 2:].split()
        nice, policy = int(f[19 - 3]), int(f[41 - 3])
        cpu = (int(f[14 - 3]) + int(f[15 - 3])) / os.sysconf("SC_CLK_TCK")
        sched_policy = next((l.split(":")[1].strip() for l in sched.splitlines() if l.startswith("policy")), "?")
        out.append((name, tid, POLICIES.get(policy, str(policy)), nice, sched_policy, cpu))
    return out


def run(label, binary, target_port, dirname):
    port = free_port()
    cfg = os.path.join(dirname, f"{label}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""global: {{interval: 1s, timeout: 1s}}
limits: {{max_series_per_target: 20000, max_body_bytes: 16MiB}}
host:
  enabled: true
  collectors: [cpu, memory, load, filesystem, network, uptime, container]
  network: {{devices_exclude: "^lo$"}}
targets:
  - name: big
    url: http://127.0.0.1:{target_port}/status
    metrics:
      - {{name: served_at, description: when the body was made (Unix ms), each: '$.items[*]', path: $.t, labels: {{id: "{{$.id}}"}}}}
""")
    remora = subprocess.Popen([binary, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    hogs = []
    try:
        wait_until("remora", lambda: get(port, "/-/ready", timeout=1)[0] == 200)
        wait_until("the first poll", lambda: scrape(port) is not None)
        phases = {}
        for phase, seconds in (("idle", idle), ("load", duration)):
            if phase == "load":
                hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(HOGS)]
            samples, seen, tasks = [], set(), None
            start = next_at = time.time()
            while time.time() < start + seconds:
                s = scrape(port)
                if s:
                    samples.append(s)
                    seen.add(s[2])
                if phase == "load" and tasks is None and time.time() > start + seconds / 2:
                    tasks = threads(remora.pid)
                next_at = max(next_at + PERIOD, time.time())
                time.sleep(max(0, next_at - time.time()))
            phases[phase] = (samples, seen, tasks)
        return phases
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        remora.kill()
        remora.wait()


def main():
    print(f"# {os.uname().sysname} {os.uname().release}, {os.cpu_count()} CPUs, "
          f"load before start {os.getloadavg()[0]:.2f}, this script at nice {os.nice(0)}, "
          f"cgroup {open('/proc/self/cgroup').read().split()[-1]}")
    print(f"# {SERIES} series polled every 1s; {HOGS} hogs for {duration:.0f} s after {idle:.0f} s idle; "
          f"a scrape every {PERIOD * 1000:.0f} ms")
    target_port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(target_port)])
    results = []
    try:
        wait_until("the target", lambda: get(target_port, "/status")[0] == 200)
        with tempfile.TemporaryDirectory() as d:
            for r in range(rounds):
                for label, binary in (("before", before), ("after", after)):
                    print(f"# round {r + 1}: {label} ({binary}) ...", flush=True)
                    results.append((label, binary, run(label, binary, target_port, d)))
    finally:
        server.kill()
        server.wait()

    print()
    print(f"{'binary':<8} {'phase':<5} {'scrapes':>7} {'series':>8}  "
          f"{'staleness p50':>13} {'p99':>7} {'max':>7}   {'scrape p50':>10} {'p99':>7}")
    for label, _, phases in results:
        for phase, (samples, seen, _) in phases.items():
            if not samples:
                print(f"{label:<8} {phase:<5} no successful scrape")
                continue
            st = [s[0] for s in samples]
            sc = [s[1] for s in samples]
            print(f"{label:<8} {phase:<5} {len(samples):>7} {'/'.join(map(str, sorted(seen))):>8}  "
                  f"{pct(st, 50):>12.3f}s {pct(st, 99):>6.3f}s {max(st):>6.3f}s   "
                  f"{pct(sc, 50) * 1000:>8.1f}ms {pct(sc, 99) * 1000:>5.0f}ms")
    for label, binary, phases in results:
        print()
        print(f"threads of {label} under load (/proc/PID/task/*/stat, policy from .../sched):")
        tasks = phases["load"][2] or []
        groups = {}
        for name, tid, policy, nice, sched_policy, cpu in tasks:
            g = groups.setdefault((name, policy, nice, sched_policy), [0, 0.0])
            g[0] += 1
            g[1] += cpu
        print(f"  {'name':<16} {'n':>2} {'policy (stat)':<13} {'sched policy':>12} {'nice':>4} {'cpu s':>7}")
        for (name, policy, nice, sched_policy), (n, cpu) in sorted(groups.items()):
            print(f"  {name:<16} {n:>2} {policy:<13} {sched_policy:>12} {nice:>4} {cpu:>7.2f}")


main()
PY
