"""MySQL/MariaDB: mariadb-dump (or mysqldump) with a consistent --single-transaction snapshot that
does not block writers; the password reaches the tools through an option file that lives in memory
only (ClientOptions), never their arguments, environment or a disk. Restores add secondary indexes
and foreign keys after each table's rows."""

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from django.db import connections

from updater.backup.engines import mariabackup
from updater.backup.engines.base import CHUNK, Engine, EngineError, tool_environment
from updater.backup.engines.client_options import ClientOptions, remove_left_over_option_files


class MySQLEngine(Engine):
    vendor = "mysql"
    formats = ("sql",)
    physical_formats = (mariabackup.FORMAT,)

    def server_version(self) -> str:
        with connections[self.alias].cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            return str(cursor.fetchone()[0])

    @contextmanager
    def _option_file(self) -> Iterator[ClientOptions]:
        options = {
            "user": self.settings.get("USER"),
            "password": self.settings.get("PASSWORD"),
            "host": self.settings.get("HOST"),
            "port": self.settings.get("PORT"),
        }
        extra = self.settings.get("OPTIONS", {})
        if extra.get("unix_socket"):
            options["socket"] = extra["unix_socket"]
        text = "[client]\n"
        for key, value in options.items():
            if value not in (None, ""):
                escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
                text += f'{key}="{escaped}"\n'
        with ClientOptions.holding(text) as client_options:
            yield client_options

    def clear_left_overs(self) -> list[str]:
        return [
            f"removed {path}: a killed backup of an earlier release left the database password there"
            for path in remove_left_over_option_files()
        ]

    def _tool(self, *names: str) -> str:
        for name in names:
            found = shutil.which(name)
            if found:
                return found
        raise EngineError(f"none of {', '.join(names)} is installed (apt-get install mariadb-client)")

    def iter_dump(self, fmt: str = "sql") -> Iterator[bytes]:
        if fmt == mariabackup.FORMAT:
            with self._option_file() as options:
                yield from mariabackup.iter_backup(options)
            return
        dump = self._tool("mariadb-dump", "mysqldump")
        with self._option_file() as options, tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                [
                    dump,
                    f"--defaults-extra-file={options.path}",  # must come first
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
                env=tool_environment(),
                pass_fds=options.fds,
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
        """Statements other than rows go through the `mariadb` client (it knows DELIMITER blocks and
        the dump's conditional comments), one batch at a time; the rows of each table are spread over
        LOAD_CONNECTIONS connections that insert at once, with unique and foreign key checks off as the
        dump's header says, and secondary indexes added after the rows (defer_secondary_indexes)."""
        client = self._tool("mariadb", "mysql")
        with self._option_file() as options:
            loader = _ParallelLoader(
                lambda statements: self._run_client(client, options, statements), self._raw_connection
            )
            loader.load(self._drop_everything_sql().encode(), defer_secondary_indexes(chunks))
        connections[self.alias].close()

    def _run_client(self, client: str, options: ClientOptions, statements: bytes) -> None:
        with tempfile.TemporaryFile() as errors:
            result = subprocess.run(
                [
                    client,
                    f"--defaults-extra-file={options.path}",
                    "--binary-mode",
                    "--default-character-set=utf8mb4",
                    f"--database={self.database}",
                ],
                input=statements,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=tool_environment(),
                pass_fds=options.fds,
            )
            if result.returncode != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()
                raise EngineError(f"{Path(client).name} failed (exit {result.returncode}): {message}")

    def _raw_connection(self):
        """A connection of our own (not Django's, which belongs to the calling thread)."""
        wrapper = connections[self.alias]
        return wrapper.get_new_connection(wrapper.get_connection_params())

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

    def tables_outside_snapshot(self, fmt: str) -> list[str]:
        if fmt == mariabackup.FORMAT:
            return []  # mariadb-backup copies them under its BACKUP STAGE locks, consistently
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                "SELECT table_name, engine FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' AND engine <> 'InnoDB'"
            )
            return [f"{name} ({engine})" for name, engine in cursor.fetchall()]

    @staticmethod
    def dump_is_complete(fmt: str, tail: bytes) -> bool:
        if fmt == mariabackup.FORMAT:
            return mariabackup.is_complete(tail)
        lines = tail.rstrip().splitlines()
        return bool(lines) and lines[-1].startswith(b"-- Dump completed")


