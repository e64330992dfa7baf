"""psycopg 3 smoke suite: what an application does on connect and in a typical session."""

from datetime import time, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from conftest import DATABASE_URL
from smoke_data import COLUMNS, CREATE_TABLE, OIDS, ROWS

INSERT = f"INSERT INTO smoke ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"


@pytest.fixture
def conn():
    with psycopg.connect(DATABASE_URL, autocommit=True) as c:
        yield c


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def test_connect(conn):
    assert conn.info.status == psycopg.pq.ConnStatus.OK
    assert conn.info.server_version >= 150000
    assert conn.info.parameter_status("standard_conforming_strings") == "on"
    assert conn.info.encoding == "utf-8"
    assert conn.execute("SELECT 1").fetchone() == (1,)
    # What frameworks ask right after connecting.
    assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)


def test_create_table(conn):
    conn.execute(CREATE_TABLE.format(name="smoke"))
    conn.execute("CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance bigint)")


def test_insert_with_bound_parameters(conn):
    with conn.cursor() as cur:
        cur.executemany(INSERT, ROWS)
        assert cur.rowcount == len(ROWS)
    assert scalar(conn, "SELECT count(*) FROM smoke") == len(ROWS)


def test_select_values_and_types(conn):
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM smoke ORDER BY id")
        assert [d.name for d in cur.description] == COLUMNS
        assert [d.type_code for d in cur.description] == OIDS
        rows = cur.fetchall()
    assert rows == ROWS
    for got, want in zip(rows[0], ROWS[0]):
        assert type(got) is type(want), (got, want)
    # A parameter in the WHERE clause, typed by the driver.
    assert conn.execute("SELECT note FROM smoke WHERE id = %s", (2,)).fetchone() == (ROWS[1][3],)
    assert conn.execute("SELECT id FROM smoke WHERE big > %s ORDER BY id", (0,)).fetchall() == [(1,)]


def test_an_integer_literal_is_an_int4(conn):
    cur = conn.execute("SELECT 1, 3000000000")
    assert [d.type_code for d in cur.description] == [23, 20]
    assert cur.fetchone() == (1, 3000000000)


def test_result_type_of_a_bigint_sum(conn):
    cur = conn.execute("SELECT sum(big) FROM smoke")
    assert [d.type_code for d in cur.description] == [1700]
    assert cur.fetchone()[0] == Decimal(sum(r[1] for r in ROWS))


def test_result_types_of_aggregates(conn):
    cur = conn.execute("SELECT (SELECT avg(id) FROM smoke WHERE id <= 2), (SELECT sum(id) FROM smoke)")
    assert [d.type_code for d in cur.description] == [1700, 20]
    assert cur.fetchone() == (Decimal("1.5000000000000000"), 6)


def test_select_in_binary_format(conn):
    with conn.cursor(binary=True) as cur:
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM smoke WHERE id <= %s ORDER BY id", (3,))
        assert [d.type_code for d in cur.description] == OIDS
        assert cur.fetchall() == ROWS


def test_list_parameter_with_any(conn):
    assert conn.execute("SELECT id FROM smoke WHERE id = ANY(%s) ORDER BY id", ([1, 3],)).fetchall() == [(1,), (3,)]


def test_arrays_time_and_interval_round_trip(conn):
    conn.execute("CREATE TABLE shapes (id int PRIMARY KEY, tags text[], nums bigint[], at time, span interval)")
    try:
        row = (["a", "b c", None, ""], [1, 2**40], time(8, 30, 0, 500000), timedelta(days=-1, hours=2, microseconds=5))
        # Text parameters (psycopg's default), then binary ones.
        conn.execute("INSERT INTO shapes VALUES (%s, %s, %s, %s, %s)", (1, *row))
        conn.execute("INSERT INTO shapes VALUES (%b, %b, %b, %b, %b)", (2, *row))
        for binary in (False, True):
            with conn.cursor(binary=binary) as cur:
                cur.execute("SELECT tags, nums, at, span FROM shapes ORDER BY id")
                assert [d.type_code for d in cur.description] == [1009, 1016, 1083, 1186]
                assert cur.fetchall() == [row, row]
    finally:
        conn.execute("DROP TABLE shapes")


