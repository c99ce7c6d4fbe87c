"""What a migration asks of the update, read from its source (GitLab's regular vs post-deployment
migrations, strong_migrations' operation classes):

- online: the release before it keeps working on the new schema (a new table, a nullable column or
  one with a database default, an index, a reversible data migration) — it can run with the site up;
- contract: it removes what the release before still reads (a nullable column, a table) — it can
  run once no old code is left, after the switch, and the release after can live without it until
  then (it never inserts into a removed column that the database would require);
- blocking: anything else (a column the old code cannot insert without, a changed or renamed column
  or constraint, raw SQL) — maintenance mode, as always.

A migration may declare its kind (`update_kind = "online"` in its Migration class); the analysis may
only make it stricter: a declaration never lets a blocking operation run with the site up.

`schedule` turns the kinds of an update's pending migrations into when they run: all under
maintenance, or the online ones with the site up before the switch and the contract ones after verify.
"""

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

ONLINE, CONTRACT, BLOCKING = "online", "contract", "blocking"
ORDER = {ONLINE: 0, CONTRACT: 1, BLOCKING: 2}

STATE_ONLY = {"AlterModelOptions", "AlterModelManagers"}
ALWAYS_ONLINE = {
    "CreateModel": "creates a table the release before does not use",
    "AddIndex": "adds an index (InnoDB builds it without blocking writes)",
    "RemoveIndex": "drops an index",
}
CONTRACTING = {
    "DeleteModel": "deletes a model the release before still reads",
}
RENAMING = {
    "RenameField": "renames a column: neither release can read the other's name",
    "RenameModel": "renames a table: neither release can read the other's name",
}

# The sources of the app's migrations before the one classified (to find how a removed field was
# defined); asked for only when a migration removes a field.
Earlier = Callable[[], Iterable[str]]


def classify(source: str, earlier: Earlier | None = None) -> tuple[str, list[str]]:
    """(kind, why): the strictest kind among the migration's operations and its own declaration."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return BLOCKING, [f"unreadable: {error.msg}"]
    migration = next(
        (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "Migration"), None
    )
    if migration is None:
        return BLOCKING, ["no Migration class found"]
    calls = _operations(migration)
    created = {_model_name(call, "name") for call in calls if _name(call) == "CreateModel"}
    found = [
        (ONLINE, f"{_name(call)} on a table this migration creates")
        if _name(call) != "CreateModel" and _model_name(call, "model_name") in created - {None}
        else _operation(call, earlier)
        for call in calls
    ]
    declared = _declared(migration)
    if declared is not None:
        found.append((declared, f"declared {declared}"))
    if not found:
        return ONLINE, ["no operations"]
    kind = max((kind for kind, _ in found), key=ORDER.__getitem__)
    return kind, [why for each, why in found if each == kind]


def _operations(migration: ast.ClassDef) -> list[ast.Call]:
    for node in migration.body:
        named = isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "operations" for target in node.targets
        )
        if named and isinstance(node.value, ast.List | ast.Tuple):
            return [element for element in node.value.elts if isinstance(element, ast.Call)]
    return []


def _declared(migration: ast.ClassDef) -> str | None:
    for node in migration.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "update_kind" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and node.value.value in ORDER
        ):
            return node.value.value
    return None


def _name(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "?")


def _model_name(call: ast.Call, keyword: str) -> str | None:
    """The model an operation is about (lower case, as Django compares them)."""
    value = _argument(call, 0, keyword)
    return value.value.lower() if isinstance(value, ast.Constant) and isinstance(value.value, str) else None


def _operation(call: ast.Call, earlier: Earlier | None) -> tuple[str, str]:
    name = _name(call)
    if name in STATE_ONLY:
        return ONLINE, f"{name} changes nothing in the database"
    if name in ALWAYS_ONLINE:
        return ONLINE, f"{name} {ALWAYS_ONLINE[name]}"
    if name in CONTRACTING:
        return CONTRACT, f"{name} {CONTRACTING[name]}"
    if name in RENAMING:
        return BLOCKING, f"{name} {RENAMING[name]}"
    if name == "RemoveField":
        return _remove_field(call, earlier)
    if name == "AddField":
        return _add_field(call)
    if name == "RunPython":
        if _argument(call, 1, "reverse_code") not in (None, "None"):
            return ONLINE, "RunPython with reverse_code: a data migration that can be undone"
        return BLOCKING, "RunPython without reverse_code: it cannot be undone with the site up"
    return BLOCKING, f"{name} may rewrite or lock a table, or break the release before"


def _add_field(call: ast.Call) -> tuple[str, str]:
    optional = _optional_column(_argument(call, 2, "field"))
    if optional:
        return ONLINE, f"AddField {optional}: the release before inserts without it"
    return BLOCKING, "AddField of a NOT NULL column without db_default: the release before cannot insert rows"


def of_release(release: Path, pending: list[str]) -> dict[str, dict]:
    """Each pending migration's kind and why, read from a release's own files (a dependency's
    migration, not in the project, counts as blocking)."""
    kinds = {}
    for name in pending:
        app, _, migration = name.partition(".")
        folder = release / app / "migrations"
        source = folder / f"{migration}.py"
        if source.is_file():

            def earlier(folder: Path = folder, migration: str = migration) -> list[str]:
                return [p.read_text() for p in sorted(folder.glob("[0-9]*.py")) if p.stem < migration]

            kind, why = classify(source.read_text(), earlier)
        else:
            kind, why = BLOCKING, ["a dependency's migration, not read here"]
        kinds[name] = {"kind": kind, "why": why}
    return kinds


def _remove_field(call: ast.Call, earlier: Earlier | None) -> tuple[str, str]:
    """Contract only when the release after can insert while the column is still there: the column
    must be nullable or have a database default, as its definition in an earlier migration says."""
    model, name = _model_name(call, "model_name"), _argument(call, 1, "name")
    name = name.value.lower() if isinstance(name, ast.Constant) and isinstance(name.value, str) else None
    definition = _field_definition(earlier, model, name) if model and name and earlier else None
    optional = _optional_column(definition)
    if optional:
        return (
            CONTRACT,
            f"RemoveField {optional}: the release before still reads it, the one after does not need it",
        )
    return BLOCKING, (
        "RemoveField of a column that is not known to be nullable or to have a database default: "
        "the release after could not insert rows while it is still there"
    )


def _optional_column(field: ast.expr | str | None) -> str | None:
    """How a field's column can be left out of an INSERT (None when it cannot)."""
    if not isinstance(field, ast.Call):
        return None
    field_type = field.func.attr if isinstance(field.func, ast.Attribute) else getattr(field.func, "id", "")
    keywords = {kw.arg: kw.value for kw in field.keywords}
    if field_type == "ManyToManyField":
        return "of a many-to-many field (a table of its own)"
    if field_type == "GeneratedField":
        persisted = keywords.get("db_persist")
        # A virtual column is computed on read: adding it is instant and no INSERT ever names it. A
        # stored one is written into every row, which rebuilds the table.
        if isinstance(persisted, ast.Constant) and persisted.value is False:
            return "of a virtual generated column (computed by the database, never written)"
        return None
    null = keywords.get("null")
    if isinstance(null, ast.Constant) and null.value is True:
        return "of a nullable column"
    if "db_default" in keywords:
        return "with a database default"
    return None


