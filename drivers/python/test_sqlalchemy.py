"""SQLAlchemy 2 ORM smoke suite, with psycopg 3 as its driver.

Runs against PostgreSQL and against Strata (cli/tests/e2e/drivers.rs). On Strata the dialect
connects (version(), current_schema(), psycopg's pg_type lookup, has_table over pg_class and
pg_namespace all answer), the inspector reflects columns (identity options and defaults
included) and the ORM steps pass; steps marked `strata_gap` would say what does not work yet.
"""

import enum
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

import psycopg.errors
import pytest
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Double, Enum, ForeignKey, LargeBinary, Numeric, String, Text, Uuid, create_engine, func, inspect, select, text, update
from sqlalchemy.schema import CreateSchema
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from conftest import DATABASE_URL
from smoke_data import COLUMNS, ROWS

ENGINE_URL = DATABASE_URL.replace("postgres://", "postgresql+psycopg://", 1).replace(
    "postgresql://", "postgresql+psycopg://", 1
)


class Base(DeclarativeBase):
    pass


class Item(Base):
    """Every type of the smoke table, with keys chosen by the application."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    big: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    note: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(String(16))
    flag: Mapped[bool | None] = mapped_column(Boolean)
    day: Mapped[date | None] = mapped_column(Date)
    at: Mapped[datetime | None] = mapped_column(DateTime)
    at_tz: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    ratio: Mapped[float | None] = mapped_column(Double)
    token: Mapped[UUID | None] = mapped_column(Uuid)

    def values(self):
        return tuple(getattr(self, c) for c in COLUMNS)


class GeneratedBase(DeclarativeBase):
    """Its own metadata, so that a gap in SERIAL does not hide what the rest of the suite checks."""


class Note(GeneratedBase):
    """The usual model: an integer primary key the database generates (SERIAL)."""

    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(Text)


@pytest.fixture(scope="module")
def engine():
    e = create_engine(ENGINE_URL)
    yield e
    e.dispose()


def items():
    return [Item(**dict(zip(COLUMNS, row))) for row in ROWS]


def test_engine_connects(engine):
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    assert engine.dialect.server_version_info >= (15,)


def test_create_all(engine):
    Base.metadata.create_all(engine)
    assert inspect(engine).has_table("items")


def test_inspect_columns(engine):
    columns = {c["name"]: c for c in inspect(engine).get_columns("items")}
    assert list(columns) == COLUMNS
    assert [str(columns[c]["type"]) for c in ("id", "big", "amount", "code", "at_tz", "token")] == [
        "INTEGER", "BIGINT", "NUMERIC(10, 2)", "VARCHAR(16)", "TIMESTAMP", "UUID"
    ]
    assert columns["at_tz"]["type"].timezone
    assert [columns[c]["nullable"] for c in ("id", "big", "note")] == [False, False, True]


def test_inspect_identity_and_defaults(engine):
    """Reflection reads identity options from pg_sequence and defaults from pg_attrdef, in
    correlated subqueries over the catalog."""
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE reflected (id bigint GENERATED ALWAYS AS IDENTITY (START WITH 5 INCREMENT BY 2) PRIMARY KEY, "
            "n serial, label text DEFAULT 'none' NOT NULL, plain int)"
        ))
    columns = {c["name"]: c for c in inspect(engine).get_columns("reflected")}
    assert list(columns) == ["id", "n", "label", "plain"]
    identity = columns["id"]["identity"]
    assert (identity["always"], identity["start"], identity["increment"]) == (True, 5, 2)
    assert identity["maxvalue"] == 2**63 - 1 and identity["cycle"] is False
    assert columns["n"]["default"] == "nextval('reflected_n_seq'::regclass)"
    assert columns["n"]["autoincrement"] is True and "identity" not in columns["n"]
    assert columns["label"]["default"] == "'none'::text" and columns["label"]["nullable"] is False
    assert columns["plain"]["default"] is None and "identity" not in columns["plain"]


def test_session_add_and_commit(engine):
    with Session(engine) as session:
        session.add_all(items())
        session.commit()
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Item)) == len(ROWS)


def test_query_and_filter(engine):
    with Session(engine) as session:
        got = [i.values() for i in session.scalars(select(Item).order_by(Item.id))]
        assert got == ROWS
        for value, want in zip(got[0], ROWS[0]):
            assert type(value) is type(want), (value, want)
        assert [i.id for i in session.scalars(select(Item).where(Item.big > 0))] == [1]
        assert session.get(Item, 2).note == ROWS[1][3]
        assert session.scalars(select(Item.id).where(Item.note.is_(None))).all() == [3]
        # The same statement again with other parameters (psycopg prepares it after a few).
        for _ in range(6):
            for row in ROWS:
                assert session.scalar(select(Item.big).where(Item.id == row[0])) == row[1]


def test_update_and_delete(engine):
    with Session(engine) as session:
        item = session.get(Item, 1)
        item.note = "changed"
        item.amount += 1
        session.commit()
    with Session(engine) as session:
        assert session.get(Item, 1).values()[2:4] == (ROWS[0][2] + 1, "changed")
        result = session.execute(update(Item).where(Item.id == 2).values(flag=True))
        assert result.rowcount == 1
        session.delete(session.get(Item, 3))
        session.commit()
    with Session(engine) as session:
        assert session.scalars(select(Item.id).order_by(Item.id)).all() == [1, 2]
        assert session.get(Item, 2).flag is True


def test_rollback(engine):
    with Session(engine) as session:
        session.add(Item(id=10, big=10))
        session.get(Item, 1).note = "not kept"
        session.flush()
        assert session.scalar(select(func.count()).select_from(Item)) == 3
        session.rollback()
        assert session.get(Item, 10) is None
        assert session.get(Item, 1).note == "changed"


def test_duplicate_key_is_an_integrity_error(engine):
    with Session(engine) as session:
        session.add(Item(id=1, big=0))
        with pytest.raises(IntegrityError) as e:
            session.commit()
        assert isinstance(e.value.orig, psycopg.errors.UniqueViolation)
        assert e.value.orig.sqlstate == "23505"
        session.rollback()
        assert session.get(Item, 1).big == ROWS[0][1]


def test_syntax_error(engine):
    with Session(engine) as session:
        with pytest.raises(ProgrammingError) as e:
            session.execute(text("SELEC 1"))
        assert e.value.orig.sqlstate == "42601"
        session.rollback()
        assert session.execute(text("SELECT 2")).scalar() == 2


def test_database_generated_primary_key(engine):
    GeneratedBase.metadata.create_all(engine)
    with Session(engine) as session:
        note = Note(body="first")
        session.add(note)
        session.commit()
        assert note.id == 1
        session.add(Note(body="second"))
        session.commit()
        assert session.scalars(select(Note.id).order_by(Note.id)).all() == [1, 2]


class LedgerBase(DeclarativeBase):
    """Models in a schema of their own, as applications that split their tables do."""


class Account(LedgerBase):
    __tablename__ = "accounts"
    __table_args__ = {"schema": "ledger"}
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(Text)


class Posting(LedgerBase):
    __tablename__ = "postings"
    __table_args__ = {"schema": "ledger"}
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger.accounts.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))


def test_models_in_a_schema(engine):
    with engine.begin() as conn:
        conn.execute(CreateSchema("ledger", if_not_exists=True))
    LedgerBase.metadata.create_all(engine)
    assert inspect(engine).has_table("postings", schema="ledger")
    assert not inspect(engine).has_table("postings")
    assert "ledger" in inspect(engine).get_schema_names()
    with Session(engine) as session:
        account = Account(owner="ada")
        session.add(account)
        session.flush()
        session.add_all([Posting(account_id=account.id, amount=Decimal("1.50")), Posting(account_id=account.id, amount=Decimal("2.25"))])
        session.commit()
    with Session(engine) as session:
        total = session.scalar(select(func.sum(Posting.amount)).join(Account).where(Account.owner == "ada"))
        assert total == Decimal("3.75")
    with pytest.raises(IntegrityError) as e:
        with Session(engine) as session:
            session.add(Posting(account_id=99, amount=Decimal("1")))
            session.commit()
    assert e.value.orig.sqlstate == "23503"
    LedgerBase.metadata.drop_all(engine)
    assert not inspect(engine).has_table("postings", schema="ledger")


class Status(enum.Enum):
    active = "active"
    suspended = "suspended"
    closed = "closed"


class EnumBase(DeclarativeBase):
    """A model with an Enum column: SQLAlchemy creates the type (CREATE TYPE … AS ENUM) after
    asking pg_type whether it exists, and drops it with the table."""


class Member(EnumBase):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status: Mapped[Status] = mapped_column(Enum(Status, name="member_status"))


def test_enum_column(engine):
    EnumBase.metadata.create_all(engine)
    EnumBase.metadata.create_all(engine)  # finds the type and the table, creates neither
    assert inspect(engine).get_enums()[0]["labels"] == ["active", "suspended", "closed"]
    with Session(engine) as session:
        session.add_all([Member(id=1, status=Status.closed), Member(id=2, status=Status.active)])
        session.commit()
    with Session(engine) as session:
        assert session.get(Member, 1).status is Status.closed
        # Enum values sort in the order the type declares them.
        assert session.scalars(select(Member.id).order_by(Member.status)).all() == [2, 1]
        found = session.scalars(select(Member.id).where(Member.status == Status.active)).all()
        assert found == [2]
    with pytest.raises(Exception) as e:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO members VALUES (3, 'gone')"))
    assert e.value.orig.sqlstate == "22P02"
    EnumBase.metadata.drop_all(engine)
    assert inspect(engine).get_enums() == []
