"""One backup engine per database vendor, behind one interface (after django-dbbackup's connectors).

An engine streams a dump out (iter_dump) and loads one back (load), and answers the questions a
backup needs: server version, tables and their row counts, integrity, tables outside the snapshot.
It never writes files of its own except SQLite's temporary copies and MySQL's 0600 option file.

MySQL/MariaDB: mariadb-dump (or mysqldump) with a consistent --single-transaction snapshot that does
not block writers; the password reaches the tools through a 0600 option file, never their arguments.
SQLite: the online backup API (consistent under WAL and concurrent writers), or an SQL text dump.
"""

import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from django.db import connections

CHUNK = 1024 * 1024
# The tools get the password from the option file only; the environment may carry it (DATABASE_URL).
_SECRET_VARIABLES = ("DATABASE_URL", "SECRET_KEY", "EMAIL_HOST_PASSWORD", "MYSQL_PWD")


def _tool_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in _SECRET_VARIABLES}


class EngineError(Exception):
    """The database tool failed; the message carries its own words."""


class Engine:
    vendor: str = ""
    formats: tuple[str, ...] = ()

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self.settings = connections[alias].settings_dict

    @property
    def database(self) -> str:
        return str(self.settings["NAME"])

    def server_version(self) -> str:
        raise NotImplementedError

    def iter_dump(self, fmt: str) -> Iterator[bytes]:
        raise NotImplementedError

    def load(self, chunks: Iterable[bytes], fmt: str) -> None:
        """Replace the whole database with the dump: nothing created after the backup survives."""
        raise NotImplementedError

    def table_row_counts(self) -> dict[str, int]:
        with connections[self.alias].cursor() as cursor:
            tables = connections[self.alias].introspection.table_names(cursor)
            counts = {}
            for table in tables:
                cursor.execute(f"SELECT COUNT(*) FROM {connections[self.alias].ops.quote_name(table)}")  # noqa: S608
                counts[table] = cursor.fetchone()[0]
        return counts

    def integrity_problems(self) -> list[str]:
        raise NotImplementedError

    def tables_outside_snapshot(self) -> list[str]:
        return []

    @staticmethod
    def dump_is_complete(fmt: str, tail: bytes) -> bool:
        raise NotImplementedError


class MySQLEngine(Engine):
    vendor = "mysql"
    formats = ("sql",)

    def server_version(self) -> str:
        with connections[self.alias].cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            return str(cursor.fetchone()[0])

    @contextmanager
    def _option_file(self) -> Iterator[Path]:
        """[client] options in a 0600 file that only lives while the tool runs."""
        options = {
            "user": self.settings.get("USER"),
            "password": self.settings.get("PASSWORD"),
            "host": self.settings.get("HOST"),
            "port": self.settings.get("PORT"),
        }
        extra = self.settings.get("OPTIONS", {})
        if extra.get("unix_socket"):
            options["socket"] = extra["unix_socket"]
        with tempfile.TemporaryDirectory(prefix="helpdesk-mysql-") as directory:
            path = Path(directory) / "client.cnf"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("[client]\n")
                for key, value in options.items():
                    if value not in (None, ""):
                        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
                        handle.write(f'{key}="{escaped}"\n')
            yield path

    def _tool(self, *names: str) -> str:
        for name in names:
            found = shutil.which(name)
            if found:
                return found
        raise EngineError(f"none of {', '.join(names)} is installed (apt-get install mariadb-client)")

    def iter_dump(self, fmt: str = "sql") -> Iterator[bytes]:
        dump = self._tool("mariadb-dump", "mysqldump")
        with self._option_file() as options, tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                [
                    dump,
                    f"--defaults-extra-file={options}",  # must come first
                    "--single-transaction",
                    "--quick",
                    "--routines",
                    "--triggers",
                    "--events",
                    "--hex-blob",
                    "--default-character-set=utf8mb4",
                    "--no-tablespaces",
                    "--skip-lock-tables",
                    self.database,
                ],
                stdout=subprocess.PIPE,
                stderr=errors,
                stdin=subprocess.DEVNULL,
                env=_tool_environment(),
            )
            try:
                while chunk := process.stdout.read(CHUNK):
                    yield chunk
                returncode = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                process.stdout.close()
            if returncode != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()
                raise EngineError(f"{Path(dump).name} failed (exit {returncode}): {message}")

    def load(self, chunks: Iterable[bytes], fmt: str = "sql") -> None:
        client = self._tool("mariadb", "mysql")
        prelude = self._drop_everything_sql()
        with self._option_file() as options, tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                [
                    client,
                    f"--defaults-extra-file={options}",
                    "--binary-mode",
                    "--default-character-set=utf8mb4",
                    f"--database={self.database}",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=_tool_environment(),
            )
            try:
                process.stdin.write(prelude.encode())
                for chunk in chunks:
                    process.stdin.write(chunk)
                process.stdin.close()
            except BrokenPipeError:
                pass  # the client stopped reading: it failed, and says why below
            finally:
                returncode = process.wait()
            if returncode != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()
                raise EngineError(f"{Path(client).name} failed (exit {returncode}): {message}")
        connections[self.alias].close()

    def _drop_everything_sql(self) -> str:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
            rows = cursor.fetchall()
        quote = connections[self.alias].ops.quote_name
        views = [quote(name) for name, kind in rows if kind == "VIEW"]
        tables = [quote(name) for name, kind in rows if kind != "VIEW"]
        statements = ["SET FOREIGN_KEY_CHECKS=0;"]
        if views:
            statements.append(f"DROP VIEW IF EXISTS {', '.join(views)};")
        if tables:
            statements.append(f"DROP TABLE IF EXISTS {', '.join(tables)};")
        return "\n".join(statements) + "\n"

    def integrity_problems(self) -> list[str]:
        problems = []
        with connections[self.alias].cursor() as cursor:
            tables = connections[self.alias].introspection.table_names(cursor)
            if tables:
                quote = connections[self.alias].ops.quote_name
                cursor.execute(f"CHECK TABLE {', '.join(quote(t) for t in tables)}")
                for table, _op, kind, text in cursor.fetchall():
                    if kind in ("error", "warning") or (kind == "status" and text != "OK"):
                        problems.append(f"{table}: {text}")
        return problems

    def tables_outside_snapshot(self) -> list[str]:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                "SELECT table_name, engine FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' AND engine <> 'InnoDB'"
            )
            return [f"{name} ({engine})" for name, engine in cursor.fetchall()]

    @staticmethod
    def dump_is_complete(fmt: str, tail: bytes) -> bool:
        lines = tail.rstrip().splitlines()
        return bool(lines) and lines[-1].startswith(b"-- Dump completed")


