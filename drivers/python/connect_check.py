"""Tries one connection with a driver and prints how it went, for drivers that cannot connect to
Strata yet (cli/tests/e2e/drivers.rs asserts the exact error, and tells to run the whole suite
against Strata the day the connection succeeds).

    python connect_check.py asyncpg|sqlalchemy

Prints `connected` or `error SQLSTATE: message` (first line of the message).
"""

import asyncio
import sys

from conftest import DATABASE_URL


def asyncpg_connect():
    import asyncpg

    async def main():
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        asyncio.run(main())
    except asyncpg.PostgresError as e:
        return f"error {e.sqlstate}: {e}"
    return "connected"


def sqlalchemy_connect():
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(DATABASE_URL.replace("postgres://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as e:
        return f"error {e.orig.sqlstate}: {e.orig}"
    finally:
        engine.dispose()
    return "connected"


if __name__ == "__main__":
    result = {"asyncpg": asyncpg_connect, "sqlalchemy": sqlalchemy_connect}[sys.argv[1]]()
    print(result.splitlines()[0])
