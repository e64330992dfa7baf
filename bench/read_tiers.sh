#!/usr/bin/env bash
# Pageserver read tiers, measured on a timeline in a release build: ingest MB/s, point-read
# p50/p99 cold (layer file from object storage), warm (local file, empty block cache) and hot
# (block cache), and full-scan MB/s. The bucket is a local directory; LATENCY_MS adds that much
# to every object-store call to model a remote store.
# Then a database of GB gigabytes of incompressible values is read back (full scan and random
# gets, every value checked) through a 64 MiB disk budget and a 16 MiB block cache.
# Usage: bench/read_tiers.sh [LATENCY_MS=0] [GB=1]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
STRATA_BENCH_STORE_LATENCY_MS="${1:-0}" STRATA_BENCH_GB="${2:-1}" \
  cargo test --release -p strata-pageserver --lib read_latency -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -E '^(ingested|object-store|\||full scan|test )'
