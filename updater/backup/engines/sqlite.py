"""SQLite: the online backup API (consistent under WAL and concurrent writers), or an SQL text dump."""

import codecs
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path

from django.db import connections

from updater.backup.engines.base import CHUNK, Engine, EngineError


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
                _execute_streamed(staging, chunks)
            else:
                with staging.open("wb") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
            problems = _sqlite_integrity(staging)
            if problems:
                raise EngineError(f"the restored copy fails its integrity check: {'; '.join(problems)}")
            # Copy the checked copy into the live file through SQLite itself (the backup API), not by
            # renaming a new file over it: every connection open on the file — another thread, another
            # process such as an app server's — then reads the restored database, never a deleted one.
            connections[self.alias].close()
            source, live = sqlite3.connect(staging), sqlite3.connect(target, timeout=30)
            try:
                source.backup(live)
            finally:
                source.close()
                live.close()
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


def _execute_streamed(database: Path, chunks: Iterable[bytes]) -> None:
    """Run an SQL dump statement by statement as it arrives: memory holds one statement, not the dump."""
    connection = sqlite3.connect(database, isolation_level=None)  # the dump's own BEGIN/COMMIT rule
    decoder = codecs.getincrementaldecoder("utf-8")()
    statement = ""
    try:
        for chunk in chunks:
            text = statement + decoder.decode(chunk)
            statement = ""
            for line in text.splitlines(keepends=True):
                statement += line
                if line.endswith("\n") and sqlite3.complete_statement(statement):
                    connection.execute(statement)
                    statement = ""
        statement += decoder.decode(b"", final=True)
        if statement.strip():
            connection.executescript(statement)
    finally:
        connection.close()


def _sqlite_integrity(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as error:
        return [str(error)]
    finally:
        connection.close()
    return [] if rows == ["ok"] else rows
