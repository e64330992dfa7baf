#!/usr/bin/env python3
"""A logging TCP proxy for the PostgreSQL wire protocol (debugging aid for the driver suites).

    python3 drivers/tools/pgwire_trace.py LISTEN_PORT UPSTREAM_PORT [LOG_FILE]

Point a driver at 127.0.0.1:LISTEN_PORT; every message each side sends is decoded and logged
(one line per message: connection number, direction, type, the interesting fields). This is how
the known gaps in the driver suites were found: which statement or message a driver sent, and what
Strata answered. Needs nothing but the standard library.
"""

import asyncio
import struct
import sys

FRONTEND = {
    "Q": "Query", "P": "Parse", "B": "Bind", "D": "Describe", "E": "Execute", "S": "Sync",
    "H": "Flush", "C": "Close", "X": "Terminate", "d": "CopyData", "c": "CopyDone",
    "f": "CopyFail", "p": "Password", "F": "FunctionCall",
}
BACKEND = {
    "R": "Auth", "S": "ParameterStatus", "K": "BackendKeyData", "Z": "ReadyForQuery",
    "T": "RowDescription", "D": "DataRow", "C": "CommandComplete", "E": "ErrorResponse",
    "N": "Notice", "1": "ParseComplete", "2": "BindComplete", "3": "CloseComplete",
    "t": "ParameterDescription", "n": "NoData", "s": "PortalSuspended", "I": "EmptyQuery",
    "G": "CopyIn", "H": "CopyOut", "W": "CopyBoth", "d": "CopyData", "c": "CopyDone",
    "A": "Notification", "v": "NegotiateProtocolVersion",
}


def cstr(buf, pos):
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("utf-8", "replace"), end + 1


def describe_frontend(kind, body):
    if kind == "Q":
        return cstr(body, 0)[0]
    if kind == "P":
        name, pos = cstr(body, 0)
        query, pos = cstr(body, pos)
        (n,) = struct.unpack_from("!h", body, pos)
        oids = struct.unpack_from(f"!{n}I", body, pos + 2)
        return f"name={name!r} param_oids={list(oids)} query={query!r}"
    if kind == "B":
        portal, pos = cstr(body, 0)
        stmt, pos = cstr(body, pos)
        (nf,) = struct.unpack_from("!h", body, pos)
        formats = struct.unpack_from(f"!{nf}h", body, pos + 2)
        pos += 2 + 2 * nf
        (np,) = struct.unpack_from("!h", body, pos)
        pos += 2
        params = []
        for _ in range(np):
            (ln,) = struct.unpack_from("!i", body, pos)
            pos += 4
            if ln < 0:
                params.append(None)
            else:
                params.append(bytes(body[pos:pos + ln]))
                pos += ln
        (nr,) = struct.unpack_from("!h", body, pos)
        rformats = struct.unpack_from(f"!{nr}h", body, pos + 2)
        return f"portal={portal!r} stmt={stmt!r} param_formats={list(formats)} params={params} result_formats={list(rformats)}"
    if kind in ("D", "C"):
        return f"{chr(body[0])} {cstr(body, 1)[0]!r}"
    if kind == "E":
        portal, pos = cstr(body, 0)
        return f"portal={portal!r} max_rows={struct.unpack_from('!i', body, pos)[0]}"
    if kind == "d":
        return repr(bytes(body[:200]))
    return ""


