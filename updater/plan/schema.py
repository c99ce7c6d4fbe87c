"""The live database's schema as a set of names (tables, columns, indexes, foreign keys), to undo an
online migration exactly.

Migrating back reverses the migrations Django recorded as applied; a migration that failed half-way
on MariaDB, whose DDL is not transactional, is not recorded and leaves what it had added (a column
from its first operation, say). Online migrations only add, so whatever the live schema has that it
did not have before they ran is theirs: it is dropped, foreign keys first, tables last.
"""

from django.db import connection

Snapshot = dict[
    str, dict[str, list[str]]
]  # table -> {"columns": [...], "indexes": [...], "foreign_keys": [...]}


def snapshot() -> Snapshot:
    with connection.cursor() as cursor:
        introspection = connection.introspection
        tables = {}
        for table in introspection.table_names(cursor):
            constraints = introspection.get_constraints(cursor, table)
            tables[table] = {
                "columns": sorted(c.name for c in introspection.get_table_description(cursor, table)),
                "indexes": sorted(n for n, c in constraints.items() if c["index"] and not c["primary_key"]),
                "foreign_keys": sorted(n for n, c in constraints.items() if c["foreign_key"]),
            }
    return tables


def added_since(before: Snapshot, now: Snapshot) -> list[tuple[str, str, str]]:
    """(kind, table, name) of what `now` has and `before` had not, in the order they can be dropped."""
    found = []
    for kind in ("foreign_keys", "indexes", "columns"):
        for table, parts in sorted(now.items()):
            if table in before:
                found += [(kind, table, name) for name in parts[kind] if name not in before[table][kind]]
    found += [("table", table, table) for table in sorted(set(now) - set(before))]
    return found


def drop(added: list[tuple[str, str, str]]) -> None:
    quote = connection.ops.quote_name
    mysql = connection.vendor == "mysql"
    with connection.cursor() as cursor:
        for kind, table, name in added:
            if kind == "foreign_keys":
                if mysql:  # SQLite's foreign keys are part of their column and go with it
                    cursor.execute(f"ALTER TABLE {quote(table)} DROP FOREIGN KEY {quote(name)}")
            elif kind == "indexes":
                if mysql:
                    cursor.execute(f"ALTER TABLE {quote(table)} DROP INDEX {quote(name)}")
                else:
                    cursor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
            elif kind == "columns":
                cursor.execute(f"ALTER TABLE {quote(table)} DROP COLUMN {quote(name)}")
            else:
                cursor.execute(f"DROP TABLE {quote(table)}")


def describe(added: list[tuple[str, str, str]]) -> list[str]:
    """["column crm_ticket.reference", "table crm_tag", ...] for the journal and the report."""
    words = {"foreign_keys": "foreign key", "indexes": "index", "columns": "column", "table": "table"}
    return [f"{words[kind]} {table}" + (f".{name}" if kind != "table" else "") for kind, table, name in added]