def test_update_and_delete_with_parameters(conn):
    cur = conn.execute("UPDATE smoke SET note = %s, amount = amount + %s WHERE id = %s", ("changed", 1, 1))
    assert cur.rowcount == 1
    assert conn.execute("SELECT note, amount FROM smoke WHERE id = 1").fetchone() == (
        "changed",
        ROWS[0][2] + 1,
    )
    cur = conn.execute("DELETE FROM smoke WHERE id = %s", (3,))
    assert cur.rowcount == 1
    assert conn.execute("DELETE FROM smoke WHERE id = %s", (3,)).rowcount == 0
    assert conn.execute("UPDATE smoke SET flag = NOT flag WHERE id = %s RETURNING flag", (2,)).fetchone() == (True,)


def test_transaction_commits(conn):
    with conn.transaction():
        conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (1, "alice", 100))
        conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (2, "bob", 50))
    with psycopg.connect(DATABASE_URL) as other:
        assert other.execute("SELECT sum(balance) FROM accounts").fetchone() == (150,)


def test_transaction_rolls_back(conn):
    with pytest.raises(RuntimeError):
        with conn.transaction():
            conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (30, 1))
            raise RuntimeError("abort the transfer")
    assert scalar(conn, "SELECT balance FROM accounts WHERE id = 1") == 100

    # Not in autocommit: the driver opens the transaction itself, rollback() ends it.
    with psycopg.connect(DATABASE_URL) as c:
        c.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (3, "carol", 1))
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.rollback()
        assert c.execute("SELECT count(*) FROM accounts WHERE id = 3").fetchone() == (0,)


def test_savepoints(conn):
    with conn.transaction():
        conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (4, "dave", 4))
        with pytest.raises(errors.UniqueViolation):
            with conn.transaction():
                conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (5, "erin", 5))
                conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (1, "again", 0))
    assert conn.execute("SELECT id FROM accounts WHERE id >= 4 ORDER BY id").fetchall() == [(4,)]


def test_jsonb_round_trips(conn):
    conn.execute("CREATE TABLE docs (id integer PRIMARY KEY, doc jsonb)")
    conn.execute("INSERT INTO docs VALUES (%s, %s)", (1, Jsonb({"b": 1, "a": [1, None, "x"]})))
    row = conn.execute("SELECT doc, doc -> 'a', doc ->> 'b' FROM docs WHERE doc @> %s", (Jsonb({"b": 1}),)).fetchone()
    assert row == ({"a": [1, None, "x"], "b": 1}, [1, None, "x"], "1")
    assert scalar(conn, "SELECT doc::text FROM docs") == '{"a": [1, null, "x"], "b": 1}'


def test_duplicate_key_sqlstate(conn):
    with pytest.raises(errors.UniqueViolation) as e:
        conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (1, "mallory", 0))
    assert e.value.sqlstate == "23505"
    # The connection is still usable, and nothing changed.
    assert scalar(conn, "SELECT owner FROM accounts WHERE id = %s", (1,)) == "alice"
    # Inside a transaction the error aborts it: 25P02 until rollback.
    with psycopg.connect(DATABASE_URL) as c:
        with pytest.raises(errors.UniqueViolation):
            c.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (2, "mallory", 0))
        with pytest.raises(errors.InFailedSqlTransaction) as e:
            c.execute("SELECT 1")
        assert e.value.sqlstate == "25P02"
        c.rollback()
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_duplicate_key_names_the_constraint(conn):
    with pytest.raises(errors.UniqueViolation) as e:
        conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (1, "mallory", 0))
    assert e.value.diag.constraint_name == "accounts_pkey"
    assert e.value.diag.table_name == "accounts"


def test_not_null_violation_sqlstate(conn):
    with pytest.raises(errors.NotNullViolation) as e:
        conn.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (9, None, 0))
    assert e.value.sqlstate == "23502"


def test_syntax_error_sqlstate(conn):
    with pytest.raises(errors.SyntaxError) as e:
        conn.execute("SELEC 1")
    assert e.value.sqlstate == "42601"
    with pytest.raises(errors.UndefinedTable) as e:
        conn.execute("SELECT * FROM no_such_table")
    assert e.value.sqlstate == "42P01"
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_prepared_statement_reuse(conn):
    query = "SELECT owner, balance FROM accounts WHERE id = %s"
    for _ in range(3):
        assert conn.execute(query, (1,), prepare=True).fetchone() == ("alice", 100)
        assert conn.execute(query, (2,), prepare=True).fetchone() == ("bob", 50)
    insert = "INSERT INTO accounts VALUES (%s, %s, %s)"
    for i in range(10, 20):
        conn.execute(insert, (i, f"user{i}", i), prepare=True)
    assert scalar(conn, "SELECT count(*) FROM accounts WHERE id >= 10") == 10
    # After prepare_threshold (5) executions psycopg prepares a statement by itself.
    for i in range(10, 20):
        assert conn.execute(query, (i,)).fetchone() == (f"user{i}", i)


