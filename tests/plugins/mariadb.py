"""pytest plugin: `--mariadb` runs the whole suite against a MariaDB server started for the run.

It must act before pytest-django reads the settings, hence pytest_load_initial_conftests(tryfirst).
The server lives in a temporary directory and is stopped (and the directory removed) at the end.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.mariadb import MariaDBServer

_server_key = pytest.StashKey[MariaDBServer]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--mariadb",
        action="store_true",
        default=False,
        help="run against a throwaway MariaDB server instead of SQLite",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    if not early_config.known_args_namespace.mariadb:
        return
    server = MariaDBServer(Path(tempfile.mkdtemp(prefix="helpdesk-mariadb-")))
    server.start()
    early_config.stash[_server_key] = server
    os.environ["DATABASE_URL"] = server.url()


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_server_key, None)
    if server is not None:
        server.stop()
        shutil.rmtree(server.base_dir, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    server = config.stash.get(_server_key, None)
    if server is None:
        return "database: SQLite (pass --mariadb for a real MariaDB server)"
    return f"database: MariaDB on 127.0.0.1:{server.port} (throwaway, {server.base_dir})"
