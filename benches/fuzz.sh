#!/usr/bin/env bash
# Long property runs of the decoders (JSON, NDJSON, CSV: arbitrary and damaged bodies) and of
# the YAML loader (damaged tenant, dashboard and panel files), outside CI. CI runs the same
# tests with a small case count. Usage: benches/fuzz.sh [cases]   (default 200000)
# Coverage-guided fuzzing (cargo-fuzz) needs the whole crate, DataFusion included, built with
# sanitizer instrumentation on nightly; these property runs are the budgeted substitute.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-200000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/opsboard-bench}"
export PROPTEST_CASES="$cases"
start=$(date +%s)
cargo test --release --locked --lib ingest::tests -- --nocapture
cargo test --release --locked --test validate damaged_yaml -- --nocapture
echo "fuzz: $cases cases per property in $(( $(date +%s) - start )) s"
