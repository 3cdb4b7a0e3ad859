#!/usr/bin/env bash
# remora at fleet scale: N remora processes (one per "pod") and one real Prometheus
# scraping them all, beside one prometheus-node-exporter (the per-node peer).
#
#   scripts/bench-fleet.sh [N] [DURATION_S]        (defaults 100 and 300)
#
# Each remora runs k8s/base/exporter.yaml (every host collector, the app's processes
# and container limits, and three JSON targets: /health, /health/ready, /version),
# its targets pointing at ONE shared demo app (a small Python server answering the
# documents of k8s/base/demo-app/). Prometheus discovers the N remoras through file
# service discovery and scrapes them, node_exporter and itself every SCRAPE_INTERVAL.
#
# After a warm-up (two scrape intervals) the script measures DURATION_S seconds and
# prints, total and per pod:
#   - remora RSS (VmRSS summed over the N processes) and CPU (utime+stime over the
#     window, in cores);
#   - samples per second Prometheus ingested from the remoras (scrape_samples_scraped
#     over the window / DURATION) and in all (prometheus_tsdb_head_samples_appended_total);
#   - scrape duration p50 / p99 from Prometheus's own scrape_duration_seconds, over
#     every scrape of every remora in the window, and the worst pod's p99;
#   - the same for the node_exporter, for the per-node comparison.
# Every process it starts is stopped on exit (also on Ctrl-C or a failure).
#
# Environment: REMORA_BIN (target/release/remora), NODE_EXPORTER
# (/usr/bin/prometheus-node-exporter), PROMETHEUS (prometheus on PATH),
# SCRAPE_INTERVAL (15s), PORT_BASE (21000: remoras on PORT_BASE+1..N),
# SIZES=1 also builds release binaries with and without the `otlp` feature and
# prints both sizes (slow: two release builds).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-100}
DURATION=${2:-300}
REMORA_BIN=${REMORA_BIN:-target/release/remora}
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || echo /usr/bin/prometheus)}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-15s}
PORT_BASE=${PORT_BASE:-21000}
TCK=$(getconf CLK_TCK)

for t in curl python3; do command -v "$t" >/dev/null || { echo "$t is needed" >&2; exit 1; }; done
[ -x "$PROMETHEUS" ] || { echo "prometheus not found (apt-get install prometheus)" >&2; exit 1; }
[ -x "$NODE_EXPORTER" ] || { echo "prometheus-node-exporter not found" >&2; exit 1; }

if [ "${SIZES:-0}" = 1 ]; then
  cargo build -q --release --no-default-features --bin remora
  without=$(stat -c %s target/release/remora)
  cargo build -q --release --bin remora
  with=$(stat -c %s target/release/remora)
  awk -v a="$without" -v b="$with" 'BEGIN { printf "binary size: %.2f MiB without otlp, %.2f MiB with (+%.2f MiB, +%.1f%%)\n", a/1048576, b/1048576, (b-a)/1048576, (b-a)*100/a }'
fi
[ -x "$REMORA_BIN" ] || { echo "$REMORA_BIN missing: cargo build --release" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-fleet.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { # URL [TRIES]
  local i
  for i in $(seq 1 "${2:-400}"); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "not ready: $1" >&2; return 1
}
cpu_ticks() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }

# The shared demo app: the documents nginx serves in k8s/base.
APP_PORT=$(free_port)
cat >"$WORK/app.py" <<'EOF'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
base = sys.argv[2]
routes = {"/health": "health.json", "/health/ready": "ready.json", "/version": "version.json"}
docs = {p: open(f"{base}/{f}", "rb").read() for p, f in routes.items()}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = docs.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$WORK/app.py" "$APP_PORT" k8s/base/demo-app 2>"$WORK/app.log" &
PIDS+=($!)
wait_ok "http://127.0.0.1:$APP_PORT/health"

