#!/usr/bin/env bash
# Soak: remora (release) against local targets with label churn (label values
# that change at every poll), a flapping target and a Prometheus-format target
# with churn, a reload every minute (the config alternates between two
# versions), and a scrape every second. Prints, each minute, remora's RSS,
# threads, open fds and sockets, then RSS statistics after the first 5 minutes.
#
#   scripts/soak.sh [minutes]     # default 60
#   REMORA_BIN=path/to/remora scripts/soak.sh 60   # a given binary instead of a release build
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-60}"
if [ -n "${REMORA_BIN:-}" ]; then
  BIN="$REMORA_BIN"
else
  cargo build --release --locked --quiet --bin remora
  BIN=target/release/remora
fi
WORK=$(mktemp -d)
cleanup() { kill "${REMORA:-}" "${TARGETS:-}" "${SCRAPER:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

python3 scripts/soak_targets.py 0 > "$WORK/targets.log" &
TARGETS=$!
until grep -q listening "$WORK/targets.log" 2>/dev/null; do sleep 0.05; done
TPORT=$(awk '/listening/ {print $3}' "$WORK/targets.log")

config() { # $1: interval of the churn target (the two versions differ)
cat <<YAML
global: {interval: 1s, timeout: 1s}
host: {enabled: true}
targets:
  - name: churn
    url: http://127.0.0.1:$TPORT/churn
    interval: $1
    timeout: 1s
    metrics:
      - name: soak.item.value
        each: \$.items.*
        path: \$.value
        labels: {item: "{@key}"}
      - name: soak.n
        path: \$.n
  - name: flap
    url: http://127.0.0.1:$TPORT/flap
    interval: 1s
    timeout: 1s
    metrics:
      - name: soak.flap.n
        path: \$.n
  - name: prom
    url: http://127.0.0.1:$TPORT/prom
    format: prometheus
    interval: 1s
    timeout: 1s
YAML
}
config 1s > "$WORK/exporter.yaml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$BIN --config.file="$WORK/exporter.yaml" --web.listen-address=127.0.0.1:$PORT --log.level=error 2>"$WORK/remora.log" &
REMORA=$!
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/-/ready"; do sleep 0.05; done

( while true; do curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics"; sleep 1; done ) &
SCRAPER=$!

sample() {
  local rss threads fds socks
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$REMORA/status")
  threads=$(awk '/^Threads/ {print $2}' "/proc/$REMORA/status")
  fds=$(ls "/proc/$REMORA/fd" | wc -l)
  socks=$(find "/proc/$REMORA/fd" -lname 'socket:*' 2>/dev/null | wc -l)
  series=$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -vc '^#' || true)
  printf '%6s %10s %8s %5s %8s %8s\n' "$1" "$rss" "$threads" "$fds" "$socks" "$series"
  echo "$1 $rss" >> "$WORK/rss"
}
printf '%6s %10s %8s %5s %8s %8s\n' minute rss_kib threads fds sockets series
sample 0
for m in $(seq 1 "$MINUTES"); do
  sleep 60
  if [ $((m % 2)) = 1 ]; then config 2s; else config 1s; fi > "$WORK/exporter.yaml.new"
  mv "$WORK/exporter.yaml.new" "$WORK/exporter.yaml"
  kill -HUP "$REMORA"
  sample "$m"
done
awk '$1 > 5 { n++; s += $2; v[n] = $2 } END {
  if (n == 0) { print "run longer than 5 minutes for statistics"; exit }
  mean = s / n; max = 0
  for (i = 1; i <= n; i++) { d = (v[i] - mean) / mean; if (d < 0) d = -d; if (d > max) max = d }
  printf "after minute 5: mean RSS %.0f KiB, largest deviation from the mean %.1f %%\n", mean, max * 100
}' "$WORK/rss"
