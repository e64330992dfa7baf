# Sourced by the benchmarks: takes `strata` from bench/strata_bin.sh, then starts a vanilla
# PostgreSQL (default settings) and a `strata up` side by side on free loopback ports, in a
# scratch directory that is removed on exit. Sets WORK, STRATA, PG_URL and ST_URL.
WORK="$(mktemp -d /tmp/strata-bench.XXXXXX)"
source bench/strata_bin.sh
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$WORK"; as_pg=(runuser -u postgres --); fi
PG_PORT="$(free_port)"
"${as_pg[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null

ST_PORT="$(free_port)"
"$STRATA" up --data-dir "$WORK/strata" --port "$ST_PORT" >"$WORK/strata.log" 2>&1 &
STRATA_PID=$!
cleanup() {
  kill "$STRATA_PID" 2>/dev/null || true
  wait "$STRATA_PID" 2>/dev/null || true
  "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
ST_URL="postgres://postgres@127.0.0.1:$ST_PORT/postgres"
for _ in $(seq 1 300); do psql -X -q "$ST_URL" -c 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
