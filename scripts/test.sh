#!/usr/bin/env bash
# The whole test suite: installs what it needs, then builds and runs every
# unit, property and end-to-end test, the fuzz targets' checks (built and
# unit-tested on stable; the fuzzers themselves: docs/FUZZING.md) and the
# benchmark harness smoke run. Must run as root (network namespaces, TAP, KVM).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: the end-to-end tests need root (network namespaces, TAP devices, /dev/kvm)" >&2
  exit 1
fi

bash scripts/install-test-deps.sh

export CARGO_TERM_COLOR=never
echo "== building (debug) all crates and binaries"
cargo build --workspace --all-targets --locked

echo "== style: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
# The end-to-end tests create namespaces and processes; they run one test
# binary at a time but tests inside a binary may run in parallel (each uses
# its own names).
status=0
cargo test --workspace --locked --no-fail-fast -- --test-threads=4 || status=$?

echo "== fuzz targets: build them and unit-test their checks on stable"
# Each */fuzz crate stands alone (not a workspace member); they share one
# target directory so their common dependencies build once.
for manifest in */fuzz/Cargo.toml; do
  fuzz_env=(env CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz-check")
  "${fuzz_env[@]}" cargo build --locked --bins --manifest-path "$manifest" || status=$?
  if [ -f "$(dirname "$manifest")/src/lib.rs" ]; then
    "${fuzz_env[@]}" cargo test --locked --lib --manifest-path "$manifest" || status=$?
  fi
  "${fuzz_env[@]}" cargo clippy --locked --all-targets --manifest-path "$manifest" -- -D warnings || status=$?
  (cd "$(dirname "$manifest")" && cargo fmt --check) || status=$?
done

echo "== benchmark harness: unit tests and a --quick smoke run (numbers not meaningful here)"
(cd bench && python3 -m unittest discover -s harness/tests -t .) || status=$?
FERROVS_BIN_DIR=${CARGO_TARGET_DIR:-$PWD/target}/debug bench/run --quick || status=$?

exit $status
