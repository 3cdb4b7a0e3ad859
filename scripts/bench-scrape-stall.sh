#!/usr/bin/env bash
# Does blocking work queued in remora hold a scrape? Starts remora with basic
# auth (bcrypt cost 10) and a target polled every second, sends N requests
# with a wrong password at once, and while they are being checked times an
# authorised GET /metrics (its password pair is already verified and cached).
#
#   scripts/bench-scrape-stall.sh [BINARY] [WRONG_PASSWORDS]
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/release/remora}
WRONG=${2:-200}
if [[ ! -x $BIN ]]; then
    cargo build --release
fi
dir=$(mktemp -d)
trap 'kill "$pid" "$app" 2>/dev/null || true; rm -rf "$dir"' EXIT
hash=$(python3 -c "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)))")
printf 'basic_auth_users:\n  prom: %s\n' "$hash" > "$dir/web.yml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$dir/www" && echo '{"ok": 1}' > "$dir/www/health"
python3 -m http.server "$aport" --bind 127.0.0.1 --directory "$dir/www" >/dev/null 2>&1 &
app=$!
cat > "$dir/exporter.yaml" <<EOF
global: {interval: 1s, timeout: 500ms}
targets:
  - {name: app, url: 'http://127.0.0.1:$aport/health', metrics: [{name: app_ok, path: \$.ok}]}
EOF
"$BIN" --config.file="$dir/exporter.yaml" --web.config.file="$dir/web.yml" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn &
pid=$!

python3 - "$port" "$WRONG" <<'EOF'
import base64, http.client, sys, threading, time

port, wrong = int(sys.argv[1]), int(sys.argv[2])

def get(user, password, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    c.request("GET", "/metrics", headers={"Authorization": f"Basic {auth}"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status

deadline = time.time() + 30
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/-/ready")
        if c.getresponse().status == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("remora did not become ready")
    time.sleep(0.05)
assert get("prom", "s3cret") == 200  # verified once, cached from now on
time.sleep(1.5)                      # the target changes the state meanwhile

threads = [threading.Thread(target=get, args=("prom", f"wrong{i}")) for i in range(wrong)]
start = time.time()
for t in threads:
    t.start()
time.sleep(0.2)  # let the wrong passwords queue up
t0 = time.time()
status = get("prom", "s3cret")
took = time.time() - t0
print(f"authorised GET /metrics during {wrong} wrong passwords: {status} in {took*1000:.0f} ms")
for t in threads:
    t.join()
print(f"all {wrong} wrong passwords answered after {time.time()-start:.1f} s")
EOF