# N remoras, each with k8s/base/exporter.yaml pointed at the shared app.
sed "s#http://127.0.0.1:8080#http://127.0.0.1:$APP_PORT#g" k8s/base/exporter.yaml >"$WORK/exporter.yaml"
REMORA_PIDS=()
targets=""
for i in $(seq 1 "$N"); do
  port=$((PORT_BASE + i))
  POD_NAME="pod-$i" POD_NAMESPACE=bench NODE_NAME=node-1 APP_MEMORY_LIMIT=268435456 APP_CPU_LIMIT=500 \
    "$REMORA_BIN" --config.file="$WORK/exporter.yaml" --web.listen-address="127.0.0.1:$port" \
    --log.level=warn >"$WORK/remora-$i.log" 2>&1 &
  PIDS+=($!)
  REMORA_PIDS+=($!)
  targets+="${targets:+,}\"127.0.0.1:$port\""
done
for i in $(seq 1 "$N"); do wait_ok "http://127.0.0.1:$((PORT_BASE + i))/-/ready" 600; done

NODE_PORT=$(free_port)
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NODE_PORT" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
PIDS+=($NODE_PID)
wait_ok "http://127.0.0.1:$NODE_PORT/metrics"

# One Prometheus, the remoras found through file service discovery.
PROM_PORT=$(free_port)
echo "[{\"targets\": [$targets], \"labels\": {\"fleet\": \"bench\"}}]" >"$WORK/remoras.json"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: $SCRAPE_INTERVAL
scrape_configs:
  - job_name: remora
    file_sd_configs: [{files: ["$WORK/remoras.json"]}]
  - job_name: node
    static_configs: [{targets: ["127.0.0.1:$NODE_PORT"]}]
  - job_name: prometheus
    static_configs: [{targets: ["127.0.0.1:$PROM_PORT"]}]
EOF
"$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
wait_ok "http://127.0.0.1:$PROM_PORT/-/ready" 1200 || { tail -20 "$WORK/prometheus.log" >&2; exit 1; }

step=${SCRAPE_INTERVAL%s}
warm=$((2 * step + 5))
echo "fleet: $N remoras ($REMORA_BIN), 3 targets each against one demo app, host collectors on;"
echo "       Prometheus scrapes every $SCRAPE_INTERVAL; warm-up ${warm}s, then ${DURATION}s measured"
echo "       load average at start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
sleep "$warm"

cpu0=0
for p in "${REMORA_PIDS[@]}"; do cpu0=$((cpu0 + $(cpu_ticks "$p"))); done
node0=$(cpu_ticks "$NODE_PID")
sleep "$DURATION"
cpu1=0
rss=0
for p in "${REMORA_PIDS[@]}"; do
  cpu1=$((cpu1 + $(cpu_ticks "$p")))
  rss=$((rss + $(rss_kib "$p")))
done
node1=$(cpu_ticks "$NODE_PID")
node_rss=$(rss_kib "$NODE_PID")
echo "       load average at end:   $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$PROM_PORT" "$N" "$DURATION" "$((cpu1 - cpu0))" "$rss" "$((node1 - node0))" "$node_rss" "$TCK" <<'EOF'
import json, statistics, sys, urllib.parse, urllib.request
port, n, dur, cpu, rss, ncpu, nrss, tck = sys.argv[1:]
n, dur, cpu, rss, ncpu, nrss, tck = int(n), int(dur), int(cpu), int(rss), int(ncpu), int(nrss), int(tck)

