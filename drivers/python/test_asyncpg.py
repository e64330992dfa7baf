"""asyncpg smoke suite: binary protocol, named prepared statements, the statement cache."""

import asyncio
import io
from datetime import time, timedelta
from decimal import Decimal

import asyncpg
import pytest

from conftest import DATABASE_URL
from smoke_data import COLUMNS, CREATE_TABLE, OIDS, ROWS

INSERT = f"INSERT INTO smoke ({', '.join(COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))})"


def run(test):
    """Runs `test(conn)` on a fresh connection, in its own event loop."""

    async def main():
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            return await test(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


def test_connect():
    async def t(conn):
        assert conn.get_server_version().major >= 15
        assert await conn.fetchval("SELECT 1") == 1
        assert conn.get_settings().client_encoding == "UTF8"

    run(t)


def test_create_table():
    async def t(conn):
        await conn.execute(CREATE_TABLE.format(name="smoke"))
        await conn.execute("CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance bigint)")

    run(t)


def test_insert_with_bound_parameters():
    async def t(conn):
        await conn.executemany(INSERT, ROWS)
        assert await conn.fetchval("SELECT count(*) FROM smoke") == len(ROWS)

    run(t)


def test_select_values_and_types():
    async def t(conn):
        stmt = await conn.prepare(f"SELECT {', '.join(COLUMNS)} FROM smoke ORDER BY id")
        assert [a.name for a in stmt.get_attributes()] == COLUMNS
        assert [a.type.oid for a in stmt.get_attributes()] == OIDS
        rows = await stmt.fetch()
        assert [tuple(r) for r in rows] == ROWS
        for got, want in zip(rows[0], ROWS[0]):
            # asyncpg's uuid type is its own subclass of uuid.UUID.
            assert isinstance(got, type(want)), (got, want)
        assert await conn.fetchval("SELECT note FROM smoke WHERE id = $1", 2) == ROWS[1][3]
        assert await conn.fetch("SELECT id FROM smoke WHERE big > $1 ORDER BY id", 0) == [(1,)]
        row = await conn.fetchrow("SELECT * FROM smoke WHERE id = $1", 1)
        assert row["payload"] == ROWS[0][9] and row["at_tz"] == ROWS[0][8]

    run(t)


def test_an_integer_literal_is_an_int4():
    async def t(conn):
        stmt = await conn.prepare("SELECT 1, 3000000000, id + 1 FROM smoke WHERE id = 1")
        assert [a.type.oid for a in stmt.get_attributes()] == [23, 20, 23]
        assert tuple(await stmt.fetchrow()) == (1, 3000000000, 2)

    run(t)


def test_result_type_of_a_bigint_sum():
    async def t(conn):
        stmt = await conn.prepare("SELECT sum(big) FROM smoke")
        assert [a.type.oid for a in stmt.get_attributes()] == [1700]
        assert await stmt.fetchval() == Decimal(sum(r[1] for r in ROWS))

    run(t)


def test_result_types_of_aggregates():
    async def t(conn):
        stmt = await conn.prepare("SELECT (SELECT avg(id) FROM smoke WHERE id <= 2), (SELECT sum(id) FROM smoke)")
        assert [a.type.oid for a in stmt.get_attributes()] == [1700, 20]
        assert [type(v) for v in await stmt.fetchrow()] == [Decimal, int]

    run(t)


def test_update_and_delete_with_parameters():
    async def t(conn):
        assert await conn.execute("UPDATE smoke SET note = $1, amount = amount + $2 WHERE id = $3", "changed", 1, 1) == "UPDATE 1"
        assert await conn.fetchrow("SELECT note, amount FROM smoke WHERE id = 1") == ("changed", ROWS[0][2] + 1)
        assert await conn.execute("DELETE FROM smoke WHERE id = $1", 3) == "DELETE 1"
        assert await conn.execute("DELETE FROM smoke WHERE id = $1", 3) == "DELETE 0"
        assert await conn.fetchval("UPDATE smoke SET flag = NOT flag WHERE id = $1 RETURNING flag", 2) is True

    run(t)


def test_transaction_commits():
    async def t(conn):
        async with conn.transaction():
            await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 1, "alice", 100)
            await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 2, "bob", 50)
        other = await asyncpg.connect(DATABASE_URL)
        try:
            assert await other.fetchval("SELECT sum(balance) FROM accounts") == 150
        finally:
            await other.close()

    run(t)


def test_transaction_rolls_back():
    async def t(conn):
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2", 30, 1)
                raise RuntimeError("abort the transfer")
        assert await conn.fetchval("SELECT balance FROM accounts WHERE id = 1") == 100

        tr = conn.transaction(isolation="repeatable_read")
        await tr.start()
        await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 3, "carol", 1)
        assert conn.is_in_transaction()
        await tr.rollback()
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE id = 3") == 0

    run(t)


def test_savepoints():
    async def t(conn):
        async with conn.transaction():
            await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 4, "dave", 4)
            with pytest.raises(asyncpg.UniqueViolationError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 5, "erin", 5)
                    await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 1, "again", 0)
        assert await conn.fetch("SELECT id FROM accounts WHERE id >= 4 ORDER BY id") == [(4,)]

    run(t)


