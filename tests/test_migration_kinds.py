"""Each pending migration's kind — online, contract or blocking — read from its source, and why."""

import pytest

from tests.conftest import REPO_ROOT
from updater.plan.migration_kinds import BLOCKING, CONTRACT, ONLINE, classify, schedule


def migration(*operations: str, declared: str | None = None) -> str:
    body = f'    update_kind = "{declared}"\n' if declared else ""
    listed = "".join(f"        {op},\n" for op in operations)
    return (
        "from django.db import migrations, models\n\n\n"
        f"class Migration(migrations.Migration):\n{body}"
        f'    dependencies = [("crm", "0004_x")]\n    operations = [\n{listed}    ]\n'
    )


NULLABLE = 'migrations.AddField("ticket", "due", models.DateTimeField(null=True, blank=True))'
WITH_DB_DEFAULT = 'migrations.AddField("ticket", "source", models.CharField(max_length=9, db_default="web"))'
WITH_DEFAULT_ONLY = 'migrations.AddField("ticket", "source", models.CharField(max_length=9, default="web"))'
INDEX = 'migrations.AddIndex("ticket", models.Index(fields=["status"], name="ticket_status"))'
BACKFILL = "migrations.RunPython(fill, empty)"
BACKFILL_KEYWORD = "migrations.RunPython(fill, reverse_code=migrations.RunPython.noop)"
ONE_WAY = "migrations.RunPython(fill)"
DROP = 'migrations.RemoveField("ticket", "legacy")'
RENAME = 'migrations.RenameField("ticket", "title", "subject")'
ALTER = 'migrations.AlterField("ticket", "title", models.CharField(max_length=300))'
SQL = 'migrations.RunSQL("UPDATE crm_ticket SET x = 1", "")'
TABLE = 'migrations.CreateModel("Tag", [("id", models.BigAutoField(primary_key=True))])'
VIRTUAL = (
    'migrations.AddField("ticket", "rank", models.GeneratedField(db_persist=False, '
    'expression=models.F("id"), output_field=models.IntegerField()))'
)
STORED = VIRTUAL.replace("db_persist=False", "db_persist=True")


@pytest.mark.parametrize(
    ("source", "kind", "why"),
    [
        (migration(NULLABLE), ONLINE, "AddField of a nullable column"),
        (migration(WITH_DB_DEFAULT), ONLINE, "AddField with a database default"),
        (migration(WITH_DEFAULT_ONLY), BLOCKING, "NOT NULL column without db_default"),
        (migration(INDEX), ONLINE, "AddIndex adds an index"),
        (migration(VIRTUAL), ONLINE, "AddField of a virtual generated column"),
        (migration(STORED), BLOCKING, "NOT NULL column without db_default"),  # written into every row
        (migration(TABLE, INDEX), ONLINE, "CreateModel creates a table"),
        (migration(BACKFILL), ONLINE, "RunPython with reverse_code"),
        (migration(BACKFILL_KEYWORD), ONLINE, "RunPython with reverse_code"),
        (migration(ONE_WAY), BLOCKING, "RunPython without reverse_code"),
        (migration(NULLABLE, DROP), BLOCKING, "not known to be nullable"),  # how legacy was defined: unknown
        (migration(RENAME), BLOCKING, "RenameField renames a column"),
        (migration(DROP, ALTER), BLOCKING, "AlterField may rewrite or lock a table"),
        (migration(SQL), BLOCKING, "RunSQL may rewrite"),
        (migration(), ONLINE, "no operations"),
        (
            migration(
                TABLE, 'migrations.AddConstraint(model_name="tag", constraint=models.UniqueConstraint())'
            ),
            ONLINE,
            "AddConstraint on a table this migration creates",
        ),
        (
            migration(
                'migrations.AddConstraint("ticket", models.UniqueConstraint(fields=["title"], name="u"))'
            ),
            BLOCKING,
            "AddConstraint may rewrite",
        ),
        (migration(NULLABLE, declared="blocking"), BLOCKING, "declared blocking"),
        (migration(NULLABLE, declared="contract"), CONTRACT, "declared contract"),
        (migration(ALTER, declared="online"), BLOCKING, "AlterField"),  # a declaration never loosens
        (migration('migrations.DeleteModel("Tag")', declared="online"), CONTRACT, "DeleteModel"),
        (migration(NULLABLE, declared="whenever"), ONLINE, "nullable"),  # unknown words are ignored
        ("class Migration(:", BLOCKING, "unreadable"),
        ("x = 1\n", BLOCKING, "no Migration class found"),
    ],
)
def test_a_migration_is_as_strict_as_its_strictest_operation(source, kind, why):
    found, reasons = classify(source)
    assert found == kind
    assert any(why in reason for reason in reasons), reasons


