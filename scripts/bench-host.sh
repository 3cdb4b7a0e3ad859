#!/usr/bin/env bash
# Host-metrics cost: remora vs prometheus-node-exporter on this machine.
#
#   scripts/bench-host.sh [SCRAPES]        (default 200)
#
# node_exporter polls the host at every scrape, so its cost per poll is the
# CPU time of SCRAPES scrapes divided by SCRAPES. It is measured twice: with
# its default collectors, and with only the collectors matching remora's
# (cpu, meminfo, loadavg, filesystem, netdev, stat for the boot time).
#
# remora polls the host on its interval and serves the last snapshot, so it is
# measured in two parts: the CPU time of WINDOW seconds of polling every
# INTERVAL_MS with no scrapes, divided by the number of polls (= CPU per poll,
# idle runtime included), then the CPU time of SCRAPES scrapes (= CPU per
# scrape). remora runs every host collector plus one process matcher and the
# app container limits. Skipped while the binary is missing.
#
# Every figure: CPU from /proc/PID/stat (utime+stime), resident memory VmRSS
# and its peak VmHWM from /proc/PID/status, series = non-comment lines.
#
# Environment: REMORA_BIN (target/release/remora), NODE_EXPORTER
# (/usr/bin/prometheus-node-exporter), WINDOW (20), INTERVAL_MS (100),
# PORT_BASE (19600).
set -euo pipefail
cd "$(dirname "$0")/.."

SCRAPES=${1:-200}
WINDOW=${WINDOW:-20}
INTERVAL_MS=${INTERVAL_MS:-100}
REMORA_BIN=${REMORA_BIN:-target/release/remora}
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
PORT_BASE=${PORT_BASE:-19600}
TCK=$(getconf CLK_TCK)

if [ ! -x "$NODE_EXPORTER" ] && ! command -v "$NODE_EXPORTER" >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
fi
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
WORK=$(mktemp -d)
trap 'cleanup; rm -rf "$WORK"' EXIT

# utime + stime in clock ticks (fields 14 and 15; the command name may hold spaces).
cpu_ticks() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; set -- $s; echo $(( ${12} + ${13} )); }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
wait_ready() {
  for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "not ready: $1" >&2; return 1
}
scrape_n() { for _ in $(seq 1 "$2"); do curl -s -o /dev/null "$1"; done; }
ms() { awk -v t="$1" -v n="$2" -v h="$TCK" 'BEGIN { printf "%.2f", t * 1000 / h / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

printf '%-28s %14s %14s %9s %9s %8s\n' "exporter" "CPU/poll ms" "CPU/scrape ms" "RSS MiB" "peak MiB" "series"

# node_exporter: one poll per scrape.
measure_node() {
  local label=$1 port=$2; shift 2
  "$NODE_EXPORTER" --web.listen-address="127.0.0.1:$port" "$@" >"$WORK/$port.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  local url="http://127.0.0.1:$port/metrics"
  wait_ready "$url"
  scrape_n "$url" 5
  local c0; c0=$(cpu_ticks "$pid")
  scrape_n "$url" "$SCRAPES"
  local c1; c1=$(cpu_ticks "$pid")
  local series; series=$(curl -s "$url" | grep -vc '^#')
  printf '%-28s %14s %14s %9s %9s %8s\n' "$label" "$(ms $((c1 - c0)) "$SCRAPES")" "(same)" \
    "$(mib "$(status_kib "$pid" VmRSS)")" "$(mib "$(status_kib "$pid" VmHWM)")" "$series"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

measure_node "node_exporter (defaults)" $((PORT_BASE + 1))
measure_node "node_exporter (same set)" $((PORT_BASE + 2)) \
  --collector.disable-defaults --collector.cpu --collector.meminfo --collector.loadavg \
  --collector.filesystem --collector.netdev --collector.stat

# remora: polls on its interval, scrapes read the snapshot.
if [ -x "$REMORA_BIN" ]; then
  port=$((PORT_BASE + 3))
  cat >"$WORK/exporter.yaml" <<EOF
server:
  listen: 127.0.0.1:$port
global:
  interval: ${INTERVAL_MS}ms
  timeout: ${INTERVAL_MS}ms
host:
  enabled: true
  collectors: [cpu, memory, load, filesystem, network, uptime, container]
  processes:
    - name: shell
      cmdline: "^(/usr)?(/bin/)?(ba)?sh( |$)"
  app_container:
    name: app
    memory_limit: 512Mi
    cpu_limit: "0.5"
targets: []
EOF
  "$REMORA_BIN" --config.file="$WORK/exporter.yaml" --web.listen-address="127.0.0.1:$port" >"$WORK/remora.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  url="http://127.0.0.1:$port/metrics"
  wait_ready "$url" || { cat "$WORK/remora.log" >&2; exit 1; }
  sleep 2
  c0=$(cpu_ticks "$pid"); sleep "$WINDOW"; c1=$(cpu_ticks "$pid")
  per_poll=$(ms $((c1 - c0)) $((WINDOW * 1000 / INTERVAL_MS)))
  scrape_n "$url" 5
  c2=$(cpu_ticks "$pid"); scrape_n "$url" "$SCRAPES"; c3=$(cpu_ticks "$pid")
  series=$(curl -s "$url" | grep -vc '^#')
  printf '%-28s %14s %14s %9s %9s %8s\n' "remora (host, ${INTERVAL_MS}ms)" "$per_poll" "$(ms $((c3 - c2)) "$SCRAPES")" \
    "$(mib "$(status_kib "$pid" VmRSS)")" "$(mib "$(status_kib "$pid" VmHWM)")" "$series"
  kill "$pid"; wait "$pid" 2>/dev/null || true
else
  echo "remora: $REMORA_BIN not built; in-process figures: cargo bench --bench host" >&2
fi
echo "($SCRAPES scrapes each; remora: $((WINDOW * 1000 / INTERVAL_MS)) polls in ${WINDOW}s; clock tick 1/${TCK}s; $(nproc) cores)"
