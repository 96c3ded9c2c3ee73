"""MySQL (TencentDB for MySQL, the most common database on Tencent Cloud) and MariaDB through
PyMySQL: pure Python, no client library in the layer. Imported only for a mysql:// URL."""

from __future__ import annotations

import pymysql

from ..errors import StoreUnavailable
from .server import ServerUrl

__all__ = ["MysqlDialect"]

# Set per session, so the server's own defaults cannot change what our SQL means: strict (a NULL
# or an over-long value is an error, not a silent "" or a truncation), and no backslash-free
# quoting (PyMySQL escapes values with backslashes).
_SQL_MODE = "STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO"

_DEADLOCK = 1213            # ER_LOCK_DEADLOCK: InnoDB rolled the transaction back
_ALREADY_EXISTS = (1050,    # ER_TABLE_EXISTS_ERROR
                   1060,    # ER_DUP_FIELDNAME: the column exists
                   1061)    # ER_DUP_KEYNAME: the index exists


class MysqlDialect:
    name = "mysql"
    placeholder = "%s"
    errors: tuple[type[BaseException], ...] = (pymysql.err.MySQLError, OSError)

    def __init__(self, url: str) -> None:
        self.server = ServerUrl(url, default_port=3306)
        # GET_LOCK names are server-wide and at most 64 characters: one per database.
        self._lock_name = f"sesmail_schema:{self.server.database}"[:64]

    def connect(self):
        server = self.server
        context = server.tls_context()
        connection = pymysql.connect(
            host=server.host, port=server.port, user=server.user, password=server.password or "",
            database=server.database, charset="utf8mb4", autocommit=True, sql_mode=_SQL_MODE,
            connect_timeout=server.connect_timeout, read_timeout=server.timeout,
            write_timeout=server.timeout, ssl=context, ssl_disabled=context is None)
        try:
            # READ COMMITTED takes no gap locks: concurrent inserts of the same events wait on the
            # row, not on ranges, which is where REPEATABLE READ's deadlocks come from.
            connection.cursor().execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        except BaseException:
            connection.close()
            raise
        return connection

    def begin(self, connection) -> None:
        connection.begin()

    def lock_schema(self, connection) -> None:
        # MySQL commits every DDL statement on its own, so a transaction cannot make the migration
        # atomic: a named lock makes instances take turns, and each step tolerates what a dead
        # predecessor already created.
        cursor = connection.cursor()
        cursor.execute("SELECT GET_LOCK(%s, %s)", (self._lock_name, max(1, int(self.server.timeout) - 1)))
        row = cursor.fetchone()
        if not row or row[0] != 1:
            raise StoreUnavailable("the database schema is locked by another instance")

    def unlock_schema(self, connection, commit: bool) -> None:
        try:
            connection.cursor().execute("SELECT RELEASE_LOCK(%s)", (self._lock_name,))
        except self.errors:
            pass  # a lost connection releases its locks by itself

    @staticmethod
    def is_integrity(exc: BaseException) -> bool:
        return isinstance(exc, pymysql.err.IntegrityError)

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        return bool(exc.args) and exc.args[0] == _DEADLOCK

    @staticmethod
    def already_exists(exc: BaseException) -> bool:
        return bool(exc.args) and exc.args[0] in _ALREADY_EXISTS
