#!/usr/bin/env bash
# Measures the basics on a release build of Strata and, side by side on the same machine, on a
# vanilla PostgreSQL (default settings: fsync and synchronous_commit on):
#   - one INSERT ... SELECT of 100,000 rows
#   - 1,000 single-row INSERT statements, one client (each its own commit)
#   - commit latency p50 / p99 over those 1,000 commits (from pgbench's per-transaction log)
#   - SELECT count(*) over 1,000,000 rows
# Usage: bench/basics.sh            (builds `strata` in release mode first)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/side_by_side.sh

# Seconds a SQL script takes, as psql's \timing reports it, summed.
timed() {
  local url=$1 sql=$2
  psql -X -q -v ON_ERROR_STOP=1 "$url" -c '\timing on' -c "$sql" | awk '/^Time:/ {s += $2} END {printf "%.3f", s / 1000}'
}

percentile() { # p file-of-latencies-in-us
  sort -n "$2" | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100); if (i<1) i=1; printf "%.3f", a[i]/1000}'
}

run() {
  local name=$1 url=$2
  psql -X -q -v ON_ERROR_STOP=1 "$url" -c 'DROP TABLE IF EXISTS bulk' -c 'DROP TABLE IF EXISTS single' -c 'DROP TABLE IF EXISTS big' \
    -c 'CREATE TABLE bulk (id bigint PRIMARY KEY, name text, amount double precision)' \
    -c 'CREATE TABLE single (id bigint PRIMARY KEY, name text)' \
    -c 'CREATE TABLE big (id bigint PRIMARY KEY, name text, amount double precision)' >/dev/null

  local bulk
  bulk=$(timed "$url" "INSERT INTO bulk SELECT value, 'name ' || value, value * 0.5 FROM generate_series(1, 100000) AS g(value)")

  printf '\\set id random(1, 1000000000000)\nINSERT INTO single VALUES (:id, '"'"'x'"'"');\n' >"$WORK/insert.sql"
  (cd "$WORK" && pgbench -n -c 1 -t 1000 -f insert.sql --log --log-prefix="$name" "$url" >"$WORK/$name.pgbench" 2>&1)
  awk '{print $3}' "$WORK"/"$name".[0-9]* >"$WORK/$name.lat"
  local total p50 p99
  total=$(awk '{s+=$1} END {printf "%.3f", s/1000000}' "$WORK/$name.lat")

  for start in 0 200000 400000 600000 800000; do
    psql -X -q -v ON_ERROR_STOP=1 "$url" -c "INSERT INTO big SELECT value, 'row ' || value, value * 0.25 FROM generate_series($start + 1, $start + 200000) AS g(value)" >/dev/null
  done
  local count
  # Twice, reporting the second: the first read also warms caches.
  timed "$url" 'SELECT count(*) FROM big' >/dev/null
  count=$(timed "$url" 'SELECT count(*) FROM big')

  p50=$(percentile 50 "$WORK/$name.lat")
  p99=$(percentile 99 "$WORK/$name.lat")
  printf '| %-10s | %8s s | %8s s | %7s ms | %7s ms | %8s s |\n' "$name" "$bulk" "$total" "$p50" "$p99" "$count"
}

echo
echo '| system     | 100k rows, 1 stmt | 1,000 single-row stmts | commit p50 | commit p99 | count(*) of 1M rows |'
echo '|------------|-------------------|------------------------|------------|------------|---------------------|'
run strata "$ST_URL"
run postgres "$PG_URL"
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(psql -X -At "$PG_URL" -c 'show server_version' | cut -d' ' -f1) vs strata $("$STRATA" --version | awk '{print $2}')"
