#!/usr/bin/env bash
# pgbench against Strata and against a vanilla PostgreSQL, side by side on this machine:
# `pgbench -i -s SCALE`, then select-only (-S) and TPC-B (the default script) with CLIENTS
# clients for DURATION seconds each, simple protocol (pgbench's default) and prepared (-M prepared).
# Prints TPS for both and the ratio Strata/PostgreSQL.
# Usage: bench/pgbench.sh [SCALE=10] [CLIENTS=4] [DURATION=30]
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-10}"; CLIENTS="${2:-4}"; DURATION="${3:-30}"
source bench/side_by_side.sh

tps() { awk '/^tps = / {print $3}' ; }
init_time() { awk '/^done in/ {print $3}' ; }

echo "pgbench -i -s $SCALE" >&2
st_init=$(pgbench -i -s "$SCALE" "$ST_URL" 2>&1 | tee "$WORK/st_init.log" | init_time)
pg_init=$(pgbench -i -s "$SCALE" "$PG_URL" 2>&1 | init_time)

run() { # label, extra pgbench args
  local label=$1; shift
  local st pg
  st=$(pgbench -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" "$@" "$ST_URL" 2>&1 | tee -a "$WORK/st_runs.log" | tps)
  pg=$(pgbench -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" "$@" "$PG_URL" 2>&1 | tps)
  printf '| %-28s | %10.0f | %10.0f | %5.2f |\n' "$label" "$st" "$pg" "$(echo "$st / $pg" | bc -l)"
}

echo
echo "scale $SCALE, $CLIENTS clients, ${DURATION}s per run; init: strata ${st_init}s, postgres ${pg_init}s"
echo
echo '| workload                     | strata TPS | postgres TPS | ratio |'
echo '|------------------------------|------------|--------------|-------|'
run "select-only (simple)" -S
run "select-only (prepared)" -S -M prepared
run "TPC-B (simple)"
run "TPC-B (prepared)" -M prepared
echo
echo "machine: $(nproc) cores; $(psql -X -At "$PG_URL" -c 'show server_version' | cut -d' ' -f1) vs strata $("$STRATA" --version | awk '{print $2}')"
