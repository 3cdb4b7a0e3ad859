#!/usr/bin/env bash
# Writes link/code-order.txt: the functions of the release binary that run in
# a sidecar's life, most instructions first, which build.rs hands to the
# linker (--symbol-ordering-file) so that they sit together at the start of
# the code. The kernel maps code 64 KB at a time around each page that runs;
# laid out together, what runs maps about a third of the binary.
#
#   scripts/code-order.sh           write link/code-order.txt again
#   scripts/code-order.sh --check   check that the release build is laid out by the
#                                   list (fails under MIN_PERCENT=90 % of its names)
#                                   and loads no libm.so.6 (src/mathlib.rs)
#
# How: a release build as users make it (`cargo build --release --bin
# remora`: the names carry a hash of the crate's build settings, so a build
# with the examples, another profile or another rustc has other names) with
# the linker's map (REMORA_LINK_MAP), then remora under callgrind in three
# runs, scraped with and without gzip while they poll every second: the
# repository's exporter.yaml against the demo app (JSON and Prometheus
# targets, every host collector, the app's processes and container), one JSON
# target of 3,000 items (the large-body path), and the host collectors alone.
# Each function callgrind saw run in remora's code is found in the map by its
# address. Run it again after a dependency or rustc update, or when
# `--check` finds much of the list gone; a name the build lacks only keeps its
# function in its default place.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-40}
MAP=target/release/remora.map
work=$(mktemp -d /tmp/code-order.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

REMORA_LINK_MAP=$PWD/$MAP cargo build --release --locked --quiet --bin remora

if [ "${1:-}" = "--check" ]; then
  # Fails when under MIN_PERCENT (default 90) of the list's names are in the
  # build, or when the functions found do not open the code in the list's
  # order (the linker was not handed the list).
  python3 - "$MAP" link/code-order.txt "${MIN_PERCENT:-90}" <<'PY'
import re, sys
mapfile, listfile, least = sys.argv[1], sys.argv[2], float(sys.argv[3])
addr = {}
text = None
for line in open(mapfile):
    m = re.match(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\.text$", line)
    if m and text is None:
        text = int(m.group(1), 16)
    m = re.match(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S.*"
                 r"\(\.text\.(?:(?:unlikely|hot|startup|exit|split)\.)?([^)\s]+)\)$", line)
    if m:
        addr[m.group(3)] = (int(m.group(1), 16), int(m.group(2), 16))
want = [l.strip() for l in open(listfile) if l.strip()]
found = [addr[n] for n in want if n in addr]
share = 100 * len(found) / max(1, len(want))
in_order = all(a[0] < b[0] for a, b in zip(found, found[1:]))
span = max((a + s for a, s in found), default=0) - (text or 0)
size = sum(s for _, s in found)
print(f"{len(found)} of {len(want)} names in link/code-order.txt are in this build ({share:.0f} %); "
      f"in the list's order: {'yes' if in_order else 'no'}; "
      f"their {size / 1e6:.2f} MB of code within the first {span / 1e6:.2f} MB of .text")
if share < least or not in_order or span > 1.1 * size:
    sys.exit(f"code order not applied: run scripts/code-order.sh again (MIN_PERCENT={least:g})")
PY
  # src/mathlib.rs defines the C math functions the dependencies call, so the
  # binary does not load libm.so.6 (0.46 MiB of RSS); a new caller of another
  # one (exp, sin, ...) brings it back.
  if readelf -d target/release/remora | grep -q 'NEEDED.*libm\.so'; then
    echo "target/release/remora loads libm.so.6 again; the math functions it takes from it:" >&2
    libm=$(ldd target/release/remora | awk '/libm\.so/ {print $3}')
    comm -12 <(nm -D --undefined-only target/release/remora | awk '{sub(/@.*/, "", $2); print $2}' | sort -u) \
      <(nm -D --defined-only "$libm" | awk '{sub(/@.*/, "", $3); print $3}' | sort -u) >&2
    echo "define them in src/mathlib.rs from the libm crate" >&2
    exit 1
  fi
  echo "libm.so.6 not loaded"
  exit 0
fi

command -v valgrind >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}

cargo build --release --locked --quiet --example demo_app
target/release/examples/demo_app 127.0.0.1:18080 >/dev/null 2>&1 &
pids+=($!)
python3 - "$work/items" <<'PY'
import json, random, sys
rnd = random.Random(1)
items = [{"id": f"item-{i:06d}", "requests": i * 7, "latency_ms": round(rnd.random() * 100, 3),
          "queue": rnd.randrange(1000)} for i in range(3000)]
open(sys.argv[1], "w").write(json.dumps({"items": items}))
PY
(cd "$work" && exec python3 -m http.server 18090 --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)

sed -e 's/interval: 15s/interval: 1s/' -e 's/timeout: 5s/timeout: 1s/' \
  -e 's/127.0.0.1:8080/127.0.0.1:18080/' exporter.yaml > "$work/app.yaml"
cat > "$work/items.yaml" <<'EOF'
global: {interval: 1s, timeout: 1s}
limits: {max_series_per_target: 12000, max_body_bytes: 64MiB}
host: {enabled: false}
targets:
  - name: items
    url: http://127.0.0.1:18090/items
    metrics:
      - {name: bench.requests, kind: counter, each: "$.items[*]", path: $.requests, labels: {id: "{$.id}"}}
      - {name: bench.latency, unit: s, scale: 0.001, each: "$.items[*]", path: $.latency_ms, labels: {id: "{$.id}"}}
      - {name: bench.queue, each: "$.items[*]", path: $.queue, labels: {id: "{$.id}"}}
EOF
cat > "$work/host.yaml" <<'EOF'
global: {interval: 1s, timeout: 1s}
host: {enabled: true, collectors: [cpu, memory, load, filesystem, network, uptime]}
EOF

# run NAME PORT: remora under callgrind with NAME.yaml, scraped for SECONDS_EACH.
run() {
  local name=$1 port=$2
  valgrind --tool=callgrind --dump-instr=yes --dump-line=no --callgrind-out-file="$work/$name.out" \
    target/release/remora --config.file="$work/$name.yaml" --web.listen-address=127.0.0.1:"$port" \
    >"$work/$name.log" 2>&1 &
  local vp=$!
  pids+=($vp)
  for _ in $(seq 600); do curl -sf "127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.1; done
  curl -sf "127.0.0.1:$port/-/ready" >/dev/null || { cat "$work/$name.log"; exit 1; }
  local end=$((SECONDS + SECONDS_EACH))
  while [ $SECONDS -lt $end ]; do
    curl -s -H 'Accept-Encoding: gzip' "127.0.0.1:$port/metrics" >/dev/null
    curl -s "127.0.0.1:$port/metrics" >/dev/null
    curl -s "127.0.0.1:$port/-/ready" "127.0.0.1:$port/-/healthy" >/dev/null
    sleep 0.3
  done
  kill -TERM "$vp"
  wait "$vp" || true
}
run app 18101 & a=$!
run host 18102 & h=$!
wait $a $h
run items 18103

python3 - "$MAP" link/code-order.txt "$work"/app.out "$work"/items.out "$work"/host.out <<'PY'
import bisect, collections, re, sys
mapfile, out, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
# The map's input sections of the code: address, size, mangled name.
secs = []
for line in open(mapfile):
    # LLVM puts cold functions in .text.unlikely.NAME (and hot ones may get .text.hot.NAME).
    m = re.match(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+\S.*"
                 r"\(\.text\.(?:(?:unlikely|hot|startup|exit|split)\.)?([^)\s]+)\)$", line)
    if m:
        secs.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
secs.sort()
starts = [s[0] for s in secs]
# Instructions run, by address: a function entered by a jump (a tail call)
# is charged to its caller's name in callgrind's tree, so the addresses of
# the instructions themselves are used, not the names. remora is loaded at
# its own addresses under valgrind, the libraries far above: an address in
# the map's code is remora's.
cost = collections.Counter()
for f in runs:
    addr, skip = 0, False
    for line in open(f, errors="replace"):
        c = line[:1]
        if c == "0" or c in "+-*":
            pos = line.split()[0]
            if pos.startswith("0x"):
                addr = int(pos, 16)
            elif pos[0] in "+-":
                addr += int(pos)
            if skip:
                skip = False
            elif len(line.split()) > 1:
                cost[addr] += int(line.split()[1])
            continue
        if line.startswith("calls="):
            skip = True
            continue
per = collections.Counter()
for addr, ir in cost.items():
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0 and addr < secs[i][0] + secs[i][1]:
        per[secs[i][2]] += ir
order = [n for n, _ in sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))]
open(out, "w").write("\n".join(order) + "\n")
size = {n: s for _, s, n in secs}
ran = sum(size[n] for n in order)
print(f"{len(order)} functions ran ({ran / 1e6:.2f} MB of {sum(size.values()) / 1e6:.2f} MB of code); "
      f"written to {out}")
PY
