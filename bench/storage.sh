#!/usr/bin/env bash
# What Strata keeps in object storage, against what PostgreSQL keeps on disk, for the same
# pgbench database; and how many objects (PUTs) committed transactions cost.
#
# 1. `pgbench -i -s SCALE` on both (SCALE × 100,000 rows in pgbench_accounts), then
#    `strata checkpoint`: the bucket then holds the whole database. Prints the bytes of layer
#    files in the bucket and PostgreSQL's database size and pgbench_accounts size.
# 2. TXNS TPC-B transactions (4 clients) on Strata: objects created in the bucket while they
#    run (background offload and flushes only), then after a `strata checkpoint`, per 1,000
#    transactions, plus the offloaded WAL bytes per transaction.
# Usage: bench/storage.sh [SCALE=10] [TXNS=10000]   (STRATA_BIN=... to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${1:-10}"; TXNS="${2:-10000}"
source bench/side_by_side.sh
BUCKET="$WORK/strata/objects"

objects() { find "$BUCKET" -type f | wc -l; }
bytes_under() { find "$BUCKET/$1" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
checkpoint() { "$STRATA" checkpoint --data-dir "$WORK/strata" >/dev/null; }

echo "pgbench -i -s $SCALE" >&2
pgbench -i -s "$SCALE" "$ST_URL" >"$WORK/st_init.log" 2>&1
pgbench -i -s "$SCALE" "$PG_URL" >/dev/null 2>&1
checkpoint
layers=$(find "$BUCKET/timelines" -path '*/layers/*' -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
pg_db=$(psql -X -At "$PG_URL" -c "select pg_database_size(current_database())")
pg_accounts=$(psql -X -At "$PG_URL" -c "select pg_total_relation_size('pgbench_accounts')")
rows=$(psql -X -At "$ST_URL" -c "select count(*) from pgbench_accounts")

echo
echo "scale $SCALE: $rows rows in pgbench_accounts"
echo
echo '| what | bytes | MiB |'
echo '|---|---|---|'
mib() { echo "scale=1; $1 / 1048576" | bc; }
echo "| strata: layer files in the bucket (whole database) | $layers | $(mib "$layers") |"
echo "| postgres: pg_database_size | $pg_db | $(mib "$pg_db") |"
echo "| postgres: pg_total_relation_size(pgbench_accounts) | $pg_accounts | $(mib "$pg_accounts") |"

before=$(objects); wal_before=$(bytes_under safekeepers/wal)
pgbench -c 4 -j 4 -t $((TXNS / 4)) "$ST_URL" >"$WORK/st_tpcb.log" 2>&1
during=$(objects)
checkpoint
after=$(objects); wal_after=$(bytes_under safekeepers/wal)
per() { echo "scale=2; ($1) * 1000 / $TXNS" | bc; }
echo
echo "$TXNS TPC-B transactions:"
echo "- objects created while they ran: $((during - before)) ($(per "$during - $before") per 1,000)"
echo "- objects created including a strata checkpoint after them: $((after - before)) ($(per "$after - $before") per 1,000)"
echo "- offloaded WAL: $(( (wal_after - wal_before) / TXNS )) bytes per transaction"
