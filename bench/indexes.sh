#!/usr/bin/env bash
# Secondary indexes on a release build of Strata and, side by side, a vanilla PostgreSQL:
#   - INSERT ... SELECT of 100,000 rows into a table without and with a UNIQUE index (the cost
#     of writing index entries and checking uniqueness)
#   - CREATE INDEX over those 100,000 rows
#   - lookups by the indexed column (pgbench, prepared, CLIENTS clients, DURATION seconds):
#     equality on the unique column, and ORDER BY … LIMIT 10 from a random point
# Usage: bench/indexes.sh [CLIENTS=4] [DURATION=10]
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS="${1:-4}"; DURATION="${2:-10}"
source bench/side_by_side.sh

timed() { # url, sql: seconds as psql's \timing reports them
  psql -X -q -v ON_ERROR_STOP=1 "$1" -c '\timing on' -c "$2" | awk '/^Time:/ {s += $2} END {printf "%.2f", s / 1000}'
}
tps() { awk '/^tps = / {printf "%.0f", $3}'; }

cat >"$WORK/eq.sql" <<'SQL'
\set n random(1, 100000)
SELECT id, name FROM users WHERE email = 'user' || :n || '@example.com';
SQL
cat >"$WORK/range.sql" <<'SQL'
\set n random(1, 99000)
SELECT id FROM users WHERE score >= :n ORDER BY score LIMIT 10;
SQL

run() { # name, url
  local url=$2 fill="INSERT INTO users SELECT g, 'user' || g, 'user' || g || '@example.com', (g * 7919) % 100000 FROM generate_series(1, 100000) AS g"
  psql -X -q -v ON_ERROR_STOP=1 "$url" -c 'DROP TABLE IF EXISTS users' \
    -c 'CREATE TABLE users (id int PRIMARY KEY, name text, email text, score int)' >/dev/null
  local plain unique build eq range
  plain=$(timed "$url" "$fill")
  psql -X -q "$url" -c 'TRUNCATE users' -c 'ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)' >/dev/null
  unique=$(timed "$url" "$fill")
  build=$(timed "$url" "CREATE INDEX users_score ON users (score)")
  psql -X -q "$url" -c 'ANALYZE users' >/dev/null
  eq=$(pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" -f "$WORK/eq.sql" "$url" 2>&1 | tps)
  range=$(pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" -f "$WORK/range.sql" "$url" 2>&1 | tps)
  printf '| %-10s | %8s s | %8s s | %8s s | %8s | %8s |\n' "$1" "$plain" "$unique" "$build" "$eq" "$range"
}

echo
echo "100,000 rows; lookups: $CLIENTS clients, ${DURATION}s each, prepared"
echo
echo '| system     | insert, no index | insert, unique index | CREATE INDEX | email = ? TPS | ORDER BY score LIMIT 10 TPS |'
echo '|------------|------------------|----------------------|--------------|---------------|-----------------------------|'
run strata "$ST_URL"
run postgres "$PG_URL"