LOAD_CONNECTIONS = max(2, min(4, os.cpu_count() or 2))
STATEMENTS_IN_FLIGHT = 8  # ~1 MB each (mariadb-dump's --net-buffer-length): memory stays flat
_RETRIED_ERRORS = {1205, 1213}  # lock wait timeout, deadlock: the statement was rolled back whole


class _ParallelLoader:
    """Feeds one dump stream to a client (everything but rows) and to parallel connections (rows).

    Order is kept where it matters: a batch of other statements (a CREATE TABLE, an ALTER TABLE adding
    the deferred indexes, triggers, routines) runs only after every row before it is in, and rows only
    after the batch before them. Each client batch and each connection first replays the dump's
    header (character set, time zone, SQL mode, checks off). LOCK TABLES lines are dropped: a lock
    would end with the session that took it, and the rows are written by other sessions."""

    def __init__(self, run_client, connect) -> None:
        self.run_client = run_client
        self.connect = connect
        self.header: list[bytes] = []
        self.in_header = True
        self.batch: list[bytes] = []
        self.rows: queue.Queue = queue.Queue(maxsize=STATEMENTS_IN_FLIGHT)
        self.workers: list[threading.Thread] = []
        self.failure: BaseException | None = None

    def load(self, prelude: bytes, lines: Iterable[bytes]) -> None:
        self.batch.append(prelude)
        statement: list[bytes] = []  # an INSERT's lines: mariadb-dump puts each row on a line of its own
        try:
            for line in lines:
                if statement or line.startswith(b"INSERT INTO "):
                    statement.append(line)
                    if line.rstrip().endswith(b";"):  # strings in rows never hold a raw line break
                        self._flush_batch()
                        self._start_workers()
                        self._put(b"".join(statement))
                        statement = []
                elif not line.startswith((b"LOCK TABLES ", b"UNLOCK TABLES")):
                    if self.in_header:
                        if line.startswith((b"-- Table structure", b"CREATE ", b"DROP ")):
                            self.in_header = False
                        elif line.startswith(b"/*!") and b" SET " in line:
                            self.header.append(line)
                    if line.strip():
                        self._wait_for_rows()
                    self.batch.append(line)
            if statement:
                raise EngineError("the dump ends inside an INSERT statement")
            self._wait_for_rows()
            self._flush_batch()
        finally:
            self._stop_workers()

    def _flush_batch(self) -> None:
        if any(line.strip() for line in self.batch):
            self.run_client(b"".join([*self.header, *self.batch]))
        self.batch = []

    def _put(self, statement: bytes) -> None:
        while True:
            self._raise_failure()
            try:
                self.rows.put(statement, timeout=0.5)
                return
            except queue.Full:
                continue

    def _wait_for_rows(self) -> None:
        if self.workers:
            self.rows.join()
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise EngineError(f"loading rows failed: {self.failure}") from self.failure

    def _start_workers(self) -> None:
        if self.workers:
            return
        for number in range(LOAD_CONNECTIONS):
            worker = threading.Thread(target=self._insert_rows, name=f"restore-rows-{number}", daemon=True)
            worker.start()
            self.workers.append(worker)

    def _stop_workers(self) -> None:
        for _worker in self.workers:
            while True:  # a full queue with failed workers: make room for the sentinel
                try:
                    self.rows.put(None, timeout=0.5)
                    break
                except queue.Full:
                    with suppress(queue.Empty):
                        self.rows.get_nowait()
                        self.rows.task_done()
        for worker in self.workers:
            worker.join()
        self.workers = []

    def _insert_rows(self) -> None:
        connection = None
        try:
            connection = self.connect()
            connection.autocommit(True)
            cursor = connection.cursor()
            for line in self.header:
                cursor.execute(line.rstrip().rstrip(b";"))
        except Exception as error:
            self.failure = self.failure or error
        while (statement := self.rows.get()) is not None:
            try:
                if self.failure is None:
                    self._execute(cursor, statement.rstrip().rstrip(b";"))
            except Exception as error:
                self.failure = self.failure or error
            finally:
                self.rows.task_done()
        self.rows.task_done()
        if connection is not None:
            with suppress(Exception):
                connection.close()

    @staticmethod
    def _execute(cursor, statement: bytes) -> None:
        for attempt in range(3):
            try:
                cursor.execute(statement)
                return
            except Exception as error:
                code = error.args[0] if error.args else None
                if code not in _RETRIED_ERRORS or attempt == 2:
                    raise


