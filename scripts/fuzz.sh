#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default
# 24: five targets, two minutes in all, as four took at 30). cargo-fuzz needs a nightly toolchain: without one this prints a notice
# and exits 0. Installs cargo-fuzz when it is missing. A crash fails the run
# and leaves its input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-24}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "NOTICE: no nightly toolchain; the fuzz targets are not run (cargo-fuzz needs nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi
for target in $(cargo +nightly fuzz list); do
  echo "== fuzz $target (${SECONDS_EACH}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 2>&1 | tail -25
  test "${PIPESTATUS[0]}" = 0
done