def test_rollback_after_prepared_statements():
    # What every pooled connection goes through: statements get prepared, then the pool rolls back.
    with psycopg.connect(DATABASE_URL) as c:
        for _ in range(6):
            assert c.execute("SELECT owner FROM accounts WHERE id = %s", (1,)).fetchone() == ("alice",)
        c.rollback()
        assert c.execute("SELECT owner FROM accounts WHERE id = %s", (2,)).fetchone() == ("bob",)
        c.execute("SELECT 1")
        c.rollback()


def test_prepared_statements_are_server_side(conn):
    conn.execute("SELECT owner FROM accounts WHERE id = %s", (1,), prepare=True)
    assert scalar(conn, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ("%FROM accounts%",)) >= 1


def test_copy_from_and_to_stdin(conn):
    conn.execute("CREATE TABLE copied (id integer PRIMARY KEY, name text, at timestamptz)")
    with conn.cursor() as cur:
        with cur.copy("COPY copied (id, name, at) FROM STDIN") as copy:
            for row in ROWS:
                copy.write_row((row[0], row[3], row[8]))
        assert scalar(conn, "SELECT count(*) FROM copied") == len(ROWS)
        with cur.copy("COPY (SELECT id, name FROM copied ORDER BY id) TO STDOUT") as copy:
            copy.set_types(["int4", "text"])
            assert list(copy.rows()) == [(r[0], r[3]) for r in ROWS]


def test_binary_copy_of_every_type(conn):
    """COPY in the binary format both ways, with every type of the smoke table; the values
    read back equal the rows written, and a row of the wrong width fails the whole COPY."""
    conn.execute(CREATE_TABLE.format(name="binary_copied"))
    types = ["int4", "int8", "numeric", "text", "varchar", "bool", "date", "timestamp", "timestamptz", "bytea", "float8", "uuid"]
    with conn.cursor() as cur:
        with cur.copy(f"COPY binary_copied ({', '.join(COLUMNS)}) FROM STDIN (FORMAT binary)") as copy:
            copy.set_types(types)
            for row in ROWS:
                copy.write_row(row)
        assert scalar(conn, "SELECT count(*) FROM binary_copied") == len(ROWS)
        with cur.copy(f"COPY (SELECT {', '.join(COLUMNS)} FROM binary_copied ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(types)
            assert list(copy.rows()) == [tuple(r) for r in ROWS]
        with pytest.raises(psycopg.errors.BadCopyFileFormat):
            with cur.copy("COPY binary_copied (id, big) FROM STDIN BINARY") as copy:
                copy.set_types(["int4", "int8", "text"])
                copy.write_row((100, 1, "one too many"))
        assert scalar(conn, "SELECT count(*) FROM binary_copied") == len(ROWS)
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("COPY binary_copied TO STDOUT (FORMAT binary, DELIMITER ',')")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("COPY binary_copied TO STDOUT (FORMAT binary, HEADER true)")


def test_search_path_from_connect_options_and_set(conn):
    conn.execute("CREATE SCHEMA IF NOT EXISTS tenant_a")
    conn.execute("CREATE SCHEMA IF NOT EXISTS tenant_b")
    for tenant in ("tenant_a", "tenant_b"):
        conn.execute(f"CREATE TABLE {tenant}.profile (id integer PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO {tenant}.profile VALUES (1, %s)", (tenant,))
    # libpq's options (PGOPTIONS) set the path for the whole connection.
    with psycopg.connect(DATABASE_URL, autocommit=True, options="-c search_path=tenant_a,public") as c:
        assert scalar(c, "SHOW search_path") == "tenant_a,public"
        query = "SELECT name FROM profile WHERE id = %s"
        for _ in range(6):  # prepared after a few runs
            assert c.execute(query, (1,)).fetchone() == ("tenant_a",)
        # Changing the path re-resolves the same (prepared) statement.
        c.execute("SET search_path = tenant_b, public")
        assert c.execute(query, (1,)).fetchone() == ("tenant_b",)
        c.execute("INSERT INTO profile VALUES (2, 'new')")
        assert scalar(c, "SELECT current_schema()") == "tenant_b"
    assert scalar(conn, "SELECT count(*) FROM tenant_b.profile") == 2
    assert scalar(conn, "SELECT count(*) FROM tenant_a.profile") == 1
    with pytest.raises(errors.UndefinedTable):
        conn.execute("SELECT * FROM profile")