def test_this_projects_own_migrations_are_classified():
    kinds = {
        path.stem: classify(path.read_text())[0]
        for path in sorted((REPO_ROOT / "crm" / "migrations").glob("0*.py"))
    }
    assert kinds["0001_initial"] == ONLINE  # new tables only
    assert kinds["0002_ticket_resolution_notes"] == BLOCKING  # a NOT NULL column with a Python default
    assert kinds["0003_fill_resolution_notes"] == ONLINE  # a reversible backfill
    assert kinds["0004_ticketattachment_original_name"] == ONLINE  # db_default: the old code still inserts
    assert kinds["0008_search_fulltext"] == BLOCKING  # InnoDB locks writes to build a first FULLTEXT index
    assert kinds["0009_list_sort_keys_and_indexes"] == ONLINE  # virtual columns and indexes


LEGACY_NULLABLE = migration('migrations.AddField("ticket", "legacy", models.TextField(null=True))')
LEGACY_DB_DEFAULT = migration('migrations.AddField("Ticket", "legacy", models.TextField(db_default=""))')
LEGACY_REQUIRED = migration('migrations.AddField("ticket", "legacy", models.TextField(default=""))')
LEGACY_IN_TABLE = migration(
    'migrations.CreateModel("Ticket", [("id", models.BigAutoField(primary_key=True)), '
    '("legacy", models.CharField(max_length=9, null=True))])'
)
LEGACY_MADE_REQUIRED = migration('migrations.AlterField("ticket", "legacy", models.TextField(default=""))')


@pytest.mark.parametrize(
    ("earlier", "kind", "why"),
    [
        ([LEGACY_NULLABLE], CONTRACT, "RemoveField of a nullable column"),
        ([LEGACY_DB_DEFAULT], CONTRACT, "RemoveField with a database default"),
        ([LEGACY_IN_TABLE], CONTRACT, "RemoveField of a nullable column"),
        ([LEGACY_REQUIRED], BLOCKING, "could not insert rows while it is still there"),
        ([LEGACY_NULLABLE, LEGACY_MADE_REQUIRED], BLOCKING, "not known to be nullable"),  # the newest wins
        ([LEGACY_REQUIRED, migration(NULLABLE)], BLOCKING, "not known to be nullable"),  # another field
        ([], BLOCKING, "not known to be nullable"),
    ],
)
def test_removing_a_column_waits_for_the_switch_only_when_the_new_release_can_insert_around_it(
    earlier, kind, why
):
    """The release after the switch no longer names the column in its INSERTs: until the contract
    migration drops it, the database must fill it by itself (NULL or its default)."""
    found, reasons = classify(migration(DROP), earlier=lambda: earlier)
    assert found == kind
    assert any(why in reason for reason in reasons), reasons


def _kinds(*pairs: tuple[str, str]) -> dict[str, dict]:
    return {name: {"kind": kind, "why": [f"{kind} because"]} for name, kind in pairs}


def test_online_and_contract_migrations_are_scheduled_around_the_switch():
    kinds = _kinds(("crm.0005_a", ONLINE), ("crm.0006_b", ONLINE), ("crm.0007_c", CONTRACT))
    plan = schedule(list(kinds), kinds)
    assert plan.mode == "online"
    assert plan.before_switch == ["crm.0005_a", "crm.0006_b"]
    assert plan.after_switch == ["crm.0007_c"]
    only_contract = _kinds(("crm.0005_a", CONTRACT))
    assert schedule(list(only_contract), only_contract).after_switch == ["crm.0005_a"]
    assert schedule([], {}).mode == "none"


@pytest.mark.parametrize(
    ("pairs", "why"),
    [
        ((("crm.0005_a", ONLINE), ("crm.0006_b", BLOCKING)), "crm.0006_b is blocking: blocking because"),
        ((("crm.0005_a", CONTRACT), ("crm.0006_b", ONLINE)), "crm.0006_b (online) comes after crm.0005_a"),
    ],
)
def test_anything_else_runs_every_migration_under_maintenance(pairs, why):
    kinds = _kinds(*pairs)
    plan = schedule(list(kinds), kinds)
    assert (plan.mode, plan.before_switch, plan.after_switch) == ("maintenance", list(kinds), [])
    assert plan.why.startswith(why)


def test_online_migrations_can_be_turned_off():
    kinds = _kinds(("crm.0005_a", ONLINE))
    plan = schedule(list(kinds), kinds, online_allowed=False)
    assert (plan.mode, plan.why) == ("maintenance", "UPDATER_ONLINE_MIGRATIONS is off")
