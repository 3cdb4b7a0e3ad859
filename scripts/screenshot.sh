#!/usr/bin/env bash
# Screenshots of remora's pages in headless Chromium, for a person to look at:
# `/` and `/targets/app` of a remora polling a small app whose body makes
# some rules fail (a status string, a misspelt key, an object read as a
# number, a hostile `<script>` value).
# Usage: scripts/screenshot.sh [--width PX] [OUT_DIR]
#   --width PX   the window's width (default 1200: the target page's failures
#                column must stay on screen there; tests/it/explain.rs checks it)
#   OUT_DIR      default target/screenshots; files index-PX.png, target-app-PX.png
# Needs chromium and python3 (scripts/test.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
WIDTH=1200
if [ "${1:-}" = "--width" ]; then
  WIDTH=${2:?--width needs a number of pixels}
  shift 2
fi
case "$WIDTH" in ''|*[!0-9]*) echo "--width: $WIDTH is not a number of pixels" >&2; exit 2;; esac
OUT=${1:-target/screenshots}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "chromium not found: run scripts/test.sh or apt-get install chromium" >&2; exit 1; }

cargo build --quiet --bin remora
BIN=$PWD/target/debug/remora
WORK=$(mktemp -d)
cleanup() { kill "${APP:-}" "${REMORA:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
APORT=$(free_port); RPORT=$(free_port)

cat > "$WORK/health" <<'EOF'
{"status": "ready", "app": {"uptime": 8130, "version": "1.4.2", "users": 12},
 "checks": {"db": {"latency_ms": 12, "status": "healthy"}, "cache": {"latency_ms": 3, "status": "degraded"}},
 "memory": {"rss": 1048576, "heap": 524288}, "note": "<script>alert(1)</script>"}
EOF
cat > "$WORK/exporter.yaml" <<EOF
host: {enabled: false}
targets:
  - name: app
    url: http://127.0.0.1:$APORT/health?api_key=hidden
    headers: {X-Api-Key: not-shown}
    interval: 2s
    timeout: 1s
    metrics:
      - {name: app.ready, path: \$.status}
      - {name: app.uptime, unit: s, path: \$.app.uptme}
      - name: app.dependency.latency
        unit: s
        each: \$.checks.*
        path: \$.latency_ms
        scale: 0.001
        labels: {dependency: "{@key}"}
      - name: app.dependency.status
        kind: stateset
        states: [healthy, unhealthy]
        each: \$.checks.*
        path: \$.status
        labels: {dependency: "{@key}"}
      - {name: app.memory, unit: By, path: \$.memory}
      - {name: app.note, path: \$.note}
      - {name: app.info, kind: info, path: \$.app.version, labels: {version: "{\$.app.version}"}}
EOF

(cd "$WORK" && exec python3 -m http.server "$APORT" --bind 127.0.0.1 >/dev/null 2>&1) & APP=$!
"$BIN" --config.file="$WORK/exporter.yaml" --web.listen-address=127.0.0.1:$RPORT 2>"$WORK/remora.log" & REMORA=$!

deadline=$(( $(date +%s) + 30 ))
until curl -sf -o /dev/null "http://127.0.0.1:$RPORT/-/ready" \
  && curl -sf "http://127.0.0.1:$RPORT/targets/app" | grep -q 'class="failing"'; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "remora did not poll the app within 30 s" >&2; cat "$WORK/remora.log" >&2; exit 1; }
  sleep 0.1
done

shoot() {
  timeout 90 "$CHROMIUM" --headless --disable-gpu --no-sandbox --no-first-run \
    --user-data-dir="$WORK/chromium" --hide-scrollbars --window-size="$WIDTH",1000 \
    --screenshot="$OUT/$1" "http://127.0.0.1:$RPORT$2" >/dev/null 2>&1
  echo "$OUT/$1"
}
shoot "index-$WIDTH.png" /
shoot "target-app-$WIDTH.png" /targets/app
