#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as on a developer's.
# Installs what the tests need (Prometheus and promtool from Debian, the
# Python prometheus_client text parser from PyPI), then runs unit,
# integration, end-to-end and Kubernetes checks. Under this script a missing
# tool fails the test that needs it instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/time ] || need+=(time)   # GNU time: peak RSS of a child (tests/it/memory.rs)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import prometheus_client' >/dev/null 2>&1; then
  echo "== installing: prometheus_client (PyPI)"
  "$PY" -m pip install -q prometheus_client 2>/dev/null \
    || "$PY" -m pip install -q --break-system-packages prometheus_client
fi
export REMORA_TEST_STRICT=1

echo "== cargo test"
cargo test --all-targets --locked 2>&1

if [ -x scripts/check-k8s.sh ]; then
  echo "== Kubernetes kit"
  cargo build --locked --quiet
  scripts/check-k8s.sh
fi
