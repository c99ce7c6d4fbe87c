"""Pending migrations, asked one way: of the running code and its database (in process), or of a
release's `migrate --plan` output (run by that release's own Python)."""

import re

from django.db import connections
from django.db.migrations.executor import MigrationExecutor

MIGRATION_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[0-9]{4}_[A-Za-z0-9_]+$")


def pending_migrations(alias: str = "default") -> list[str]:
    """Migrations the running code has and its database has not applied, in the order migrate runs them."""
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]


def from_plan_output(output: str) -> list[str]:
    """`migrate --plan` lists each migration as "app.name" at the start of a line, operations indented."""
    return [line.strip() for line in output.splitlines() if MIGRATION_LINE.match(line)]
