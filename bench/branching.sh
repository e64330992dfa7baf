#!/usr/bin/env bash
# Branch creation time against data size, and the latency of a point query in the past against
# the same query at head.
#
# For each size given as a number of rows (default: 45,000 rows, about 10 MB of live data, and
# 4,800,000, about 1 GB), in a fresh `strata up`:
# 1. A table `big (id bigint PRIMARY KEY, v int, filler text)` of that many rows (192 bytes of
#    filler each), loaded with INSERT … SELECT FROM generate_series in transactions of 200,000
#    rows; then the logical size of `main` (bytes of live keys and values, `strata branch list`).
# 2. `strata branch create` five times (each a new branch of main at its latest commit): the
#    wall time of each command (process start and gRPC included), and the time until the new
#    branch answers its first query through the front port (its compute starts on demand).
# 3. 1,000 single-row updates after a recorded timestamp, then single-client pgbench runs of
#    `SELECT v FROM big WHERE id = :id` at head, `FOR SYSTEM_TIME AS OF` that timestamp, and
#    `FOR SYSTEM_TIME AS OF` the LSN it maps to: the average latency of each.
#
# Usage: bench/branching.sh [ROWS...]   (STRATA_BIN=... to skip the release build;
#        SECONDS_PER_RUN=10 for each latency run)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALES=("$@")
if [ ${#SCALES[@]} -eq 0 ]; then SCALES=(45000 4800000); fi
BATCH=200000
RUN_SECONDS="${SECONDS_PER_RUN:-10}"
source bench/strata_bin.sh
now_ms() { date +%s%3N; }

WORK=""
STRATA_PID=""
cleanup() {
  if [ -n "$STRATA_PID" ]; then kill "$STRATA_PID" 2>/dev/null || true; wait "$STRATA_PID" 2>/dev/null || true; fi
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
  STRATA_PID=""
}
# On a failure, the logs of the run say why before they are removed.
trap 'status=$?; if [ "$status" -ne 0 ] && [ -n "$WORK" ]; then tail -n 20 "$WORK"/*.log >&2; fi; cleanup' EXIT

echo '| live data | branch create (5 runs, ms) | first query on the new branch (ms) | head (ms) | AS OF timestamp (ms) | AS OF LSN (ms) |'
echo '|---|---|---|---|---|---|'
for ROWS in "${SCALES[@]}"; do
  cleanup
  WORK="$(mktemp -d /tmp/strata-branching.XXXXXX)"
  PORT="$(free_port)"
  "$STRATA" up --data-dir "$WORK/strata" --port "$PORT" >"$WORK/strata.log" 2>&1 &
  STRATA_PID=$!
  URL="postgres://postgres@127.0.0.1:$PORT/postgres"
  for _ in $(seq 1 300); do psql -X -q "$URL" -c 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
  echo "$ROWS rows: loading" >&2
  started=$(now_ms)
  psql -X -q "$URL" -c 'CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, filler text NOT NULL)'
  for ((first = 1; first <= ROWS; first += BATCH)); do
    last=$((first + BATCH - 1)); if [ "$last" -gt "$ROWS" ]; then last=$ROWS; fi
    psql -X -q -v ON_ERROR_STOP=1 "$URL" -c "INSERT INTO big SELECT g, 0, repeat(md5(CAST(g AS text)), 6) FROM generate_series($first, $last) AS s(g)"
  done
  echo "  loaded in $(( ($(now_ms) - started) / 1000 )) s" >&2
  size=$("$STRATA" branch list --json --data-dir "$WORK/strata" | python3 -c 'import json,sys; print(next(b["logical_size"] for b in json.load(sys.stdin) if b["name"] == "main"))')

  creates=()
  firsts=()
  for i in 1 2 3 4 5; do
    started=$(now_ms)
    conn=$("$STRATA" branch create "b$i" --json --data-dir "$WORK/strata" | python3 -c 'import json,sys; print(json.load(sys.stdin)["connection_string"])')
    created=$(now_ms)
    psql -X -q -At "$conn" -c 'select v from big where id = 1' >/dev/null
    creates+=($((created - started)))
    firsts+=($(($(now_ms) - created)))
  done

  point=$(date -u +'%Y-%m-%d %H:%M:%S.%6N+00')
  sleep 0.05
  echo '\set id random(1, '"$ROWS"')' >"$WORK/common"
  { cat "$WORK/common"; echo 'UPDATE big SET v = v + 1 WHERE id = :id;'; } >"$WORK/update.sql"
  pgbench -n -c 4 -j 4 -t 250 -f "$WORK/update.sql" "$URL" >"$WORK/update.log" 2>&1
  lsn=$(psql -X -At "$URL" -c "select strata_lsn_at('$point')")
  latency() {
    { cat "$WORK/common"; echo "$1"; } >"$WORK/script.sql"
    pgbench -n -c 1 -T "$RUN_SECONDS" -f "$WORK/script.sql" "$URL" 2>/dev/null |
      awk -F'= ' '/latency average/ { split($2, a, " "); print a[1] }'
  }
  head=$(latency 'SELECT v FROM big WHERE id = :id;')
  past=$(latency "SELECT v FROM big FOR SYSTEM_TIME AS OF '$point' WHERE id = :id;")
  past_lsn=$(latency "SELECT v FROM big FOR SYSTEM_TIME AS OF '$lsn' WHERE id = :id;")
  mib=$(echo "scale=1; $size / 1048576" | bc)
  echo "| $mib MiB ($ROWS rows) | ${creates[*]} | ${firsts[*]} | $head | $past | $past_lsn |"
done
