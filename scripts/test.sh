#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as on a developer's.
# Installs what the tests need (Prometheus, promtool, Chromium and
# node_exporter from Debian; the Python prometheus_client text parser and the
# official OTLP protobuf definitions, opentelemetry-proto, from PyPI), then runs unit,
# integration, end-to-end and Kubernetes checks. Under this script a missing
# tool fails the test that needs it instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/time ] || need+=(time)   # GNU time: peak RSS of a child (tests/it/memory.rs)
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # the pages, in a real browser
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)   # the peer in benchmarks
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PY="${PYTHON:-python3}"
pip_need() { # $1: module to import, $2: PyPI package
  if ! "$PY" -c "import $1" >/dev/null 2>&1; then
    echo "== installing: $2 (PyPI)"
    "$PY" -m pip install -q "$2" 2>/dev/null \
      || "$PY" -m pip install -q --break-system-packages "$2"
  fi
}
pip_need prometheus_client prometheus_client
pip_need opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 opentelemetry-proto
export REMORA_TEST_STRICT=1

echo "== cargo test"
cargo test --all-targets --locked 2>&1

if [ -x scripts/check-k8s.sh ]; then
  echo "== Kubernetes kit"
  cargo build --locked --quiet
  scripts/check-k8s.sh
fi
