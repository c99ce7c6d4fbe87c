"""Migrations, each idea defined once: which are pending (asked of the running code and its database,
or read from a release's `migrate --plan`), and which cannot be undone without losing data (read
from a migration's source by update_plan, or from its loaded operations by rollback).

The one rule for "irreversible": an operation Django cannot reverse (RunPython or RunSQL without a
reverse), or one whose reverse brings back the schema but not the data (RemoveField, DeleteModel).
"""

import ast
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


DATA_LOSS = {"RemoveField": "removes a field", "DeleteModel": "deletes a model"}
REVERSE_ARGUMENT = {"RunPython": "reverse_code", "RunSQL": "reverse_sql"}


def irreversible_reason(operation: str, reversible: bool) -> str | None:
    """Why an operation (its class name, and whether Django can reverse it) cannot be undone safely."""
    if operation in DATA_LOSS:
        return DATA_LOSS[operation]
    if not reversible:
        return f"{operation} without {REVERSE_ARGUMENT.get(operation, 'a reverse')}"
    return None


def irreversible_operations(source: str) -> list[str]:
    """The reasons for a migration's source, without importing it (a release not checked out yet)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [f"unreadable: {error.msg}"]
    reasons = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        reversible = _has_reverse(node, REVERSE_ARGUMENT[name]) if name in REVERSE_ARGUMENT else True
        reason = irreversible_reason(name, reversible)
        if reason:
            reasons.append(reason)
    return reasons


def _has_reverse(call: ast.Call, keyword: str) -> bool:
    for kw in call.keywords:
        if kw.arg == keyword:
            return not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
    return len(call.args) >= 2 and not (isinstance(call.args[1], ast.Constant) and call.args[1].value is None)
