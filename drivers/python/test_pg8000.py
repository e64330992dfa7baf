"""pg8000 smoke suite: the pure-Python driver, through its DB-API and its native API."""

from decimal import Decimal

import pg8000.dbapi
import pg8000.native
import pytest

from conftest import url_parts
from smoke_data import COLUMNS, CREATE_TABLE, OIDS, ROWS

INSERT = f"INSERT INTO smoke ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"


def sqlstate(exc):
    return exc.args[0]["C"]


@pytest.fixture
def conn():
    c = pg8000.dbapi.connect(**url_parts())
    c.autocommit = True
    yield c
    c.close()


def one(conn, sql, params=()):
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur.fetchone()


def test_connect(conn):
    assert conn.parameter_statuses["server_version"].startswith("15")
    assert one(conn, "SELECT 1") == [1]


def test_create_table(conn):
    cur = conn.cursor()
    cur.execute(CREATE_TABLE.format(name="smoke"))
    cur.execute("CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance bigint)")


def test_insert_with_bound_parameters(conn):
    cur = conn.cursor()
    cur.executemany(INSERT, ROWS)
    assert cur.rowcount == len(ROWS)
    assert one(conn, "SELECT count(*) FROM smoke") == [len(ROWS)]


def test_select_values_and_types(conn):
    cur = conn.cursor()
    cur.execute(f"SELECT {', '.join(COLUMNS)} FROM smoke ORDER BY id")
    assert [d[0] for d in cur.description] == COLUMNS
    assert [d[1] for d in cur.description] == OIDS
    rows = [tuple(r) for r in cur.fetchall()]
    assert rows == ROWS
    for got, want in zip(rows[0], ROWS[0]):
        assert type(got) is type(want), (got, want)
    assert one(conn, "SELECT note FROM smoke WHERE id = %s", (2,)) == [ROWS[1][3]]
    cur.execute("SELECT id FROM smoke WHERE big > %s ORDER BY id", (0,))
    assert cur.fetchall() == ([1],)


def test_an_integer_literal_is_an_int4(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1, 3000000000")
    assert [d[1] for d in cur.description] == [23, 20]
    assert cur.fetchone() == [1, 3000000000]


def test_result_type_of_a_bigint_sum(conn):
    cur = conn.cursor()
    cur.execute("SELECT sum(big) FROM smoke")
    assert [d[1] for d in cur.description] == [1700]
    assert cur.fetchone()[0] == Decimal(sum(r[1] for r in ROWS))


def test_result_types_of_aggregates(conn):
    cur = conn.cursor()
    cur.execute("SELECT (SELECT avg(id) FROM smoke WHERE id <= 2), (SELECT sum(id) FROM smoke)")
    assert [d[1] for d in cur.description] == [1700, 20]
    assert [type(v) for v in cur.fetchone()] == [Decimal, int]


def test_update_and_delete_with_parameters(conn):
    cur = conn.cursor()
    cur.execute("UPDATE smoke SET note = %s, amount = amount + %s WHERE id = %s", ("changed", 1, 1))
    assert cur.rowcount == 1
    assert one(conn, "SELECT note, amount FROM smoke WHERE id = 1") == ["changed", ROWS[0][2] + 1]
    cur.execute("DELETE FROM smoke WHERE id = %s", (3,))
    assert cur.rowcount == 1
    cur.execute("DELETE FROM smoke WHERE id = %s", (3,))
    assert cur.rowcount == 0
    assert one(conn, "UPDATE smoke SET flag = NOT flag WHERE id = %s RETURNING flag", (2,)) == [True]


def test_transaction_commits():
    c = pg8000.dbapi.connect(**url_parts())
    cur = c.cursor()
    cur.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (1, "alice", 100))
    cur.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (2, "bob", 50))
    c.commit()
    c.close()
    other = pg8000.native.Connection(**url_parts())
    assert other.run("SELECT sum(balance) FROM accounts") == [[150]]
    other.close()


def test_transaction_rolls_back(conn):
    c = pg8000.dbapi.connect(**url_parts())
    cur = c.cursor()
    cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (30, 1))
    cur.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (3, "carol", 1))
    assert one(c, "SELECT balance FROM accounts WHERE id = 1") == [70]
    c.rollback()
    assert one(c, "SELECT balance FROM accounts WHERE id = 1") == [100]
    c.close()
    assert one(conn, "SELECT count(*) FROM accounts WHERE id = 3") == [0]


def test_duplicate_key_sqlstate(conn):
    with pytest.raises(pg8000.dbapi.DatabaseError) as e:
        one(conn, "INSERT INTO accounts VALUES (%s, %s, %s)", (1, "mallory", 0))
    assert sqlstate(e.value) == "23505"
    assert one(conn, "SELECT owner FROM accounts WHERE id = %s", (1,)) == ["alice"]
    c = pg8000.dbapi.connect(**url_parts())
    with pytest.raises(pg8000.dbapi.DatabaseError) as e:
        one(c, "INSERT INTO accounts VALUES (%s, %s, %s)", (2, "mallory", 0))
    with pytest.raises(pg8000.dbapi.DatabaseError) as e:
        one(c, "SELECT 1")
    assert sqlstate(e.value) == "25P02"
    c.rollback()
    assert one(c, "SELECT 1") == [1]
    c.close()


def test_duplicate_key_names_the_constraint(conn):
    with pytest.raises(pg8000.dbapi.DatabaseError) as e:
        one(conn, "INSERT INTO accounts VALUES (%s, %s, %s)", (1, "mallory", 0))
    assert e.value.args[0].get("n") == "accounts_pkey"
    assert e.value.args[0].get("t") == "accounts"


def test_syntax_error_sqlstate(conn):
    with pytest.raises(pg8000.dbapi.DatabaseError) as e:
        one(conn, "SELEC 1")
    assert sqlstate(e.value) == "42601"
    with pytest.raises(pg8000.dbapi.DatabaseError) as e:
        one(conn, "SELECT * FROM no_such_table")
    assert sqlstate(e.value) == "42P01"
    assert one(conn, "SELECT 2") == [2]


def test_prepared_statement_reuse():
    con = pg8000.native.Connection(**url_parts())
    try:
        select = con.prepare("SELECT owner, balance FROM accounts WHERE id = :id")
        for _ in range(3):
            assert select.run(id=1) == [["alice", 100]]
            assert select.run(id=2) == [["bob", 50]]
        insert = con.prepare("INSERT INTO accounts VALUES (:id, :owner, :balance)")
        for i in range(10, 20):
            insert.run(id=i, owner=f"user{i}", balance=i)
        insert.close()
        assert con.run("SELECT count(*) FROM accounts WHERE id >= 10") == [[10]]
        for i in range(10, 20):
            assert select.run(id=i) == [[f"user{i}", i]]
        select.close()
    finally:
        con.close()


def test_native_api_and_copy():
    con = pg8000.native.Connection(**url_parts())
    try:
        con.run("CREATE TABLE copied (id integer PRIMARY KEY, name text)")
        import io

        con.run("COPY copied FROM STDIN WITH (FORMAT csv)", stream=io.StringIO("1,one\n2,\"t,wo\"\n"))
        assert con.row_count == 2
        out = io.StringIO()
        con.run("COPY (SELECT id, name FROM copied ORDER BY id) TO STDOUT WITH (FORMAT csv)", stream=out)
        assert out.getvalue() == '1,one\n2,"t,wo"\n'
        assert con.run("SELECT name FROM copied WHERE id = :id", id=2) == [["t,wo"]]
    finally:
        con.close()