def _field_definition(earlier: Earlier, model: str, name: str) -> ast.expr | None:
    """The newest definition of model.name in the earlier migrations (AddField, AlterField, or
    CreateModel's fields), or None when none is found."""
    found = None
    for source in earlier():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            operation = _name(call)
            if operation in ("AddField", "AlterField") and _model_name(call, "model_name") == model:
                named = _argument(call, 1, "name")
                if isinstance(named, ast.Constant) and str(named.value).lower() == name:
                    found = _argument(call, 2, "field")
            elif operation == "CreateModel" and _model_name(call, "name") == model:
                fields = _argument(call, 1, "fields")
                for pair in fields.elts if isinstance(fields, ast.List | ast.Tuple) else ():
                    if (
                        isinstance(pair, ast.Tuple)
                        and len(pair.elts) == 2
                        and isinstance(pair.elts[0], ast.Constant)
                        and str(pair.elts[0].value).lower() == name
                    ):
                        found = pair.elts[1]
    return found


def _argument(call: ast.Call, position: int, keyword: str):
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value if not (isinstance(kw.value, ast.Constant) and kw.value.value is None) else "None"
    if len(call.args) > position:
        value = call.args[position]
        return "None" if isinstance(value, ast.Constant) and value.value is None else value
    return None


@dataclass(frozen=True)
class Schedule:
    """When an update's pending migrations run. "online": `before_switch` with the site up, then the
    switch, then `after_switch` (contract) once verified; "maintenance": all of them under
    maintenance before the switch; "none": nothing to migrate."""

    mode: str
    before_switch: list[str] = field(default_factory=list)
    after_switch: list[str] = field(default_factory=list)
    why: str = ""


def schedule(pending: list[str], kinds: dict[str, dict], online_allowed: bool = True) -> Schedule:
    """Online only when every migration is online or contract and no online one depends on a contract
    one running first (migrate's order: online*, then contract*)."""
    if not pending:
        return Schedule("none", why="no migrations")
    everything = Schedule("maintenance", before_switch=list(pending))
    if not online_allowed:
        return replace(everything, why="UPDATER_ONLINE_MIGRATIONS is off")
    blocking = [name for name in pending if kinds[name]["kind"] == BLOCKING]
    if blocking:
        return replace(everything, why=f"{blocking[0]} is blocking: {'; '.join(kinds[blocking[0]]['why'])}")
    first_contract = next((i for i, name in enumerate(pending) if kinds[name]["kind"] == CONTRACT), None)
    before = pending if first_contract is None else pending[:first_contract]
    after = [] if first_contract is None else pending[first_contract:]
    late = [name for name in after if kinds[name]["kind"] == ONLINE]
    if late:
        return replace(
            everything,
            why=f"{late[0]} (online) comes after {after[0]} (contract), which must wait for the switch",
        )
    return Schedule(
        "online", before, after, "the release before works on every step of the new schema; the site stays up"
    )
