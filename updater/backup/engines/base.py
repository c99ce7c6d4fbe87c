"""The interface every backup engine implements, and what the tools share (their environment)."""

import os
from collections.abc import Iterable, Iterator

from django.db import connections

CHUNK = 512 * 1024  # small enough that a few in flight keep memory flat
# The tools get the password from the option file only; the environment may carry it (DATABASE_URL).
_SECRET_VARIABLES = ("DATABASE_URL", "SECRET_KEY", "EMAIL_HOST_PASSWORD", "MYSQL_PWD")


def tool_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in _SECRET_VARIABLES}


class EngineError(Exception):
    """The database tool failed; the message carries its own words."""


class Engine:
    vendor: str = ""
    formats: tuple[str, ...] = ()  # dumps this engine loads back into a live database
    # Copies of the server's files, restored by the database's own tool into a stopped server (never
    # loaded by restore, rehearsal or refresh).
    physical_formats: tuple[str, ...] = ()

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self.settings = connections[alias].settings_dict

    @classmethod
    def all_formats(cls) -> tuple[str, ...]:
        return cls.formats + cls.physical_formats

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

    def clear_left_overs(self) -> list[str]:
        """Remove what killed runs of earlier releases left outside the backup directory; say what."""
        return []

    def tables_outside_snapshot(self, fmt: str) -> list[str]:
        return []

    @staticmethod
    def dump_is_complete(fmt: str, tail: bytes) -> bool:
        raise NotImplementedError
