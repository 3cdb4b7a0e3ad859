#!/usr/bin/env bash
# cargo deny check with deny.toml: licenses, bans and sources always (they
# need only Cargo.lock and the registry cache); advisories need RustSec's
# advisory database from the network. Without the network and without a
# cached copy, advisories are skipped with a notice; everything else fails
# the check as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "== installing: cargo-deny (cargo install --locked)"
  cargo install --locked cargo-deny
fi

cargo deny --locked check licenses bans sources

db="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if cargo deny --locked fetch db; then
  cargo deny --locked --offline check advisories
elif [ -n "$(find "$db" -mindepth 2 -maxdepth 2 -name crates -type d 2>/dev/null)" ]; then
  echo "NOTICE: could not fetch the advisory database; checking against the cached copy in $db"
  cargo deny --locked --offline check advisories
else
  echo "NOTICE: advisories NOT checked: the RustSec advisory database could not be fetched (no network) and no cached copy exists"
fi
