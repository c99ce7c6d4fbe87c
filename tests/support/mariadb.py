"""A throwaway MariaDB server for tests and benchmarks: its own data directory, socket and port.

The server is tuned for speed over durability (no binary log, lazy flushing): it holds nothing that
must survive a crash. It listens on 127.0.0.1 only.
"""

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import MySQLdb

from tests.support.processes import free_port


class MariaDBError(RuntimeError):
    pass


def _find(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if found:
            return found
    raise MariaDBError(f"none of {', '.join(names)} is installed (apt-get install mariadb-server)")


class MariaDBServer:
    """Start with start(), connect with url(), stop with stop(); or use it as a context manager."""

    user = "helpdesk"

    def __init__(self, base_dir: Path, buffer_pool: str = "256M") -> None:
        """buffer_pool: InnoDB's cache; benchmarks of large tables give it what such a server would."""
        self.base_dir = Path(base_dir)
        self.buffer_pool = buffer_pool
        self.datadir = self.base_dir / "data"
        self.socket = self.base_dir / "mariadb.sock"
        self.error_log = self.base_dir / "error.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "MariaDBServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """The running server's process id (benchmarks read its CPU time)."""
        return self._process.pid

    def url(self, database: str = "helpdesk") -> str:
        return f"mysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60, *, install: bool = True) -> None:
        """install=False: start on a data directory that already holds a server's files (one prepared
        from a physical backup), its users as they are."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        os_user = ["--user=root"] if os.geteuid() == 0 else []
        if install:
            self._install(os_user, timeout)
        self._process = subprocess.Popen(
            [
                _find("mariadbd", "mysqld"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.base_dir / 'mariadb.pid'}",
                f"--log-error={self.error_log}",
                "--skip-name-resolve",
                "--skip-log-bin",
                f"--innodb-buffer-pool-size={self.buffer_pool}",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                *os_user,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_ready(timeout)
        if install:
            self._create_user()

    def _install(self, os_user: list[str], timeout: float) -> None:
        install = subprocess.run(
            [
                _find("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                *os_user,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if install.returncode != 0:
            raise MariaDBError(f"mariadb-install-db failed: {install.stderr or install.stdout}")

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MariaDBError(f"mariadbd exited with {self._process.returncode}: {self._log_tail()}")
            try:
                MySQLdb.connect(unix_socket=str(self.socket), user="root").close()
                return
            except MySQLdb.OperationalError:
                time.sleep(0.2)
        self.stop()
        raise MariaDBError(f"mariadbd did not accept connections within {timeout}s: {self._log_tail()}")

    def _create_user(self) -> None:
        connection = self.root_connection()
        try:
            cursor = connection.cursor()
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(f"CREATE USER '{self.user}'@'{host}' IDENTIFIED BY %s", (self.password,))
                # Global privileges: the test runner creates and drops its own test_* databases.
                cursor.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'{host}' WITH GRANT OPTION")
        finally:
            connection.close()
        self.create_database("helpdesk")

    def create_database(self, name: str) -> None:
        connection = self.root_connection()
        try:
            connection.cursor().execute(
                f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        finally:
            connection.close()

    def root_connection(self) -> "MySQLdb.Connection":
        return MySQLdb.connect(unix_socket=str(self.socket), user="root")

    def _log_tail(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no error log)"

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
