"""What a migration asks of the update, read from its source (GitLab's regular vs post-deployment
migrations, strong_migrations' operation classes):

- online: the release before it keeps working on the new schema (a new table, a nullable column or
  one with a database default, an index, a reversible data migration) — it can run with the site up;
- contract: it removes or renames what the release before still reads — it can run once no old code
  is left, after the switch;
- blocking: anything else (a column the old code cannot insert without, a changed column or
  constraint, raw SQL) — maintenance mode, as always.

A migration may declare its kind (`update_kind = "online"` in its Migration class); the analysis may
only make it stricter: a declaration never lets a blocking operation run with the site up.
"""

import ast

ONLINE, CONTRACT, BLOCKING = "online", "contract", "blocking"
ORDER = {ONLINE: 0, CONTRACT: 1, BLOCKING: 2}

STATE_ONLY = {"AlterModelOptions", "AlterModelManagers"}
ALWAYS_ONLINE = {
    "CreateModel": "creates a table the release before does not use",
    "AddIndex": "adds an index (InnoDB builds it without blocking writes)",
    "RemoveIndex": "drops an index",
}
CONTRACTING = {
    "RemoveField": "removes a field the release before still reads",
    "DeleteModel": "deletes a model the release before still reads",
    "RenameField": "renames a field the release before reads under its old name",
    "RenameModel": "renames a model the release before reads under its old name",
}


def classify(source: str) -> tuple[str, list[str]]:
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
        else _operation(call)
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


def _operation(call: ast.Call) -> tuple[str, str]:
    name = _name(call)
    if name in STATE_ONLY:
        return ONLINE, f"{name} changes nothing in the database"
    if name in ALWAYS_ONLINE:
        return ONLINE, f"{name} {ALWAYS_ONLINE[name]}"
    if name in CONTRACTING:
        return CONTRACT, f"{name} {CONTRACTING[name]}"
    if name == "AddField":
        return _add_field(call)
    if name == "RunPython":
        if _argument(call, 1, "reverse_code") not in (None, "None"):
            return ONLINE, "RunPython with reverse_code: a data migration that can be undone"
        return BLOCKING, "RunPython without reverse_code: it cannot be undone with the site up"
    return BLOCKING, f"{name} may rewrite or lock a table, or break the release before"


def _add_field(call: ast.Call) -> tuple[str, str]:
    field = _argument(call, 2, "field")
    if isinstance(field, ast.Call):
        field_type = (
            field.func.attr if isinstance(field.func, ast.Attribute) else getattr(field.func, "id", "")
        )
        keywords = {kw.arg: kw.value for kw in field.keywords}
        if field_type == "ManyToManyField":
            return ONLINE, "AddField of a many-to-many field creates a table the release before does not use"
        null = keywords.get("null")
        if isinstance(null, ast.Constant) and null.value is True:
            return ONLINE, "AddField of a nullable column: the release before inserts without it"
        if "db_default" in keywords:
            return ONLINE, "AddField with a database default: the release before inserts without it"
    return BLOCKING, "AddField of a NOT NULL column without db_default: the release before cannot insert rows"


def _argument(call: ast.Call, position: int, keyword: str):
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value if not (isinstance(kw.value, ast.Constant) and kw.value.value is None) else "None"
    if len(call.args) > position:
        value = call.args[position]
        return "None" if isinstance(value, ast.Constant) and value.value is None else value
    return None