_CREATE_TABLE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)` \($")
_ENABLE_KEYS = re.compile(rb"^/\*!40000 ALTER TABLE `((?:[^`]|``)+)` ENABLE KEYS \*/;$")
_DEFERRABLE = re.compile(rb"^  (KEY `|CONSTRAINT `(?:[^`]|``)+` FOREIGN KEY )")
# Deferred definitions are added at the latest before any of these: the next table, triggers, routines,
# and the dump's footer (which turns foreign key checks back on).
_FLUSH_BEFORE = (
    b"CREATE TABLE ",
    b"DELIMITER ",
    b"-- Dumping routines",
    b"-- Dumping events",
    b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE",
    b"-- Dump completed",
)


def defer_secondary_indexes(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Rewrite a mysqldump stream so each table's plain indexes and foreign keys are added after its
    rows are loaded, not maintained row by row while loading: InnoDB then builds them sorted, in one
    pass (about a third faster to restore). Primary, unique, full-text and check constraints stay where
    they are; the final schema is exactly the dumped one. Lines are passed through untouched otherwise.
    """
    pending: dict[bytes, list[bytes]] = {}  # table -> definitions still to add
    create: list[bytes] | None = None
    rest = b""

    def flush(table: bytes | None = None) -> Iterator[bytes]:
        for name in [table] if table is not None else list(pending):
            definitions = pending.pop(name, None)
            if definitions:
                additions = b", ".join(b"ADD " + d for d in definitions)
                yield b"ALTER TABLE `" + name + b"` " + additions + b";\n"

    def lines(data: Iterable[bytes]) -> Iterator[bytes]:
        nonlocal rest
        for chunk in data:
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for part in parts:
                yield part + b"\n"
        if rest:
            yield rest
            rest = b""

    for line in lines(chunks):
        if create is not None:
            create.append(line)
            if line.startswith(b")"):
                yield from _split_create_table(create, pending)
                create = None
            continue
        if line.startswith(b"INSERT INTO "):
            yield line
            continue
        if line.startswith(_FLUSH_BEFORE):
            yield from flush()
            if _CREATE_TABLE.match(line.rstrip(b"\n")):
                create = [line]
                continue
        yield line
        match = _ENABLE_KEYS.match(line.rstrip(b"\n"))
        if match:
            yield from flush(match.group(1))
    if create is not None:
        yield from create
    yield from flush()


def _split_create_table(block: list[bytes], pending: dict[bytes, list[bytes]]) -> Iterator[bytes]:
    name = _CREATE_TABLE.match(block[0].rstrip(b"\n")).group(1)
    body = [line.rstrip(b"\n").rstrip(b",") for line in block[1:-1]]
    keep = [line for line in body if not _DEFERRABLE.match(line)]
    deferred = [
        line.strip().replace(b"KEY `", b"INDEX `", 1) if line.startswith(b"  KEY `") else line.strip()
        for line in body
        if _DEFERRABLE.match(line)
    ]
    if deferred:
        pending[name] = deferred
    yield block[0]
    yield b",\n".join(keep) + b"\n"
    yield block[-1]
