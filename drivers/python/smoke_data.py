"""The table and rows every Python suite writes and reads back (the Node and Java ones have the
same columns, and a uuid column too)."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

CREATE_TABLE = """
CREATE TABLE {name} (
    id integer PRIMARY KEY,
    big bigint NOT NULL,
    amount numeric(10,2),
    note text,
    code varchar(16),
    flag boolean,
    day date,
    at timestamp,
    at_tz timestamptz,
    payload bytea,
    ratio double precision,
    token uuid
)
"""

COLUMNS = ["id", "big", "amount", "note", "code", "flag", "day", "at", "at_tz", "payload", "ratio", "token"]

ROWS = [
    (
        1,
        2**40 + 7,
        Decimal("12345678.90"),
        "hello",
        "v1",
        True,
        date(2024, 2, 29),
        datetime(2024, 2, 29, 12, 34, 56, 123456),
        datetime(2024, 2, 29, 12, 34, 56, 654321, tzinfo=timezone.utc),
        b"\x00\x01\xfe\xff",
        1.5,
        UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ),
    (
        2,
        -(2**62),
        Decimal("-0.01"),
        "ünïcödé ✓ 'quoted' \\ back",
        "",
        False,
        date(1999, 12, 31),
        datetime(1999, 12, 31, 23, 59, 59),
        # +02:00 on the way in; any time zone on the way out, the same instant.
        datetime(2000, 1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=2))),
        b"",
        -2.5e-300,
        UUID("00000000-0000-0000-0000-000000000000"),
    ),
    (3, 0, None, None, None, None, None, None, None, None, None, None),
]

# PostgreSQL type OIDs of the columns, in order.
OIDS = [23, 20, 1700, 25, 1043, 16, 1082, 1114, 1184, 17, 701, 2950]
