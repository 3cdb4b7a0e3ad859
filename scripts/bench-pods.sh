#!/usr/bin/env bash
# What one more sidecar costs a node: private memory (USS) per process, beside PSS
# and RSS, with N sidecars of the same binary side by side, as pods on a node are.
#
#   scripts/bench-pods.sh                 (builds the release binary, then N = 10 and 30)
#
# RSS counts the pages a process shares with the other pods (the binary's file
# pages, shared libraries); what one more pod costs the node is its private memory,
# USS = Private_Clean + Private_Dirty of /proc/PID/smaps_rollup. PSS shares the
# shared pages out among the processes that map them.
#
# In one run the script:
#   1. builds the release binary (`cargo build --release --locked --bin remora`)
#      and copies it aside into OUT;
#   2. for each N starts N sidecars of that binary (the repo's
#      exporter.yaml, host collectors on, each on its own
#      --web.listen-address=127.0.0.1:PORT), a small demo app on 127.0.0.1:8080 for
#      exporter.yaml's targets (when the port is free), waits for every /-/ready,
#      then for two poll rounds of every sidecar (scraping each every 2 s while it
#      waits), scrapes each twice more (plain and gzip), and reads USS, PSS and RSS
#      of every process;
#   3. does the same with N Debian prometheus-node-exporter (the per-node peer);
#   4. prints mean and median per N and the ratios remora / node_exporter.
# Issue 25 ran it with five variants (code order, DT_RELR and src/mathlib.rs each
# left out, all and none, as build.rs switches): none saved 0.1 MiB of USS per
# sidecar and all three were removed; VARIANTS is where such build settings go.
# When it can create memory cgroups (cgroup v2 with the memory controller, or the
# v1 memory hierarchy) each process runs in its own child cgroup, created under the
# script's own, and its charge is read too (v2 memory.current, v1
# memory.usage_in_bytes). The binary's page cache is dropped before each round, so
# its file pages are charged to the cgroup that faults them in first (pod 1):
# the mean carries that, the median does not.
#
# Every process and cgroup it creates is removed on exit (also on Ctrl-C or failure).
#
# Environment: NS ("10 30"), SKIP_BUILD=1 reuses the copy
# in OUT, OUT (target/bench-pods), PORT_BASE (23000), NODE_EXPORTER
# (/usr/bin/prometheus-node-exporter), CGROUPS=0 skips the cgroups.
set -euo pipefail
cd "$(dirname "$0")/.."

NS=${NS:-"10 30"}
OUT=${OUT:-target/bench-pods}
PORT_BASE=${PORT_BASE:-23000}
NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
APP_PORT=8080 # exporter.yaml's targets

# Variant name -> build settings (environment of the cargo build).
declare -A SETTINGS=(
  [release]=""
)
VARIANTS="release"

for t in curl python3 cargo readelf; do
  command -v "$t" >/dev/null || { echo "$t is needed" >&2; exit 1; }
done
if [ ! -x "$NODE_EXPORTER" ]; then
  echo "installing prometheus-node-exporter" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-node-exporter >/dev/null
