#!/usr/bin/env bash
# RSS of remora after N reloads (POST /-/reload, default 55) of the repository's
# exporter.yaml (or $CONFIG), for each binary given: compare two builds.
#   N=55 scripts/bench-reloads.sh old/remora target/release/remora
set -euo pipefail
N=${N:-55}
CONFIG=${CONFIG:-$(cd "$(dirname "$0")/.." && pwd)/exporter.yaml}
for BIN in "$@"; do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN" --config.file="$CONFIG" --web.listen-address=127.0.0.1:$PORT --web.enable-lifecycle >/dev/null 2>&1 &
  P=$!
  until curl -sf http://127.0.0.1:$PORT/-/ready >/dev/null; do sleep 0.05; done
  curl -sf http://127.0.0.1:$PORT/metrics >/dev/null
  idle=$(awk '/VmRSS/{print $2}' /proc/$P/status)
  for i in $(seq $N); do curl -sf -X POST http://127.0.0.1:$PORT/-/reload >/dev/null; curl -sf http://127.0.0.1:$PORT/metrics >/dev/null; done
  after=$(awk '/VmRSS/{print $2}' /proc/$P/status)
  hwm=$(awk '/VmHWM/{print $2}' /proc/$P/status)
  printf '%-40s idle %6.1f MiB  after %d reloads %6.1f MiB  peak %6.1f MiB\n' "$BIN" $(echo "$idle/1024" | bc -l) $N $(echo "$after/1024" | bc -l) $(echo "$hwm/1024" | bc -l)
  kill $P; wait $P 2>/dev/null || true
done
