"""PostgreSQL (TencentDB for PostgreSQL) through pg8000: pure Python, so the layer needs no libpq
and stays small (docs/deploy.md#once-per-account). Imported only when SESMAIL_DATABASE_URL is a postgresql:// URL."""

from __future__ import annotations

import socket

import pg8000.dbapi

from .server import ServerUrl

__all__ = ["PostgresDialect"]

# pg_advisory_xact_lock key for migrations ("sesmail" in ASCII); advisory locks are per database.
_SCHEMA_LOCK = 0x7365736D61696C


def _sqlstate(exc: BaseException) -> str:
    # pg8000 raises one DatabaseError class for every server error; the SQLSTATE is in its fields.
    fields = exc.args[0] if exc.args else None
    return str(fields.get("C", "")) if isinstance(fields, dict) else ""


class PostgresDialect:
    name = "postgresql"
    placeholder = "%s"  # pg8000.dbapi's paramstyle is module-wide: we leave it as shipped
    errors: tuple[type[BaseException], ...] = (pg8000.dbapi.Error, OSError)

    def __init__(self, url: str) -> None:
        self.server = ServerUrl(url, default_port=5432)

    def connect(self):
        server = self.server
        # Our own socket: pg8000 would use one timeout for connecting and for every read; we want
        # a short one to connect (a dead server answers 503 at once) and a longer one per query.
        sock = socket.create_connection((server.host, server.port), server.connect_timeout)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            # pg8000 writes a statement as several small messages; with Nagle's algorithm on, a
            # multi-row INSERT waits out the server's delayed ACK (measured: 10x slower batches).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(server.timeout)
            context = server.tls_context()
            connection = pg8000.dbapi.connect(
                user=server.user, password=server.password, host=server.host, port=server.port,
                database=server.database, sock=sock, ssl_context=context if context is not None else False,
                application_name="sesmail")
        except BaseException:
            sock.close()
            raise
        # Autocommit: every write is one statement; begin() opens the few real transactions.
        connection.autocommit = True
        return connection

    @staticmethod
    def run_prepared(connection, sql: str, params: tuple) -> list:
        """Run `sql` (`%s` placeholders) as a prepared statement of this connection, made on first
        use: PostgreSQL plans it once, not on every call (a large WITH statement costs more to plan
        than to run). A new connection prepares its own."""
        cache = connection.__dict__.setdefault("_sesmail_prepared", {})
        statement = cache.get(sql)
        if statement is None:
            from pg8000.native import PreparedStatement

            parts = sql.split("%s")
            statement = cache[sql] = PreparedStatement(
                connection, parts[0] + "".join(f":p{index}{part}" for index, part in enumerate(parts[1:])))
        return statement.run(**{f"p{index}": value for index, value in enumerate(params)})

    def begin(self, connection) -> None:
        connection.cursor().execute("BEGIN")

    def lock_schema(self, connection) -> None:
        # DDL is transactional in PostgreSQL: the whole migration commits or vanishes, and the
        # advisory lock makes a second instance wait, then find the schema current.
        cursor = connection.cursor()
        cursor.execute("BEGIN")
        cursor.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")

    def unlock_schema(self, connection, commit: bool) -> None:
        if commit:
            connection.commit()
        else:
            try:
                connection.rollback()
            except self.errors:
                pass  # the failure that brought us here is the one to report

    @staticmethod
    def is_integrity(exc: BaseException) -> bool:
        return _sqlstate(exc).startswith("23")  # class 23: integrity constraint violation

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        return _sqlstate(exc) in ("40P01", "40001")  # deadlock detected, serialization failure

    @staticmethod
    def already_exists(exc: BaseException) -> bool:
        return False  # never half-migrated: the migration is one transaction