class SQLiteEngine(Engine):
    vendor = "sqlite"
    formats = ("sqlite3", "sql")

    @property
    def path(self) -> Path:
        name = str(self.settings["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise EngineError("an in-memory SQLite database cannot be backed up to or restored from a file")
        return Path(name)

    @property
    def database(self) -> str:
        return Path(str(self.settings["NAME"])).name

    def server_version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def iter_dump(self, fmt: str = "sqlite3") -> Iterator[bytes]:
        source = sqlite3.connect(self.path, timeout=30)
        try:
            if fmt == "sql":
                buffer: list[str] = []
                size = 0
                for line in source.iterdump():
                    buffer.append(line + "\n")
                    size += len(line)
                    if size >= CHUNK:
                        yield "".join(buffer).encode()
                        buffer, size = [], 0
                yield "".join(buffer).encode()
                return
            # The backup API copies a consistent snapshot page by page, safe with concurrent writers.
            with tempfile.TemporaryDirectory(prefix="helpdesk-sqlite-") as directory:
                copy_path = Path(directory) / "snapshot.sqlite3"
                copy = sqlite3.connect(copy_path)
                try:
                    source.backup(copy)
                finally:
                    copy.close()
                with copy_path.open("rb") as handle:
                    while chunk := handle.read(CHUNK):
                        yield chunk
        finally:
            source.close()

    def load(self, chunks: Iterable[bytes], fmt: str = "sqlite3") -> None:
        target = self.path
        staging = target.with_name(f".{target.name}.restoring-{os.getpid()}")
        try:
            if fmt == "sql":
                script = b"".join(chunks).decode()
                connection = sqlite3.connect(staging)
                try:
                    connection.executescript(script)
                finally:
                    connection.close()
            else:
                with staging.open("wb") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
            problems = _sqlite_integrity(staging)
            if problems:
                raise EngineError(f"the restored copy fails its integrity check: {'; '.join(problems)}")
            # Swap the checked copy in; a -wal or -shm left beside it would be replayed into it.
            connections[self.alias].close()
            os.replace(staging, target)
            for suffix in ("-wal", "-shm", "-journal"):
                with suppress(FileNotFoundError):
                    target.with_name(target.name + suffix).unlink()
        except sqlite3.Error as error:
            raise EngineError(f"SQLite could not load the dump: {error}") from error
        finally:
            with suppress(FileNotFoundError):
                staging.unlink()

    def integrity_problems(self) -> list[str]:
        return _sqlite_integrity(self.path)

    @staticmethod
    def dump_is_complete(fmt: str, tail: bytes) -> bool:
        if fmt == "sql":
            return tail.rstrip().endswith(b"COMMIT;")
        return True  # a binary copy has no trailer; the checksum and the stream end vouch for it


def _sqlite_integrity(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as error:
        return [str(error)]
    finally:
        connection.close()
    return [] if rows == ["ok"] else rows


ENGINES = {"mysql": MySQLEngine, "sqlite": SQLiteEngine}


def engine_for(alias: str = "default", vendor: str | None = None) -> Engine:
    vendor = vendor or connections[alias].vendor
    if vendor not in ENGINES:
        raise EngineError(f"backups of {vendor} databases are not supported (only MySQL/MariaDB and SQLite)")
    return ENGINES[vendor](alias)
