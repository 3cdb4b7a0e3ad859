#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as on a developer's.
# Installs what the tests need (Prometheus and promtool, wrk, node_exporter
# for the benchmark scripts), then runs unit, integration, end-to-end and
# Kubernetes checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== cargo test"
cargo test --all-targets --locked 2>&1

if [ -x scripts/check-k8s.sh ]; then
  echo "== Kubernetes kit"
  cargo build --locked --quiet
  scripts/check-k8s.sh
fi
