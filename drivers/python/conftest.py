"""Shared set-up of the Python driver suites.

The Rust test (cli/tests/e2e/drivers.rs) runs each file with pytest, twice: against a fresh
PostgreSQL database and against a fresh `strata up`. It passes
  STRATA_DRIVERS_DATABASE_URL  postgres://user@host:port/dbname
  STRATA_DRIVERS_TARGET        "postgres" or "strata"
Steps that Strata cannot do yet are marked with `strata_gap(reason)`: a strict xfail on Strata
only, so the PostgreSQL run still checks them, and the Strata run fails the day they start
working (then remove the mark).
"""

import os
import urllib.parse

import pytest


def _required(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: these suites are run by cli/tests/e2e/drivers.rs "
            "(./scripts/test -E 'test(drivers)')"
        )
    return value


DATABASE_URL = _required("STRATA_DRIVERS_DATABASE_URL")
TARGET = _required("STRATA_DRIVERS_TARGET")
ON_STRATA = TARGET == "strata"
assert TARGET in ("postgres", "strata"), TARGET


def strata_gap(reason, raises=None):
    """A step PostgreSQL passes and Strata does not yet: it must fail on Strata (with `raises`,
    that exception and no other), and the reason says which statement fails and why."""
    return pytest.mark.xfail(ON_STRATA, reason=f"Strata gap: {reason}", raises=raises, strict=True)


def url_parts():
    """host, port, user, database of DATABASE_URL (for drivers that take them separately)."""
    u = urllib.parse.urlparse(DATABASE_URL)
    return {
        "host": u.hostname,
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "database": u.path.lstrip("/") or "postgres",
    }