fi
# The Debian package starts a node_exporter service on 9100: the peers here are ours.

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-pods.XXXXXX")
PIDS=()
CG_BASE=""
cleanup() {
  local p d end
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  end=$((SECONDS + 20))
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    while kill -0 "$p" 2>/dev/null && ((SECONDS < end)); do sleep 0.05; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$CG_BASE" ] && [ -d "$CG_BASE" ]; then
    end=$((SECONDS + 20))
    for d in "$CG_BASE"/*/; do
      [ -d "$d" ] || continue
      until rmdir "$d" 2>/dev/null || ((SECONDS >= end)); do sleep 0.05; done
    done
    rmdir "$CG_BASE" 2>/dev/null || echo "could not remove $CG_BASE" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. the variants -----------------------------------------------------------
for v in $VARIANTS; do
  [ -n "${SETTINGS[$v]+set}" ] || { echo "unknown variant $v" >&2; exit 1; }
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== building $v (${SETTINGS[$v]})" >&2
    # shellcheck disable=SC2086
    env ${SETTINGS[$v]} cargo build -q --release --locked --bin remora
    cp target/release/remora "$OUT/remora-$v"
  fi
  [ -x "$OUT/remora-$v" ] || { echo "$OUT/remora-$v missing" >&2; exit 1; }
done

echo "== binaries (libm: loads libm.so.6; relr: has .relr.dyn; max_glibc: newest GLIBC_x.y it needs;"
echo "   ABI_RELR: needs GLIBC_ABI_DT_RELR, which the loader of glibc before 2.36 lacks, so it refuses to start it)"
printf '%-11s %9s %6s %6s %9s %10s %8s %s\n' variant size_MiB libm relr rela_KiB max_glibc ABI_RELR sha256
for v in $VARIANTS; do
  b="$OUT/remora-$v"
  sections=$(readelf -SW "$b")
  rela=$(sed 's/^ *\[ *[0-9]*\]//' <<<"$sections" | awk '$1 == ".rela.dyn" {print $5}')
  rela=$(( 16#${rela:-0} / 1024 ))
  relr=$(grep -q '\.relr\.dyn' <<<"$sections" && echo yes || echo no)
  libm=$(readelf -dW "$b" | grep -q 'libm\.so' && echo yes || echo no)
  versions=$(readelf -VW "$b")
  maxg=$(grep -o 'GLIBC_2\.[0-9]*' <<<"$versions" | sort -t. -k2,2n -u | tail -1)
  abi=$(grep -q GLIBC_ABI_DT_RELR <<<"$versions" && echo yes || echo no)
  printf '%-11s %9.2f %6s %6s %9s %10s %8s %s\n' "$v" "$(awk -v s="$(stat -c %s "$b")" 'BEGIN{print s/1048576}')" \
    "$libm" "$relr" "$rela" "$maxg" "$abi" "$(sha256sum "$b" | cut -c1-12)"
done

# ---- cgroups -------------------------------------------------------------------
CG_FILE=""
cg_setup() {
  local own root=/sys/fs/cgroup
  [ "${CGROUPS:-1}" = 1 ] || return 0
  if grep -qw memory "$root/cgroup.controllers" 2>/dev/null; then
    # v2: children with the memory controller need it in the parent's
    # subtree_control, which a cgroup holding processes cannot have (only the
    # root can): first under the script's own cgroup, else under the root.
    own=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
    for parent in "$root${own%/}" "$root"; do
      CG_BASE="$parent/bench-pods.$$"
      if mkdir "$CG_BASE" 2>/dev/null; then
        if { grep -qw memory "$parent/cgroup.subtree_control" ||
          echo +memory >"$parent/cgroup.subtree_control"; } 2>/dev/null &&
          echo +memory >"$CG_BASE/cgroup.subtree_control" 2>/dev/null; then
          CG_FILE=memory.current
          echo "cgroups: v2, one child of $CG_BASE per process (memory.current)"
          return 0
        fi
        rmdir "$CG_BASE"
      fi
    done
    CG_BASE=""
  elif [ -d "$root/memory" ]; then
    own=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
    CG_BASE="$root/memory${own%/}/bench-pods.$$"
    if mkdir "$CG_BASE" 2>/dev/null; then
      CG_FILE=memory.usage_in_bytes
      echo "cgroups: v1 memory hierarchy (no memory controller in cgroup v2 here), one child of $CG_BASE per process (memory.usage_in_bytes)"
      return 0
    fi
    CG_BASE=""
  fi
  echo "cgroups: cannot create memory cgroups here; no cgroup column"
}
cg_setup

# ---- the demo app --------------------------------------------------------------
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$APP_PORT/"; then
  echo "demo app: 127.0.0.1:$APP_PORT is taken by something else; using it as it is"
else
  cat >"$WORK/app.py" <<'EOF'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
base = sys.argv[2]
routes = {"/health": "health.json", "/health/ready": "ready.json", "/version": "version.json"}
docs = {p: (open(f"{base}/{f}", "rb").read(), "application/json") for p, f in routes.items()}
metrics = "# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\n" + "".join(
    f'app_requests_total{{route="/r{i}",code="200"}} {i * 7}\n' for i in range(40))
docs["/metrics"] = (metrics.encode(), "text/plain; version=0.0.4")
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body, ctype = docs.get(self.path, (b"", "text/plain"))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
  python3 "$WORK/app.py" "$APP_PORT" k8s/base/demo-app 2>"$WORK/app.log" &
  PIDS+=($!)
  end=$((SECONDS + 20))
  until curl -sf -o /dev/null "http://127.0.0.1:$APP_PORT/health"; do
    ((SECONDS < end)) || { echo "demo app did not start" >&2; cat "$WORK/app.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "demo app: 127.0.0.1:$APP_PORT (/health, /health/ready, /version, /metrics)"
fi

# ---- 2./3. the rounds ----------------------------------------------------------
drop_cache() { # FILE: its page cache, so that the round's first process faults it in
  python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
EOF
}
code() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$1" || true; }
polls() { # URL: remora_target_polls_total of demo-health, all results
  curl -s --max-time 5 "$1" | awk '/^remora_target_polls_total\{/ && /target="demo-health"/ {s += $NF} END {print s + 0}'
}

DATA="$WORK/data.tsv"
: >"$DATA"
round() { # KIND(remora|node) VARIANT BIN N
  local kind=$1 variant=$2 bin=$3 n=$4 i port pid cg end ok
  local -a pids=() ports=() cgs=()
  drop_cache "$bin"
  for i in $(seq 1 "$n"); do
    port=$((PORT_BASE + i))
    cg=""
    if [ -n "$CG_BASE" ]; then
      cg="$CG_BASE/$kind-$variant-$n-$i"
      mkdir "$cg"
    fi
    if [ "$kind" = remora ]; then
      (
        [ -z "$cg" ] || echo "$BASHPID" >"$cg/cgroup.procs"
        exec env POD_NAME="pod-$i" "$bin" --config.file=exporter.yaml \
          --web.listen-address="127.0.0.1:$port" --log.level=warn
      ) >"$WORK/$kind-$i.log" 2>&1 &
    else
      (
        [ -z "$cg" ] || echo "$BASHPID" >"$cg/cgroup.procs"
        exec "$bin" --web.listen-address="127.0.0.1:$port"
      ) >"$WORK/$kind-$i.log" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    pids+=("$pid")
    ports+=("$port")
    cgs+=("$cg")
  done
  # Ready: each /-/ready (node_exporter: /metrics) answers 200.
  local path=/-/ready
  [ "$kind" = remora ] || path=/metrics
  end=$((SECONDS + 90))
  for i in "${!ports[@]}"; do
    until [ "$(code "http://127.0.0.1:${ports[$i]}$path")" = 200 ]; do
      if ! kill -0 "${pids[$i]}" 2>/dev/null || ((SECONDS >= end)); then
        echo "$kind $variant N=$n: ${ports[$i]} not ready" >&2
        tail -5 "$WORK/$kind-$((i + 1)).log" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
  # Two poll rounds of every sidecar (the first is at start, the next one
  # interval later), each scraped every 2 s meanwhile; node_exporter, which
  # collects when scraped, gets the same scrapes for as long.
  end=$((SECONDS + 60))
  local t0=$SECONDS
  while :; do
    ok=1
    for port in "${ports[@]}"; do
      if [ "$kind" = remora ]; then
        [ "$(polls "http://127.0.0.1:$port/metrics")" -ge 2 ] || ok=0
      else
        curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$port/metrics" || true
        ((SECONDS - t0 >= 16)) || ok=0
      fi
    done
    ((ok)) && break
    ((SECONDS < end)) || { echo "$kind $variant N=$n: no second poll round within 60 s" >&2; exit 1; }
    sleep 2
  done
  for port in "${ports[@]}"; do
    curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$port/metrics"
    curl -sf -o /dev/null --max-time 5 --compressed "http://127.0.0.1:$port/metrics"
  done
  # Measure.
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    kill -0 "$pid" 2>/dev/null || { echo "$kind $variant N=$n: process $((i + 1)) died" >&2; exit 1; }
    awk -v k="$kind" -v v="$variant" -v n="$n" -v i="$((i + 1))" -v cgf="${cgs[$i]:+${cgs[$i]}/$CG_FILE}" '
      $1 == "Rss:" {rss = $2} $1 == "Pss:" {pss = $2}
      $1 == "Private_Clean:" || $1 == "Private_Dirty:" {uss += $2}
      END {
        cg = -1
        if (cgf != "") { getline c < cgf; cg = c / 1024 }
        printf "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", k, v, n, i, uss, pss, rss, cg
      }' "/proc/$pid/smaps_rollup" >>"$DATA"
  done
  # Stop them and remove their cgroups.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  end=$((SECONDS + 20))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for cg in "${cgs[@]}"; do
    [ -n "$cg" ] || continue
    end=$((SECONDS + 20))
    until rmdir "$cg" 2>/dev/null; do
      ((SECONDS < end)) || { echo "could not remove $cg" >&2; break; }
      sleep 0.05
    done
  done
  echo "  $kind $variant N=$n measured" >&2
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(getconf GNU_LIBC_VERSION), $("$NODE_EXPORTER" --version 2>&1 | head -1)"
for n in $NS; do
  round node node_exporter "$NODE_EXPORTER" "$n"
  for v in $VARIANTS; do round remora "$v" "$OUT/remora-$v" "$n"; done
done
cp "$DATA" "$OUT/data.tsv"

# ---- 4. the tables -------------------------------------------------------------
python3 - "$DATA" "$CG_FILE" <<'EOF'
import statistics as st, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    k, v, n, i, uss, pss, rss, cg = line.split("\t")
    rows[(v, int(n))].append((int(uss), int(pss), int(rss), int(cg)))
cgname = sys.argv[2] or "no cgroups"
mib = lambda kib: kib / 1024
def stats(key):
    cols = list(zip(*rows[key]))
    return [(st.mean(c) / 1024, st.median(c) / 1024) for c in cols]
variants = []
for v, n in rows:
    if v not in variants:
        variants.append(v)
ns = sorted({n for _, n in rows})
print()
print(f"Per process, MiB, mean / median (cgroup column: {cgname}, -1: none)")
print(f"{'variant':<14} {'N':>3}  {'USS':>13}  {'PSS':>13}  {'RSS':>13}  {'cgroup':>13}")
for n in ns:
    for v in variants:
        if (v, n) not in rows:
            continue
        s = stats((v, n))
        print(f"{v:<14} {n:>3}  " + "  ".join(f"{a:6.2f} /{b:6.2f}" for a, b in s))
print()
print("remora / node_exporter, per process (ratio of means; median ratio in brackets)")
print(f"{'variant':<14} {'N':>3}  {'USS':>14}  {'PSS':>14}  {'RSS':>14}  {'cgroup':>14}")
for n in ns:
    if ("node_exporter", n) not in rows:
        continue
    ne = stats(("node_exporter", n))
    for v in variants:
        if v == "node_exporter" or (v, n) not in rows:
            continue
        s = stats((v, n))
        cells = []
        for (a, am), (b, bm) in zip(s, ne):
            cells.append(f"{a / b:5.2f} [{am / bm:5.2f}]" if b > 0 and a >= 0 else f"{'-':>14}")
        print(f"{v:<14} {n:>3}  " + "  ".join(cells))
EOF
