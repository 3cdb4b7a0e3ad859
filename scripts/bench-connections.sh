#!/usr/bin/env bash
# Idle connections against remora: opens N idle TCP connections in bursts,
# prints remora's RSS (VmRSS, VmHWM) before and after, and how long a client
# that connects after them takes to get /metrics.
#
#   scripts/bench-connections.sh [BINARY] [CONNECTIONS] [BURST] [EXTRA FLAGS...]
#
# BINARY defaults to target/release/remora (built if missing), CONNECTIONS to
# 5000, BURST to 500 (connections opened back to back, 0.1 s between bursts).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/release/remora}
CONNS=${2:-5000}
BURST=${3:-500}
shift $(( $# < 3 ? $# : 3 ))
if [[ ! -x $BIN ]]; then
    cargo build --release
fi
# Room for the client's sockets (remora raises nothing: its own limit applies).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n "$(( CONNS + 1024 ))" 2>/dev/null || true

dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
# Host collectors on (the default), no targets: a sidecar at rest.
printf 'host: {enabled: true}\n' > "$dir/exporter.yaml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" --config.file="$dir/exporter.yaml" --web.listen-address="127.0.0.1:$port" --log.level=warn "$@" &
pid=$!

python3 - "$pid" "$port" "$CONNS" "$BURST" <<'EOF'
import http.client, selectors, socket, sys, time

pid, port, conns, burst = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def mem():
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = v.strip()
    return out

def fds():
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))

def get(path, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body

deadline = time.time() + 30
while True:
    try:
        if get("/-/ready", 1)[0] == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("remora did not become ready")
    time.sleep(0.05)
for _ in range(3):  # a few scrapes: the steady state of a scraped sidecar
    get("/metrics")
time.sleep(0.5)

def report(label):
    m = mem()
    print(f"{label:<34} VmRSS {m['VmRSS']:>10}   VmHWM {m['VmHWM']:>10}   threads {m['Threads']:>3}   fds {fds():>5}", flush=True)

report("before")
socks, failed = [], 0
start = time.time()
while len(socks) + failed < conns:
    # One burst: non-blocking connects all at once, then wait for them.
    pending = []
    for _ in range(min(burst, conns - len(socks) - failed)):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        pending.append(s)
    sel = selectors.DefaultSelector()
    for s in pending:
        sel.register(s, selectors.EVENT_WRITE)
    left, until = len(pending), time.time() + 10
    while left and time.time() < until:
        for key, _ in sel.select(timeout=max(0.0, until - time.time())):
            sel.unregister(key.fileobj)
            left -= 1
            if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                socks.append(key.fileobj)
            else:
                failed += 1
                key.fileobj.close()
    for key in list(sel.get_map().values()):
        failed += 1
        key.fileobj.close()
    sel.close()
    time.sleep(0.1)
opened = time.time() - start
print(f"opened {len(socks)} idle connections in {opened:.2f} s ({failed} failed to connect)")
report("after opening")

t0 = time.time()
status, body = get("/metrics")
took = time.time() - t0
print(f"new client: GET /metrics -> {status}, {len(body)} bytes in {took*1000:.0f} ms")
report("after the new client")

def still_open():
    n = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                continue
        except BlockingIOError:
            n += 1
        except OSError:
            continue
    return n

print(f"idle connections still open (client side): {still_open()}")
time.sleep(11)
report("11 s later (past header timeouts)")
print(f"idle connections still open (client side): {still_open()}")
for s in socks:
    s.close()
EOF
