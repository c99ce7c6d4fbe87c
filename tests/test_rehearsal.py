"""Rehearsal: `update` migrates a scratch copy of the live database with the target release's code
before anything live changes. A migration that fails only on the data this site holds is refused
there (exit 2): no maintenance, no backup, no row changed, the copy gone, the release marked bad.
`update_plan --rehearse` measures the migrations and the plan's estimate says where it came from."""

import json
import re
from pathlib import Path

import pytest
from django.db import connection

from tests.support.deployments import clone_project, git, newest_migration, next_migration
from tests.test_update import (  # noqa: F401  (module-scoped fixtures shared with the update tests)
    FIELD,
    MIGRATION_V2,
    PHONE,
    _commit_tag,
    _deploy,
    first_venv,
    last_journal,
    run_manage,
    schema_and_rows,
    update,
    wheelhouse,
)

pytestmark = pytest.mark.slow

UNIQUE = next_migration("unique_ticket_title")
UNIQUE_MIGRATION = f'''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "{newest_migration()}")]
    operations = [
        migrations.AddConstraint(
            "ticket",
            models.UniqueConstraint(fields=["organization", "title"], name="crm_ticket_unique_title"),
        ),
    ]
'''
DUPLICATE_TITLE = """
from crm.models import Ticket
first = Ticket.objects.order_by("pk").first()
Ticket.objects.create(
    title=first.title, description="again", organization=first.organization, created_by=first.created_by
)
"""


@pytest.fixture(scope="module")
def tagged_repo(tmp_path_factory) -> Path:
    """v1.0.0 is this project; v10.0.0 makes ticket titles unique within an organization (fine on an
    empty database, not on one holding two tickets of one title); v11.0.0 adds a field; v12.0.0 is
    v11.0.0 with settings that ignore DATABASE_NAME (a rehearsal would migrate the live database)."""
    repo = clone_project(tmp_path_factory.mktemp("rehearsal") / "helpdesk")
    git("tag", "v1.0.0", cwd=repo)
    migrations = repo / "crm" / "migrations"
    (migrations / f"{UNIQUE}.py").write_text(UNIQUE_MIGRATION)
    _commit_tag(repo, "v10.0.0", "feat: one title per ticket in an organization")
    git("checkout", "-q", "-b", "phone", "v1.0.0", cwd=repo)
    models_py = repo / "crm" / "models.py"
    email_line = '    email = models.EmailField(_("email"), blank=True)\n'
    models_py.write_text(models_py.read_text().replace(email_line, email_line + FIELD, 1))
    (migrations / f"{PHONE}.py").write_text(MIGRATION_V2)
    _commit_tag(repo, "v11.0.0", "feat: organizations get a phone number")
    settings_py = repo / "helpdesk" / "settings.py"
    honoured = (
        'if config("DATABASE_NAME", default=""):\n'
        '    DATABASES["default"]["NAME"] = config("DATABASE_NAME")\n'
    )
    assert honoured in settings_py.read_text()
    settings_py.write_text(settings_py.read_text().replace(honoured, ""))
    _commit_tag(repo, "v12.0.0", "refactor: settings that know nothing of DATABASE_NAME")
    return repo


@pytest.fixture
def deployed(tagged_repo, wheelhouse, first_venv, tmp_path, django_db_blocker):  # noqa: F811
    return _deploy(tagged_repo, wheelhouse, first_venv, tmp_path, django_db_blocker)


def _scratch_copies(root: Path, django_db_blocker) -> list[str]:
    env = (root / "shared" / ".env").read_text()
    url = re.search(r"^DATABASE_URL=(.+)$", env, re.M).group(1)
    if url.startswith("sqlite:///"):
        return [p.name for p in Path(url.removeprefix("sqlite:///")).parent.glob("*_rehearsal*")]
    name = url.rsplit("/", 1)[1]
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE %s", [f"{name}_rehearsal"])
        return [row[0] for row in cursor.fetchall()]


