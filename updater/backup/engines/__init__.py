"""One backup engine per database vendor, a module each, behind one interface (base.py), after
django-dbbackup's connectors.

An engine streams a dump out (iter_dump) and loads one back (load), and answers the questions a
backup needs: server version, tables and their row counts, integrity, tables outside the snapshot.
It never writes files of its own except SQLite's temporary copies and MySQL's 0600 option file.

MySQL/MariaDB: mariadb-dump (or mysqldump) with a consistent --single-transaction snapshot that does
not block writers; the password reaches the tools through a 0600 option file, never their arguments.
SQLite: the online backup API (consistent under WAL and concurrent writers), or an SQL text dump.
"""

from django.db import connections

from updater.backup.engines.base import Engine, EngineError
from updater.backup.engines.mysql import MySQLEngine, defer_secondary_indexes
from updater.backup.engines.sqlite import SQLiteEngine

__all__ = [
    "ENGINES",
    "Engine",
    "EngineError",
    "MySQLEngine",
    "SQLiteEngine",
    "defer_secondary_indexes",
    "engine_for",
]

ENGINES = {"mysql": MySQLEngine, "sqlite": SQLiteEngine}


def engine_for(alias: str = "default", vendor: str | None = None) -> Engine:
    vendor = vendor or connections[alias].vendor
    if vendor not in ENGINES:
        raise EngineError(f"backups of {vendor} databases are not supported (only MySQL/MariaDB and SQLite)")
    return ENGINES[vendor](alias)