def q(expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.load(r)["data"]["result"]

def series(expr):
    """{instance: [values]} of a range selector."""
    return {s["metric"].get("instance", "?"): [float(v) for _, v in s["values"]] for s in q(expr)}

def pct(vals, p):
    vals = sorted(vals)
    if not vals:
        return float("nan")
    return vals[min(len(vals) - 1, int(round(p / 100 * (len(vals) - 1))))]

w = f"[{dur}s]"
durs = series(f'scrape_duration_seconds{{job="remora"}}{w}')
samples = series(f'scrape_samples_scraped{{job="remora"}}{w}')
ndurs = series(f'scrape_duration_seconds{{job="node"}}{w}')
nsamples = series(f'scrape_samples_scraped{{job="node"}}{w}')
head = q(f"rate(prometheus_tsdb_head_samples_appended_total{w})")
up = q('sum(up{job="remora"})')
tup = q('sum(remora_target_up{job="remora"})')
tall = q('count(remora_target_up{job="remora"})')
alld = [v for vs in durs.values() for v in vs]
nd = [v for vs in ndurs.values() for v in vs]
rem_sps = sum(sum(vs) for vs in samples.values()) / dur
node_sps = sum(sum(vs) for vs in nsamples.values()) / dur
per_scrape = statistics.mean(v for vs in samples.values() for v in vs) if samples else float("nan")
node_per_scrape = statistics.mean(v for vs in nsamples.values() for v in vs) if nsamples else float("nan")
worst = max((pct(vs, 99) for vs in durs.values()), default=float("nan"))
cores = cpu / tck / dur
ncores = ncpu / tck / dur
print()
print(f"{'':34} {'total':>14} {'per pod':>14}")
print(f"{'remora pods up (Prometheus)':34} {float(up[0]['value'][1]) if up else 0:>14.0f} {'':>14}")
print(f"{'app targets up at the end':34} {float(tup[0]['value'][1]) if tup else 0:>14.0f} {'of ' + (tall[0]['value'][1] if tall else '0'):>14}")
print(f"{'remora RSS (MiB)':34} {rss/1024:>14.1f} {rss/1024/n:>14.2f}")
print(f"{'remora CPU (cores)':34} {cores:>14.4f} {cores/n:>14.5f}")
print(f"{'samples/s ingested from remoras':34} {rem_sps:>14.1f} {rem_sps/n:>14.2f}")
print(f"{'samples per scrape':34} {'':>14} {per_scrape:>14.0f}")
print(f"{'Prometheus head samples/s (all)':34} {float(head[0]['value'][1]) if head else 0:>14.1f} {'':>14}")
print(f"{'scrape duration p50 (ms)':34} {pct(alld, 50)*1000:>14.2f} {'':>14}")
print(f"{'scrape duration p99 (ms)':34} {pct(alld, 99)*1000:>14.2f} {'':>14}")
print(f"{'worst pod p99 (ms)':34} {'':>14} {worst*1000:>14.2f}")
print(f"{'scrapes measured':34} {len(alld):>14} {len(alld)/max(n,1):>14.1f}")
print()
print("peer, one per node: prometheus-node-exporter (defaults), same Prometheus, same window")
print(f"{'node_exporter RSS (MiB)':34} {nrss/1024:>14.1f}")
print(f"{'node_exporter CPU (cores)':34} {ncores:>14.5f}")
print(f"{'node_exporter samples/s':34} {node_sps:>14.2f}")
print(f"{'node_exporter samples per scrape':34} {node_per_scrape:>14.0f}")
print(f"{'node_exporter scrape p50/p99 (ms)':34} {pct(nd, 50)*1000:>7.2f} /{pct(nd, 99)*1000:>6.2f}")
print()
for pods in (10000,):
    print(f"extrapolated to {pods} pods (x{pods/n:.0f} of the per-pod figures):")
    print(f"  remora: {rss/1024/n*pods/1024:.1f} GiB RSS, {cores/n*pods:.1f} cores, {rem_sps/n*pods:,.0f} samples/s")
    for ppn in (30, 110):
        nodes = -(-pods // ppn)
        print(f"  node_exporter at {ppn} pods/node ({nodes} nodes): {nrss/1024*nodes/1024:.1f} GiB RSS, "
              f"{ncores*nodes:.1f} cores, {node_sps*nodes:,.0f} samples/s")
EOF