def _backups(root: Path) -> list[str]:
    folder = root / "shared" / "backups"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_migration_that_fails_on_this_sites_data_is_refused_in_rehearsal(deployed, django_db_blocker):
    run_manage(deployed / "current", "shell", "--no-imports", "-c", DUPLICATE_TITLE, check=True)
    before, backups = schema_and_rows(deployed), _backups(deployed)
    result = update(deployed, "--version", "v10.0.0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"migration crm.{UNIQUE} failed when rehearsed on a copy of the live database" in result.stderr
    assert "IntegrityError" in result.stderr or "UNIQUE constraint failed" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before  # not a row, not a column changed
    assert _backups(deployed) == backups  # no backup taken, none pinned
    assert _scratch_copies(deployed, django_db_blocker) == []
    journal = last_journal(deployed)
    assert [(s["name"], s["status"]) for s in journal["steps"]] == [
        ("prepare", "done"),
        ("rehearse", "failed"),
    ]
    assert journal["status"] == "failed"  # never in maintenance: nothing live to roll back
    assert (deployed / "releases" / "v10.0.0" / ".helpdesk-bad").exists()
    again = update(deployed, "--version", "v10.0.0")
    assert again.returncode == 2 and "marked bad" in again.stderr


def test_update_plan_rehearses_and_the_estimate_says_so(deployed, django_db_blocker):
    result = run_manage(deployed / "current", "update_plan", "--version", "v11.0.0", "--rehearse")
    assert result.returncode == 0, result.stderr
    estimate = re.search(r"Estimated downtime: \d+ s \((.+?)\);", result.stdout)
    copy = r"rehearsed \d{4}-\d\d-\d\d on a copy of [\d.]+ (KB|MB)"
    assert estimate and re.fullmatch(copy + " from the live database", estimate[1])  # no backup yet
    measured = json.loads((deployed / "shared" / "rehearsals" / "v11.0.0.json").read_text())
    assert list(measured["migrations"]) == [f"crm.{PHONE}"] and measured["current"] == "v1.0.0"
    assert (deployed / "current").resolve().name == "v1.0.0"  # nothing live changed
    assert _scratch_copies(deployed, django_db_blocker) == []
    as_json = run_manage(deployed / "current", "update_plan", "--version", "v11.0.0", "--format", "json")
    assert json.loads(as_json.stdout)["estimate_source"] == estimate[1]

    run_manage(deployed / "current", "backup_database", check=True)  # a recent backup: the copy's source
    again = run_manage(deployed / "current", "update_plan", "--version", "v11.0.0", "--rehearse")
    estimate = re.search(r"Estimated downtime: \d+ s \((.+?)\);", again.stdout)
    assert estimate and re.fullmatch(copy + r" from backup \S+, taken \S+", estimate[1]), again.stdout

    updated = update(deployed, "--version", "v11.0.0")
    assert updated.returncode == 0, updated.stderr
    journal = last_journal(deployed)
    assert [s["name"] for s in journal["steps"]][:3] == ["prepare", "rehearse", "maintenance"]
    assert list(journal["facts"]["rehearsal"]["migrations"]) == [f"crm.{PHONE}"]
    assert _scratch_copies(deployed, django_db_blocker) == []


def test_without_rehearsals_the_plan_says_its_estimate_is_a_guess(deployed):
    env = deployed / "shared" / ".env"
    env.write_text(env.read_text() + "UPDATER_REHEARSE=False\n")
    result = run_manage(deployed / "current", "update_plan", "--version", "v11.0.0")
    assert "(not rehearsed; a default guess (UPDATER_REHEARSE is off))" in result.stdout
    updated = update(deployed, "--version", "v11.0.0")
    assert updated.returncode == 0, updated.stderr
    assert "rehearse" not in [s["name"] for s in last_journal(deployed)["steps"]]


def test_a_release_that_cannot_be_pointed_at_the_copy_is_not_rehearsed_on_the_live_database(deployed):
    before = schema_and_rows(deployed)
    result = update(deployed, "--version", "v12.0.0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "does not honour DATABASE_NAME: refusing to migrate anything" in result.stderr
    assert schema_and_rows(deployed) == before  # the live database was not migrated by the rehearsal
    assert (deployed / "current").resolve().name == "v1.0.0"