def describe_backend(kind, body):
    if kind in ("E", "N"):
        fields, pos = {}, 0
        while body[pos] != 0:
            code = chr(body[pos])
            value, pos = cstr(body, pos + 1)
            fields[code] = value
        rest = " ".join(f"{k}={v!r}" for k, v in fields.items() if k not in "CMSVFLR")
        return f"{fields.get('S')} {fields.get('C')} {fields.get('M')!r} {rest}".rstrip()
    if kind == "S":
        k, pos = cstr(body, 0)
        return f"{k}={cstr(body, pos)[0]}"
    if kind == "Z":
        return chr(body[0])
    if kind == "C":
        return cstr(body, 0)[0]
    if kind == "R":
        return str(struct.unpack_from("!i", body, 0)[0])
    if kind == "t":
        (n,) = struct.unpack_from("!h", body, 0)
        return str(list(struct.unpack_from(f"!{n}I", body, 2)))
    if kind == "T":
        (n,) = struct.unpack_from("!h", body, 0)
        pos, cols = 2, []
        for _ in range(n):
            name, pos = cstr(body, pos)
            _table, _attr, oid, _size, _mod, fmt = struct.unpack_from("!IhIhih", body, pos)
            pos += 18
            cols.append(f"{name}:{oid}{'b' if fmt else ''}")
        return " ".join(cols)
    if kind == "D":
        (n,) = struct.unpack_from("!h", body, 0)
        pos, vals = 2, []
        for _ in range(n):
            (ln,) = struct.unpack_from("!i", body, pos)
            pos += 4
            vals.append(None if ln < 0 else bytes(body[pos:pos + ln]))
            pos += max(ln, 0)
        return repr(vals)[:300]
    return ""


class Trace:
    def __init__(self, out):
        self.out = out
        self.count = 0

    def log(self, conn, arrow, text):
        print(f"[{conn}] {arrow} {text}", file=self.out, flush=True)

    async def pump_frontend(self, conn, reader, writer, client_writer):
        startup = True
        while True:
            if startup:
                head = await reader.readexactly(4)
                (ln,) = struct.unpack("!i", head)
                body = await reader.readexactly(ln - 4)
                (code,) = struct.unpack_from("!i", body, 0)
                if code in (80877103, 80877104):
                    # SSL or GSS encryption request: refused here, so that the rest is readable.
                    self.log(conn, "F>", "SSLRequest (answered N by the proxy)")
                    client_writer.write(b"N")
                    await client_writer.drain()
                    continue
                if code == 80877102:
                    self.log(conn, "F>", "CancelRequest")
                else:
                    parts = body[4:].split(b"\0")
                    params = dict(zip(parts[0::2], parts[1::2]))
                    self.log(conn, "F>", f"Startup {code >> 16}.{code & 0xFFFF} " + " ".join(
                        f"{k.decode()}={v.decode()}" for k, v in params.items() if k))
                    startup = False
                writer.write(head + body)
            else:
                head = await reader.readexactly(5)
                kind = chr(head[0])
                (ln,) = struct.unpack_from("!i", head, 1)
                body = await reader.readexactly(ln - 4)
                self.log(conn, "F>", f"{FRONTEND.get(kind, kind)} {describe_frontend(kind, body)}")
                writer.write(head + body)
            await writer.drain()

    async def pump_backend(self, conn, reader, writer):
        while True:
            head = await reader.readexactly(5)
            first = head[:1]
            (ln,) = struct.unpack_from("!i", head, 1)
            body = await reader.readexactly(ln - 4)
            kind = chr(first[0])
            text = describe_backend(kind, body)
            if kind != "D" or self.verbose_rows:
                self.log(conn, "<B", f"{BACKEND.get(kind, kind)} {text}")
            writer.write(head + body)
            await writer.drain()

    verbose_rows = True

    async def handle(self, client_reader, client_writer, upstream_port):
        self.count += 1
        conn = self.count
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        tasks = [
            asyncio.create_task(self.pump_frontend(conn, client_reader, server_writer, client_writer)),
            asyncio.create_task(self.pump_backend(conn, server_reader, client_writer)),
        ]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() and not isinstance(t.exception(), asyncio.IncompleteReadError):
                self.log(conn, "!!", repr(t.exception()))
        self.log(conn, "--", "closed")
        client_writer.close()
        server_writer.close()


async def main():
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    out = open(sys.argv[3], "a") if len(sys.argv) > 3 else sys.stdout
    trace = Trace(out)
    server = await asyncio.start_server(
        lambda r, w: trace.handle(r, w, upstream), "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
