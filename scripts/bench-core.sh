#!/usr/bin/env bash
# Measures remora with the repository's exporter.yaml beside node_exporter in
# the same run: release binary size, time from start to /-/ready, idle
# resident memory, and /metrics latency under wrk -c10 -d10s.
# Installs wrk and prometheus-node-exporter when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null || ! command -v prometheus-node-exporter >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk prometheus-node-exporter >/dev/null
fi
cargo build --release --locked --quiet --bin remora
cargo build --release --locked --quiet --example demo_app
BIN=target/release/remora
RPORT=19479; NPORT=19100; APORT=8080

cleanup() { kill "${APP:-}" "${REMORA:-}" "${NODE:-}" 2>/dev/null || true; }
trap cleanup EXIT

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
ms_now() { date +%s%3N; }

target/release/examples/demo_app 127.0.0.1:$APORT >/dev/null & APP=$!
sleep 0.3

start=$(ms_now)
$BIN --config.file=exporter.yaml --web.listen-address=127.0.0.1:$RPORT 2>/dev/null & REMORA=$!
until curl -sf -o /dev/null http://127.0.0.1:$RPORT/-/ready; do sleep 0.002; done
ready_ms=$(( $(ms_now) - start ))

prometheus-node-exporter --web.listen-address=127.0.0.1:$NPORT >/dev/null 2>&1 & NODE=$!
until curl -sf -o /dev/null http://127.0.0.1:$NPORT/metrics; do sleep 0.01; done

sleep 20   # idle: a few poll rounds
remora_idle=$(rss_kib $REMORA); node_idle=$(rss_kib $NODE)
remora_series=$(curl -s http://127.0.0.1:$RPORT/metrics | grep -vc '^#')
node_series=$(curl -s http://127.0.0.1:$NPORT/metrics | grep -vc '^#')

bench() { wrk -t2 -c10 -d10s --latency "$1" | awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /Requests\/sec/{rps=$2} END{print p50, p99, rps}'; }
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
r0=$(cpu_s $REMORA); read -r r50 r99 rrps < <(bench http://127.0.0.1:$RPORT/metrics); r1=$(cpu_s $REMORA)
n0=$(cpu_s $NODE); read -r n50 n99 nrps < <(bench http://127.0.0.1:$NPORT/metrics); n1=$(cpu_s $NODE)
remora_load=$(rss_kib $REMORA); node_load=$(rss_kib $NODE)

size=$(stat -c %s $BIN)
printf '\n%-38s %14s %18s\n' "figure" "remora" "node_exporter"
printf '%-38s %14s %18s\n' "release binary (bytes)" "$size" "$(stat -c %s "$(command -v prometheus-node-exporter)")"
printf '%-38s %14s %18s\n' "start to /-/ready (ms)" "$ready_ms" "-"
printf '%-38s %14s %18s\n' "series served" "$remora_series" "$node_series"
printf '%-38s %14s %18s\n' "idle RSS (KiB)" "$remora_idle" "$node_idle"
printf '%-38s %14s %18s\n' "RSS after wrk (KiB)" "$remora_load" "$node_load"
printf '%-38s %14s %18s\n' "wrk -c10 -d10s p50 latency" "$r50" "$n50"
printf '%-38s %14s %18s\n' "wrk -c10 -d10s p99 latency" "$r99" "$n99"
printf '%-38s %14s %18s\n' "wrk requests/s" "$rrps" "$nrps"
printf '%-38s %14s %18s\n' "CPU seconds during wrk" "$(echo "$r1 - $r0" | bc -l)" "$(echo "$n1 - $n0" | bc -l)"
printf 'RSS ratio node_exporter/remora (idle): %.1f\n' "$(echo "$node_idle / $remora_idle" | bc -l)"
