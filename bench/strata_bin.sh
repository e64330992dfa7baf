# Sourced by the benchmarks: sets STRATA to a release build of `strata` (built here), or to
# STRATA_BIN when set (e.g. a debug build for measurements that do not depend on speed), and
# defines free_port.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -n "${STRATA_BIN:-}" ]; then
  STRATA="$STRATA_BIN"
else
  cargo build --release -p strata >&2
  STRATA="$CARGO_TARGET_DIR/release/strata"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