def test_jsonb_in_binary_format():
    async def t(conn):
        await conn.execute("CREATE TABLE docs (id integer PRIMARY KEY, doc jsonb)")
        # asyncpg sends and reads jsonb in binary: a version byte, then the text.
        await conn.execute("INSERT INTO docs VALUES ($1, $2)", 1, '{"b": 1, "a": [true]}')
        assert await conn.fetchval("SELECT doc FROM docs WHERE id = $1", 1) == '{"a": [true], "b": 1}'
        assert await conn.fetchval("SELECT doc -> 'a' FROM docs") == "[true]"

    run(t)


def test_time_and_interval_in_binary_format():
    async def t(conn):
        await conn.execute("CREATE TABLE spans (id integer PRIMARY KEY, at time, span interval)")
        # asyncpg binds and reads both in binary.
        row = (time(23, 59, 59, 250000), timedelta(days=-3, seconds=61, microseconds=9))
        await conn.execute("INSERT INTO spans VALUES ($1, $2, $3)", 1, *row)
        assert tuple(await conn.fetchrow("SELECT at, span FROM spans WHERE id = $1", 1)) == row
        assert await conn.fetchval("SELECT span + $1 FROM spans", timedelta(hours=1)) == timedelta(
            days=-3, seconds=3661, microseconds=9
        )

    run(t)


def test_arrays_in_binary_format():
    """asyncpg learns array types from a recursive query over pg_type (correlated subqueries in
    CASE, a recursive CTE in a subquery, `$1::oid[]`, an `array_agg` of oids read as `oid[]`)."""
    async def t(conn):
        await conn.execute("CREATE TABLE tagged (id integer PRIMARY KEY, nums int[], tags text[])")
        row = ([3, None, -7], ["x", "y z"])
        await conn.execute("INSERT INTO tagged VALUES ($1, $2, $3)", 1, *row)
        assert tuple(await conn.fetchrow("SELECT nums, tags FROM tagged WHERE id = $1", 1)) == row
        assert await conn.fetchval("SELECT id FROM tagged WHERE $1 = ANY(tags)", "y z") == 1
        assert await conn.fetchval("SELECT count(*) FROM tagged WHERE id = ANY($1::int[])", [1, 2]) == 1
        types = await conn.fetch("SELECT oid, typname FROM pg_type WHERE oid = ANY($1::oid[]) ORDER BY oid", [23, 1007])
        assert [tuple(t) for t in types] == [(23, "int4"), (1007, "_int4")]

    run(t)


def test_duplicate_key_sqlstate():
    async def t(conn):
        with pytest.raises(asyncpg.UniqueViolationError) as e:
            await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 1, "mallory", 0)
        assert e.value.sqlstate == "23505"
        assert await conn.fetchval("SELECT owner FROM accounts WHERE id = $1", 1) == "alice"
        async with conn.transaction():
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 2, "mallory", 0)
            with pytest.raises(asyncpg.InFailedSQLTransactionError) as e:
                await conn.fetchval("SELECT 1")
            assert e.value.sqlstate == "25P02"
            # Leaving the block with an aborted transaction rolls it back.
            await conn.execute("ROLLBACK")
            await conn.execute("BEGIN")
        assert await conn.fetchval("SELECT 1") == 1

    run(t)


def test_duplicate_key_names_the_constraint():
    async def t(conn):
        with pytest.raises(asyncpg.UniqueViolationError) as e:
            await conn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", 1, "mallory", 0)
        assert e.value.constraint_name == "accounts_pkey"
        assert e.value.table_name == "accounts"

    run(t)


def test_syntax_error_sqlstate():
    async def t(conn):
        with pytest.raises(asyncpg.PostgresSyntaxError) as e:
            await conn.fetch("SELEC 1")
        assert e.value.sqlstate == "42601"
        with pytest.raises(asyncpg.UndefinedTableError) as e:
            await conn.fetch("SELECT * FROM no_such_table")
        assert e.value.sqlstate == "42P01"
        assert await conn.fetchval("SELECT 2") == 2

    run(t)


def test_prepared_statement_reuse():
    async def t(conn):
        stmt = await conn.prepare("SELECT owner, balance FROM accounts WHERE id = $1")
        assert [str(p.name) for p in stmt.get_parameters()] == ["int4"]
        for _ in range(3):
            assert await stmt.fetchrow(1) == ("alice", 100)
            assert await stmt.fetchrow(2) == ("bob", 50)
        insert = await conn.prepare("INSERT INTO accounts VALUES ($1, $2, $3)")
        for i in range(10, 20):
            await insert.fetch(i, f"user{i}", i)
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE id >= 10") == 10
        # The statement cache: the same text reuses the same named statement.
        for i in range(10, 20):
            assert await conn.fetchrow("SELECT owner, balance FROM accounts WHERE id = $1", i) == (f"user{i}", i)

    run(t)


def test_copy_records_to_table():
    async def t(conn):
        await conn.execute("CREATE TABLE copied (id integer PRIMARY KEY, name text, at timestamptz)")
        result = await conn.copy_records_to_table(
            "copied", records=[(r[0], r[3], r[8]) for r in ROWS], columns=["id", "name", "at"]
        )
        assert result == f"COPY {len(ROWS)}"
        assert await conn.fetch("SELECT id, name, at FROM copied ORDER BY id") == [(r[0], r[3], r[8]) for r in ROWS]
        # And back out in the binary format, as asyncpg reads records.
        out = io.BytesIO()
        await conn.copy_from_query("SELECT id, name, at FROM copied ORDER BY id", output=out, format="binary")
        assert out.getvalue().startswith(b"PGCOPY\n\xff\r\n\x00") and out.getvalue().endswith(b"\xff\xff")

    run(t)
