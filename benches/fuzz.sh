#!/usr/bin/env bash
# Long property runs of the decoders (JSON, NDJSON, CSV: arbitrary and damaged bodies) and of
# the YAML loader (damaged tenant, dashboard and panel files), outside CI. CI runs the same
# tests with a small case count. Usage: benches/fuzz.sh [cases]   (default 200000)
# Coverage-guided fuzzing (cargo-fuzz) needs the whole crate, DataFusion included, built with
# sanitizer instrumentation on nightly; these property runs are the budgeted substitute.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-200000}"
# FUZZ_PROFILE=dev reuses the test build instead of compiling an optimised one (~20 min).
if [ "${FUZZ_PROFILE:-release}" = release ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/opsboard-bench}"
  optimised=(--release)
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/opsboard-target}"
  optimised=()
fi
export PROPTEST_CASES="$cases"
start=$(date +%s)
cargo test "${optimised[@]}" --locked --lib -- ingest::tests panels::timeseries::downsample damaged_yaml
echo "fuzz: $cases cases per property in $(( $(date +%s) - start )) s"
