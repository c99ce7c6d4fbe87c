"""`update --version` end to end: real tagged repositories of this project, a real deployment root,
the real database of the run (a fresh SQLite file or a fresh MariaDB database), real venvs.

Tags: v1.0.0 is this project; v2.0.0 adds a field with a migration; v3.0.0 adds a migration that
fails half-way; v4.0.0 has a slow migration; v5.0.0 breaks the ticket list (its smoke check fails
after the switch); v8.0.0 is v2.0.0 plus a change without migrations; v9.0.0 adds the field of v2.0.0
with a data migration that cannot be reversed. v10.0.0 adds a nullable ticket field and an index
(online); v11.0.0, after it, adds another nullable field (online) and removes v10.0.0's (contract);
v12.0.0 has an online migration that fails after its first operation.
"""

import json
import os
import re
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from django.db import connection

from tests.support import reports
from tests.support.deployments import (
    REPO_ROOT,
    clone_project,
    git,
    newest_migration,
    next_migration,
    serve_current,
    wheelhouse_for,
)
from tests.support.mailbox import Mailbox
from tests.support.processes import free_port, wait_until_serving
from tests.support.webhooks import Webhook
from updater import layout
from updater.plan import auto
from updater.release import venvs
from updater.run import locks

pytestmark = pytest.mark.slow

NEWEST = newest_migration()  # of this checkout: v1.0.0's last
PHONE = next_migration("organization_phone")  # v2.0.0's and v9.0.0's
BROKEN = next_migration("broken", after=2)
SLOW = next_migration("slow", after=2)
FIELD = '    phone = models.CharField(max_length=40, blank=True, default="")\n'
MIGRATION_V2 = f"""from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "{NEWEST}")]
    operations = [
        migrations.AddField(
            "organization", "phone", models.CharField(blank=True, default="", max_length=40)
        ),
    ]
"""
MIGRATION_V3 = f"""from django.db import migrations, models


def fail(apps, schema_editor):
    raise RuntimeError("this migration fails half-way on purpose")


class Migration(migrations.Migration):
    dependencies = [("crm", "{PHONE}")]
    operations = [
        migrations.AddField("organization", "fax", models.CharField(blank=True, default="", max_length=40)),
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
"""


MIGRATION_IRREVERSIBLE = f"""from django.db import migrations, models


def fill(apps, schema_editor):
    apps.get_model("crm", "Organization").objects.update(phone="unknown")


class Migration(migrations.Migration):
    dependencies = [("crm", "{NEWEST}")]
    operations = [
        migrations.AddField(
            "organization", "phone", models.CharField(blank=True, default="", max_length=40)
        ),
        migrations.RunPython(fill),  # no reverse: this release cannot be migrated back
    ]
"""

MIGRATION_SLOW = f"""import time

from django.db import migrations, models


def wait(apps, schema_editor):
    time.sleep(300)  # long enough to be killed in the middle


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("crm", "{PHONE}")]
    operations = [
        migrations.AddField("organization", "fax", models.CharField(blank=True, default="", max_length=40)),
        migrations.RunPython(wait, migrations.RunPython.noop),
    ]
"""


REFERENCE = next_migration("ticket_reference")  # v10.0.0's
CHANNEL = next_migration("ticket_channel", after=2)  # v11.0.0's online migration
DROP_REFERENCE = next_migration("remove_ticket_reference", after=3)  # v11.0.0's contract migration
RESOLUTION_LINE = '    resolution_notes = models.TextField(_("resolution notes"), blank=True, default="")\n'
REFERENCE_FIELD = "    reference = models.CharField(max_length=40, null=True, blank=True)\n"
CHANNEL_FIELD = "    channel = models.CharField(max_length=20, null=True, blank=True)\n"
TICKET_INDEXES = "        indexes = [\n"
REFERENCE_INDEX = '            models.Index(fields=["reference"], name="crm_ticket_reference_idx"),\n'
MIGRATION_REFERENCE = f"""from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "{NEWEST}")]
    operations = [
        migrations.AddField("ticket", "reference", models.CharField(blank=True, max_length=40, null=True)),
        migrations.AddIndex("ticket", models.Index(fields=["reference"], name="crm_ticket_reference_idx")),
    ]
"""
MIGRATION_CHANNEL = f"""from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "{REFERENCE}")]
    operations = [
        migrations.AddField("ticket", "channel", models.CharField(blank=True, max_length=20, null=True)),
    ]
"""
MIGRATION_DROP_REFERENCE = f"""from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("crm", "{CHANNEL}")]
    operations = [
        migrations.RemoveIndex("ticket", "crm_ticket_reference_idx"),
        migrations.RemoveField("ticket", "reference"),
    ]
"""

MIGRATION_HALF_WAY = f"""from django.db import migrations, models


def fail(apps, schema_editor):
    raise RuntimeError("this online migration fails after adding its column")


class Migration(migrations.Migration):
    dependencies = [("crm", "{NEWEST}")]
    operations = [
        migrations.AddField("ticket", "reference", models.CharField(blank=True, max_length=40, null=True)),
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
"""


# Every step of an update whose migrations run with the site up (online, then contract), in order.
ONLINE_UPDATE_STEPS = (
    "prepare",
    "rehearse",
    "backup",
    "migrate online",
    "switch",
    "verify",
    "maintenance off",
    "contract",
    "finish",
)


# Every step of an update with a migration, in order (the fault matrix kills it at each of them).
UPDATE_STEPS = (
    "prepare",
    "rehearse",
    "maintenance",
    "backup",
    "migrate",
    "switch",
    "verify",
    "maintenance off",
    "finish",
)


def _commit_tag(repo: Path, tag: str, message: str) -> None:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    git("tag", tag, cwd=repo)


@pytest.fixture(scope="module")
def tagged_repo(tmp_path_factory) -> Path:
    repo = clone_project(tmp_path_factory.mktemp("tagged") / "helpdesk")
    git("tag", "v1.0.0", cwd=repo)
    models_py = repo / "crm" / "models.py"
    source = models_py.read_text()
    email_line = '    email = models.EmailField(_("email"), blank=True)\n'
    models_py.write_text(source.replace(email_line, email_line + FIELD, 1))
    (repo / "crm" / "migrations" / f"{PHONE}.py").write_text(MIGRATION_V2)
    _commit_tag(repo, "v2.0.0", "feat: organizations get a phone number")
    (repo / "crm" / "migrations" / f"{BROKEN}.py").write_text(MIGRATION_V3)
    _commit_tag(repo, "v3.0.0", "fix: a migration that fails")
    git("checkout", "-q", "v2.0.0", cwd=repo)
    git("checkout", "-q", "-b", "slow", cwd=repo)
    (repo / "crm" / "migrations" / f"{SLOW}.py").write_text(MIGRATION_SLOW)
    _commit_tag(repo, "v4.0.0", "feat: a migration that takes its time")
    git("checkout", "-q", "v1.0.0", cwd=repo)
    git("checkout", "-q", "-b", "broken-list", cwd=repo)
    views = repo / "crm" / "views.py"
    first_line = "    user = request.user\n    filters = ticket_filters.parse(request.GET, user)"
    views.write_text(
        views.read_text().replace(first_line, "    raise RuntimeError('broken list')\n" + first_line)
    )
    _commit_tag(repo, "v5.0.0", "feat: a release whose ticket list is broken")
    git("checkout", "-q", "-b", "patch", "v2.0.0", cwd=repo)
    css = repo / "crm" / "static" / "crm" / "helpdesk.css"
    css.write_text(css.read_text() + "\n/* v8.0.0 */\n")
    _commit_tag(repo, "v8.0.0", "fix: a patch release without migrations")
    git("checkout", "-q", "-b", "irreversible", "v1.0.0", cwd=repo)
    models_py.write_text(source.replace(email_line, email_line + FIELD, 1))
    (repo / "crm" / "migrations" / f"{PHONE}.py").write_text(MIGRATION_IRREVERSIBLE)
    _commit_tag(repo, "v9.0.0", "feat: phone numbers, filled in once")
    git("checkout", "-q", "-b", "online", "v1.0.0", cwd=repo)
    with_reference = source.replace(RESOLUTION_LINE, RESOLUTION_LINE + REFERENCE_FIELD, 1)
    models_py.write_text(with_reference.replace(TICKET_INDEXES, TICKET_INDEXES + REFERENCE_INDEX, 1))
    (repo / "crm" / "migrations" / f"{REFERENCE}.py").write_text(MIGRATION_REFERENCE)
    _commit_tag(repo, "v10.0.0", "feat: tickets get an optional reference")
    models_py.write_text(source.replace(RESOLUTION_LINE, RESOLUTION_LINE + CHANNEL_FIELD, 1))
    (repo / "crm" / "migrations" / f"{CHANNEL}.py").write_text(MIGRATION_CHANNEL)
    (repo / "crm" / "migrations" / f"{DROP_REFERENCE}.py").write_text(MIGRATION_DROP_REFERENCE)
    _commit_tag(repo, "v11.0.0", "feat: tickets get a channel; their reference goes")
    git("checkout", "-q", "-b", "online-half-way", "v1.0.0", cwd=repo)
    models_py.write_text(source.replace(RESOLUTION_LINE, RESOLUTION_LINE + REFERENCE_FIELD, 1))
    (repo / "crm" / "migrations" / f"{REFERENCE}.py").write_text(MIGRATION_HALF_WAY)
    _commit_tag(repo, "v12.0.0", "feat: an online migration that fails half-way")
    git("checkout", "-q", "main" if "main" in git("branch", cwd=repo) else "master", cwd=repo)
    return repo


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    return wheelhouse_for(REPO_ROOT / "requirements.txt")


def _database_url(tmp_path: Path) -> str:
    if connection.vendor == "mysql":
        name = f"deploy_{uuid.uuid4().hex[:10]}"
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        db = connection.settings_dict
        return f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{name}"
    return f"sqlite:///{tmp_path / 'shared-db.sqlite3'}"


@pytest.fixture(scope="module")
def first_venv(wheelhouse, tmp_path_factory) -> venvs.Venv:
    """v1.0.0's virtualenv, built once for the module: each deployment links it into shared/venvs/
    where the updater finds it complete and reuses it, as it would a venv of an earlier release."""
    return venvs.ensure_venv(
        tmp_path_factory.mktemp("venvs"), REPO_ROOT / "requirements.txt", wheelhouse=wheelhouse
    )


@pytest.fixture
def deployed(tagged_repo, wheelhouse, first_venv, tmp_path, django_db_blocker):
    """A deployment root at v1.0.0 with demo data."""
    return _deploy(tagged_repo, wheelhouse, first_venv, tmp_path, django_db_blocker)


def _deploy(
    repo: Path, wheelhouse: Path, first_venv: venvs.Venv, tmp_path: Path, django_db_blocker, tickets: int = 40
) -> Path:
    with django_db_blocker.unblock():
        url = _database_url(tmp_path)
    root = tmp_path / "srv"
    (root / "shared" / "venvs").mkdir(parents=True)
    (root / "shared" / "venvs" / first_venv.key).symlink_to(first_venv.path)
    env_file = tmp_path / "shared.env"
    env_file.write_text(
        "ENVIRONMENT=staging\nSECRET_KEY=" + "s" * 60 + "\nALLOWED_HOSTS=localhost,127.0.0.1\n"
        f"DATABASE_URL={url}\nUPDATER_MIN_FREE_BYTES=1000000\nUPDATER_WHEELHOUSE={wheelhouse}\n"
        "UPDATE_WINDOW_IMPORTANT=always\nUPDATE_WINDOW_ROUTINE=always\n"  # windows are tested on their own
    )
    init = ["init_deployment", "--root", str(root), "--repo", str(repo), "--version", "v1.0.0"]
    run_manage(REPO_ROOT, *init, "--env-file", str(env_file), "--wheelhouse", str(wheelhouse), check=True)
    run_manage(root / "current", "seed_demo", "--tickets", str(tickets), "--orgs", "3", check=True)
    return root


def run_manage(where: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    """manage.py in a release, with that release's Python (or the test venv's for REPO_ROOT)."""
    python = where / ".venv" / "bin" / "python"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    if where != REPO_ROOT:
        env["ENV_FILE"] = str(where.resolve().parent.parent / "shared" / ".env")
    result = subprocess.run(
        [str(python), "manage.py", *args], cwd=where, env=env, capture_output=True, text=True, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


SCHEMA_AND_ROWS = (
    "from django.db import connection; import hashlib, json\n"
    "with connection.cursor() as c:\n"
    "    tables = sorted(connection.introspection.table_names(c))\n"
    "    out = {}\n"
    "    for t in tables:\n"
    "        cols = sorted(col.name for col in connection.introspection.get_table_description(c, t))\n"
    "        c.execute('SELECT * FROM ' + connection.ops.quote_name(t))\n"
    "        rows = sorted(repr(row) for row in c.fetchall())\n"
    "        out[t] = [cols, len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()]\n"
    "print(json.dumps(out))\n"
)


def schema_and_rows(root: Path) -> dict:
    """Per table: its columns, its row count and a checksum of its contents (rows in a stable order)."""
    result = run_manage(root / "current", "shell", "--no-imports", "-c", SCHEMA_AND_ROWS, check=True)
    return json.loads(result.stdout)


def update(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_manage(root / "current", "update", *args)


def start_update(root: Path, tag: str) -> subprocess.Popen:
    """An update in the background, in its own process group so that it can be killed whole."""
    python = root / "current" / ".venv" / "bin" / "python"
    env = {"PATH": os.environ["PATH"], "ENV_FILE": str(root / "shared" / ".env")}
    return subprocess.Popen(
        [str(python), "manage.py", "update", "--version", tag],
        cwd=root / "current",
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def last_journal(root: Path) -> dict:
    return json.loads(sorted((root / "shared" / "updates").glob("*.json"))[-1].read_text())


def test_update_with_a_migration_serves_the_new_release_and_keeps_the_data(deployed):
    before = schema_and_rows(deployed)
    result = update(deployed, "--version", "v2.0.0", "--verbosity", "2")
    assert result.returncode == 0, result.stderr
    assert f"Updated v1.0.0 -> v2.0.0 (migrations: crm.{PHONE}" in result.stdout
    assert re.search(r"update: migrate done in \d+\.\d s", result.stdout)  # each step as it runs
    assert (deployed / "current").resolve().name == "v2.0.0"
    assert (deployed / "previous").resolve().name == "v1.0.0"
    after = schema_and_rows(deployed)
    assert "phone" in after["crm_organization"][0]
    for table in ("crm_ticket", "crm_organization", "crm_ticketcomment", "crm_activitylog", "auth_user"):
        assert after[table][1] == before[table][1], table
    journal = last_journal(deployed)
    assert journal["status"] == "succeeded"
    assert tuple(step["name"] for step in journal["steps"]) == UPDATE_STEPS
    assert not (deployed / "shared" / "maintenance").exists()
    backup = Path(journal["facts"]["backup"])
    assert backup.exists() and not Path(str(backup) + ".pin").exists()
    assert "s" * 60 not in json.dumps(journal)  # no secret in the journal


def without_rehearsal(root: Path) -> None:
    """For the tests of a migration failing on the live database itself (as it still may when the
    data changes between the rehearsal and the update): a rehearsal would refuse it first."""
    with (root / "shared" / ".env").open("a") as env_file:
        env_file.write("UPDATER_REHEARSE=False\n")


def test_failed_migration_rolls_back_to_the_old_release_and_the_same_database(deployed):
    without_rehearsal(deployed)
    before = schema_and_rows(deployed)
    result = update(deployed, "--version", "v3.0.0")
    assert result.returncode == 1
    assert "failed and was rolled back to v1.0.0" in result.stderr
    assert "this migration fails half-way on purpose" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before
    assert last_journal(deployed)["status"] == "rolled back"
    assert not (deployed / "shared" / "maintenance").exists()
    assert (deployed / "releases" / "v3.0.0" / ".helpdesk-bad").exists()

    again = update(deployed, "--version", "v3.0.0")
    assert again.returncode == 2
    assert "marked bad" in again.stderr

    refused = run_manage(deployed / "current", "rollback", "--to", "v3.0.0")
    assert refused.returncode == 2 and "v3.0.0 was marked bad; pass --force" in refused.stderr
    forced = run_manage(deployed / "current", "rollback", "--to", "v3.0.0", "--force")  # past the refusal,
    assert forced.returncode == 1  # and its own smoke checks (migrate --check) still stop it
    assert "the rollback to v3.0.0 failed and was undone" in forced.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before


def test_smoke_check_failure_after_the_switch_switches_back(deployed):
    before = schema_and_rows(deployed)
    result = update(deployed, "--version", "v5.0.0")
    assert result.returncode == 1
    assert "ticket list: expected HTTP 200, got 500" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before
    journal = last_journal(deployed)
    assert journal["status"] == "rolled back"
    assert [s["status"] for s in journal["steps"]][-1] == "failed"


def test_a_second_update_is_refused_with_exit_code_3_naming_the_holder(deployed):
    with locks.hold(deployed / "shared" / "update.lock", command="update --version v2.0.0 (the other one)"):
        result = update(deployed, "--version", "v2.0.0")
    assert result.returncode == 3
    assert "update --version v2.0.0 (the other one)" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("v1;rm -rf /", "not a valid release tag"),
        ("broken-list", "is not a tag"),
        ("v9.9.9", "is not a tag"),
        ("v1.0.0", "already the current release"),
    ],
)
def test_bad_versions_are_refused_with_exit_code_2_and_nothing_changes(deployed, version, message):
    result = update(deployed, "--version", version)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert sorted(p.name for p in (deployed / "releases").iterdir()) == ["v1.0.0"]


def test_an_unfinished_run_blocks_new_updates_until_recovered(deployed):
    updates = deployed / "shared" / "updates"
    updates.mkdir(parents=True, exist_ok=True)
    stuck = {
        "id": "20260101T000000000000Z",
        "command": "update",
        "status": "running",
        "steps": [],
        "facts": {},
    }
    (updates / "20260101T000000000000Z-update.json").write_text(json.dumps(stuck))
    result = update(deployed, "--version", "v2.0.0")
    assert result.returncode == 2
    assert "rollback --recover" in result.stderr


def test_rollback_reverses_the_migrations_and_serves_the_previous_release(deployed):
    before = schema_and_rows(deployed)
    assert update(deployed, "--version", "v2.0.0").returncode == 0
    result = run_manage(deployed / "current", "rollback")
    assert result.returncode == 0, result.stderr
    assert "Rolled back v2.0.0 -> v1.0.0; database migrated back." in result.stdout
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before
    assert last_journal(deployed)["status"] == "succeeded"


def test_killed_in_the_middle_of_a_migration_recover_restores_the_old_release_and_schema(deployed):
    without_rehearsal(deployed)
    before = schema_and_rows(deployed)
    process = start_update(deployed, "v4.0.0")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        journals = sorted((deployed / "shared" / "updates").glob("*.json"))
        steps = json.loads(journals[-1].read_text())["steps"] if journals else []
        if steps and steps[-1]["name"] == "migrate":
            break
        assert process.poll() is None, "the update ended before it could be killed"
        time.sleep(0.2)
    time.sleep(2)  # inside the migration: the new column exists, the RunPython is sleeping

    asked_at = time.monotonic()
    concurrent = update(deployed, "--version", "v2.0.0")  # a second, real update process
    waited = time.monotonic() - asked_at
    reports.concurrency.append(
        f"second update refused with exit {concurrent.returncode} after {waited:.2f}s (incl. process start)"
    )
    assert concurrent.returncode == 3, concurrent.stderr
    assert f"pid {process.pid}" in concurrent.stderr and "update --version v4.0.0" in concurrent.stderr
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (deployed / "shared" / "maintenance").exists()  # left on by the killed run: writes stay blocked

    blocked = update(deployed, "--version", "v2.0.0")
    assert blocked.returncode == 2 and "rollback --recover" in blocked.stderr

    recovered = run_manage(deployed / "current", "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    assert "rolled back; serving v1.0.0" in recovered.stdout
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before
    assert not (deployed / "shared" / "maintenance").exists()
    assert last_journal(deployed)["status"] == "rolled back"
    assert update(deployed, "--version", "v2.0.0").returncode == 0  # and life goes on


FAULTS = [
    ("after the backup", lambda steps: _finished(steps, "backup")),
    ("after the migration", lambda steps: _finished(steps, "migrate")),
    ("after the switch", lambda steps: _finished(steps, "switch")),
    ("during verification", lambda steps: bool(steps) and steps[-1]["name"] == "verify"),
]


def _finished(steps: list[dict], name: str) -> bool:
    return any(step["name"] == name and step["status"] == "done" for step in steps)


@pytest.mark.parametrize(("where", "reached"), FAULTS, ids=[name for name, _ in FAULTS])
def test_sigkill_at_each_step_boundary_recovers_to_one_consistent_release(deployed, where, reached):
    before = schema_and_rows(deployed)
    process = start_update(deployed, "v2.0.0")
    updates = deployed / "shared" / "updates"
    while process.poll() is None:
        journals = sorted(updates.glob("*.json")) if updates.exists() else []
        try:
            steps = json.loads(journals[-1].read_text())["steps"] if journals else []
        except ValueError:
            steps = []
        if reached(steps):
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()

    recovered = run_manage(deployed / "current", "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    serving = (deployed / "current").resolve().name
    after = schema_and_rows(deployed)
    assert serving in ("v1.0.0", "v2.0.0")
    assert ("phone" in after["crm_organization"][0]) == (serving == "v2.0.0")  # schema matches the release
    for table in ("crm_ticket", "crm_organization", "crm_ticketcomment", "auth_user"):
        assert after[table][1] == before[table][1], table  # no row lost
    assert not (deployed / "shared" / "maintenance").exists()
    assert all(json.loads(p.read_text())["status"] != "running" for p in updates.glob("*.json"))
    reports.fault_injection.append((where, f"serving {serving}; schema matches it; no row lost"))


def test_a_release_whose_requirements_cannot_install_changes_nothing_live(deployed, tagged_repo):
    git("checkout", "-q", "-b", "bad-requirements", "v1.0.0", cwd=tagged_repo)
    requirements = tagged_repo / "requirements.txt"
    requirements.write_text(requirements.read_text() + "no-such-package-anywhere==9.9.9\n")
    _commit_tag(tagged_repo, "v6.0.0", "chore: depend on something that does not exist")
    before = schema_and_rows(deployed)
    result = update(deployed, "--version", "v6.0.0")
    assert result.returncode == 1
    assert "preparing v6.0.0 failed; the live site was not touched" in result.stderr
    assert "no-such-package-anywhere" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before
    journal = last_journal(deployed)
    assert journal["status"] == "failed"
    assert [step["name"] for step in journal["steps"]] == ["prepare"]
    assert not (deployed / "shared" / "maintenance").exists()


def test_gunicorn_serving_current_reports_the_new_version_after_a_hup_reload(deployed):
    server, base = serve_current(deployed)
    health = f"{base}/monitoring/health/"
    try:
        wait_until_serving(health, server)
        # health tells its version only to monitoring: with the token init_deployment generated
        token = re.search(r"^MONITORING_TOKEN=(\S+)$", (deployed / "shared" / ".env").read_text(), re.M)[1]
        monitoring = {"Authorization": f"Bearer {token}"}
        assert requests.get(health, timeout=5).json() == {"status": "pass"}  # anonymous
        assert requests.get(health, timeout=5, headers=monitoring).json()["version"] == "v1.0.0"
        result = update(deployed, "--version", "v2.0.0")
        assert result.returncode == 0, result.stderr
        assert requests.get(health, timeout=5, headers=monitoring).json()["version"] == "v2.0.0"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_health_url_that_never_reports_the_new_version_rolls_back(deployed):
    before = schema_and_rows(deployed)
    with (deployed / "shared" / ".env").open("a") as env_file:
        env_file.write(f"UPDATER_HEALTH_URL=http://127.0.0.1:{free_port()}/monitoring/health/\n")
        env_file.write("UPDATER_HEALTH_TIMEOUT=3\n")
    result = update(deployed, "--version", "v2.0.0")
    assert result.returncode == 1
    assert "did not report v2.0.0 within 3s" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before  # the migration was undone from the backup
    assert last_journal(deployed)["status"] == "rolled back"


def test_dry_run_prepares_the_release_and_changes_nothing_live(deployed):
    before = schema_and_rows(deployed)
    result = update(deployed, "--version", "v2.0.0", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"Dry run: v1.0.0 -> v2.0.0 prepared; migrations: crm.{PHONE}." in result.stdout
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before
    assert not list((deployed / "shared" / "backups").glob("*.gz"))
    journal = last_journal(deployed)
    assert (journal["status"], journal["cause"]) == ("succeeded", "dry run: prepared, nothing switched")
    assert not list((deployed / "shared" / "updates").glob("*.report.md"))  # nobody is told of a dry run
    assert journal["facts"]["static_and_translations_built"] is True

    # the update that follows finds the release prepared: its static files and translations stand
    built = deployed / "releases" / "v2.0.0" / ".helpdesk-built"
    assert (
        built.read_text() == git("rev-parse", "v2.0.0^{commit}", cwd=deployed / "releases" / "v2.0.0").strip()
    )
    result = update(deployed, "--version", "v2.0.0")
    assert result.returncode == 0, result.stderr  # its smoke checks served the static files built before
    assert last_journal(deployed)["facts"]["static_and_translations_built"] is False


def _add_failing_deploy_check(repo: Path) -> None:
    (repo / "crm" / "checks.py").write_text(
        "from django.core import checks\n\n\n@checks.register(deploy=True)\n"
        "def broken(app_configs, **kwargs):\n    return [checks.Error('broken on purpose', id='crm.E999')]\n"
    )
    apps = repo / "crm" / "apps.py"
    apps.write_text(
        apps.read_text() + "\n    def ready(self):\n        from crm import checks  # noqa: F401\n"
    )


def test_a_release_failing_its_system_checks_changes_nothing_live(deployed, tagged_repo):
    git("checkout", "-q", "-b", "failing-check", "v1.0.0", cwd=tagged_repo)
    _add_failing_deploy_check(tagged_repo)
    _commit_tag(tagged_repo, "v7.0.0", "chore: a release whose deploy checks fail")
    result = update(deployed, "--version", "v7.0.0")
    assert result.returncode == 1
    assert "crm.E999" in result.stderr and "the live site was not touched" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert last_journal(deployed)["status"] == "failed"
    assert (deployed / "releases" / "v7.0.0" / ".helpdesk-bad").exists()


def test_a_failing_reload_command_switches_back(deployed):
    before = schema_and_rows(deployed)
    with (deployed / "shared" / ".env").open("a") as env_file:
        env_file.write("UPDATER_RELOAD_COMMAND=false --pretend-to-reload\n")
    result = update(deployed, "--version", "v2.0.0")
    assert result.returncode == 1
    assert "the reload command failed" in result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before


def test_retention_keeps_the_newest_good_releases_and_never_current_previous_or_bad_ones(deployed):
    with (deployed / "shared" / ".env").open("a") as env_file:
        env_file.write("UPDATER_KEEP_RELEASES=1\n")
    assert update(deployed, "--version", "v3.0.0").returncode == 2  # refused in rehearsal, marked bad
    assert update(deployed, "--version", "v2.0.0").returncode == 0
    assert sorted(p.name for p in (deployed / "releases").iterdir()) == ["v1.0.0", "v2.0.0", "v3.0.0"]

    result = update(deployed, "--version", "v8.0.0")
    assert result.returncode == 0, result.stderr
    # v8.0.0 is current, v2.0.0 previous, v3.0.0 bad (does not count); v1.0.0 goes.
    assert sorted(p.name for p in (deployed / "releases").iterdir()) == ["v2.0.0", "v3.0.0", "v8.0.0"]
    assert last_journal(deployed)["facts"]["removed_releases"] == ["v1.0.0"]
    worktrees = git("worktree", "list", cwd=deployed / "repo.git")
    assert "v1.0.0" not in worktrees and "v8.0.0" in worktrees
    assert run_manage(deployed / "current", "rollback").returncode == 0  # previous is still there
    assert (deployed / "current").resolve().name == "v2.0.0"


def test_rollback_over_an_irreversible_migration_restores_the_backup_only_when_confirmed(deployed):
    before = schema_and_rows(deployed)
    assert update(deployed, "--version", "v9.0.0").returncode == 0
    run_manage(
        deployed / "current",
        "shell",
        "--no-imports",
        "-c",
        "from crm.models import Ticket, TicketAttachment; "
        "from django.core.files.base import ContentFile; t = Ticket.objects.first(); "
        "n = Ticket.objects.create(title='after the update', description='will be lost', "
        "organization=t.organization, created_by=t.created_by); "
        "TicketAttachment.objects.create(ticket=n, uploaded_by=t.created_by, size=6, "
        "content_type='text/plain', file=ContentFile(b'later\\n', name='later.txt'))",
        check=True,
    )
    [later_file] = [p for p in (deployed / "shared" / "media").rglob("*") if p.is_file()]
    later_name = later_file.relative_to(deployed / "shared" / "media").as_posix()

    unconfirmed = run_manage(deployed / "current", "rollback")  # stdin is not a terminal
    assert unconfirmed.returncode == 2
    assert f"cannot be reversed: crm.{PHONE}" in unconfirmed.stderr
    assert "loses every change made since then: tickets created: 1" in unconfirmed.stderr
    assert "media files moved aside to the quarantine folder: 1" in unconfirmed.stderr
    insisting = run_manage(deployed / "current", "rollback", "--db", "migrate")
    assert insisting.returncode == 2 and "use --db restore" in insisting.stderr
    assert (deployed / "current").resolve().name == "v9.0.0"
    assert schema_and_rows(deployed)["crm_ticket"][1] == before["crm_ticket"][1] + 1

    confirmed = run_manage(deployed / "current", "rollback", "--no-input")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "tickets created: 1" in confirmed.stdout and "database restored from" in confirmed.stdout
    assert (deployed / "current").resolve().name == "v1.0.0"
    assert schema_and_rows(deployed) == before
    assert last_journal(deployed)["facts"]["database_action"] == "restore"
    # The file uploaded after the backup is kept aside, not deleted, and the report names it.
    assert not later_file.exists()
    [kept] = (deployed / "shared" / "quarantine").glob(f"*/{later_name}")
    assert kept.read_bytes() == b"later\n"
    report = run_manage(deployed / "current", "update_report", "--last", check=True).stdout
    assert "moved aside (not deleted)" in report and later_name in report


def test_only_tags_signed_by_a_trusted_key_are_accepted_when_signatures_are_required(
    deployed, tagged_repo, tmp_path
):
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("release", "stranger"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys / name)], check=True
        )
    allowed = keys / "allowed_signers"
    allowed.write_text(f"release@helpdesk.example {(keys / 'release.pub').read_text()}")
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    gpg_env = {**os.environ, "GNUPGHOME": str(gnupg)}
    identity = "Releases <gpg@helpdesk.example>"
    subprocess.run(
        ["gpg", "--batch", "-q", "--passphrase", "", "--quick-gen-key", identity, "ed25519", "sign", "never"],
        env=gpg_env,
        check=True,
        capture_output=True,
    )

    def signed_tag(tag: str, *config: str, env: dict | None = None) -> None:
        subprocess.run(
            ["git", *config, "tag", "-s", "-m", tag, tag, "v8.0.0"],
            cwd=tagged_repo,
            env=env,
            check=True,
            capture_output=True,
        )

    ssh = ("-c", "gpg.format=ssh", "-c")
    signed_tag("v8.1.0", *ssh, f"user.signingkey={keys / 'release'}")
    signed_tag("v8.1.1", *ssh, f"user.signingkey={keys / 'stranger'}")
    signed_tag("v8.1.2", "-c", "user.signingkey=gpg@helpdesk.example", env=gpg_env)
    with (deployed / "shared" / ".env").open("a") as env_file:
        env_file.write(
            f"UPDATER_REQUIRE_SIGNED_TAGS=True\nUPDATER_ALLOWED_SIGNERS={allowed}\n"
            f"UPDATER_GNUPGHOME={gnupg}\n"
        )

    for refused in ("v8.0.0", "v8.1.1"):  # unsigned; signed by a key nobody trusts
        result = update(deployed, "--version", refused)
        assert result.returncode == 2, result.stderr
        assert f"tag '{refused}' has no valid signature from a trusted signer" in result.stderr
    assert sorted(p.name for p in (deployed / "releases").iterdir()) == ["v1.0.0"]
    for accepted in ("v8.1.0", "v8.1.2"):  # SSH-signed; GPG-signed
        result = update(deployed, "--version", accepted, "--dry-run")
        assert result.returncode == 0, result.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"


def test_update_plan_lists_what_migrate_then_applies(deployed):
    result = run_manage(deployed / "current", "update_plan", "--version", "v2.0.0", "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["format"], plan["current"], plan["target"]) == (1, "v1.0.0", "v2.0.0")
    assert [c["subject"] for c in plan["commits"]["feat"]] == ["feat: organizations get a phone number"]
    assert plan["update_class"] == "important" and plan["breaking"] == []
    blocking = "AddField of a NOT NULL column without db_default: the release before cannot insert rows"
    assert plan["migrations"] == [
        {"name": f"crm.{PHONE}", "irreversible": False, "reasons": [], "kind": "blocking", "why": [blocking]}
    ]
    assert plan["maintenance_needed"] and not plan["requirements_changed"]
    assert plan["migration_schedule"]["mode"] == "maintenance"
    text = run_manage(deployed / "current", "update_plan", "--version", "v2.0.0").stdout
    assert f"  crm.{PHONE}\n    blocking: {blocking}\n" in text
    assert f"Migrations (1, maintenance mode while they run: crm.{PHONE} is blocking: {blocking}):" in text
    online = run_manage(deployed / "current", "update_plan", "--version", "v10.0.0").stdout
    assert "Migrations (1, online, the site stays up: 1 before the switch, 0 after it is verified):" in online
    assert "Estimated downtime: 0 s (online migrations: the site stays up" in online

    assert update(deployed, "--version", "v2.0.0").returncode == 0
    facts = last_journal(deployed)["facts"]
    assert facts["pending_migrations"] == [m["name"] for m in plan["migrations"]]  # what migrate ran
    assert facts["migration_kinds"] == {f"crm.{PHONE}": {"kind": "blocking", "why": [blocking]}}
    report = run_manage(deployed / "current", "update_report", "--last", check=True).stdout
    assert f"crm.{PHONE}: blocking ({blocking})" in report


def test_update_plan_flags_irreversible_migrations_and_defaults_to_the_newest_tag(deployed, tagged_repo):
    text = run_manage(deployed / "current", "update_plan", "--version", "v9.0.0")
    assert text.returncode == 0, text.stderr
    assert f"crm.{PHONE}  IRREVERSIBLE: RunPython without reverse_code" in text.stdout
    assert "Class: important (window always: open now)" in text.stdout
    newest = git("tag", "--list", "--sort=version:refname", cwd=tagged_repo).split()[-1]
    default = json.loads(
        run_manage(deployed / "current", "update_plan", "--format", "json", check=True).stdout
    )
    assert default["target"] == newest

    git("checkout", "-q", "-b", "new-requirements", "v1.0.0", cwd=tagged_repo)
    requirements = tagged_repo / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# a comment changes the venv key too\n")
    css = tagged_repo / "crm" / "static" / "crm" / "helpdesk.css"
    css.write_text(css.read_text() + "\n/* new look */\n")
    _commit_tag(tagged_repo, "v1.0.1", "chore: requirements and styles")
    planned = run_manage(
        deployed / "current", "update_plan", "--version", "v1.0.1", "--format", "json", check=True
    )
    plan = json.loads(planned.stdout)
    assert plan["requirements_changed"] and plan["static_changed"] and plan["update_class"] == "routine"
    assert plan["migrations"] == [] and plan["estimated_downtime_seconds"] == 0


def test_breaking_changes_and_closed_windows_are_refused_until_explicitly_allowed(deployed, tagged_repo):
    git("checkout", "-q", "-b", "breaking", "v8.0.0", cwd=tagged_repo)
    (tagged_repo / "NOTES.txt").write_text("the old API is gone\n")
    _commit_tag(tagged_repo, "v13.0.0", "feat(api)!: drop the old ticket API")
    breaking = update(deployed, "--version", "v13.0.0")
    assert breaking.returncode == 2
    assert "contains BREAKING changes (feat(api)!: drop the old ticket API)" in breaking.stderr
    allowed = update(deployed, "--version", "v13.0.0", "--allow-breaking", "--dry-run")
    assert allowed.returncode == 0, allowed.stderr

    with (deployed / "shared" / ".env").open("a") as env_file:
        env_file.write("UPDATE_WINDOW_IMPORTANT=never\n")
    closed = update(deployed, "--version", "v2.0.0")
    assert closed.returncode == 2
    assert "is classed important; its window (never) is closed and next opens never" in closed.stderr
    assert (deployed / "current").resolve().name == "v1.0.0"
    forced = update(deployed, "--version", "v2.0.0", "--ignore-window")
    assert forced.returncode == 0, forced.stderr
    assert last_journal(deployed)["facts"]["update_class"] == "important"

    with (deployed / "shared" / ".env").open("a") as env_file:
        env_file.write("UPDATE_WINDOW_IMPORTANT=weekends\n")  # a typo in the policy refuses, changes nothing
    unreadable = update(deployed, "--version", "v8.0.0")
    assert unreadable.returncode == 2 and "'weekends' is not a window" in unreadable.stderr
    assert (deployed / "current").resolve().name == "v2.0.0"


@pytest.fixture(scope="module")
def auto_repo(tmp_path_factory) -> Path:
    """v1.1.0 a patch; v1.2.0 fails its deploy checks; v1.3.0 has a BREAKING change."""
    repo = clone_project(tmp_path_factory.mktemp("auto") / "helpdesk")
    git("tag", "v1.0.0", cwd=repo)
    css = repo / "crm" / "static" / "crm" / "helpdesk.css"
    css.write_text(css.read_text() + "\n/* v1.1.0 */\n")
    _commit_tag(repo, "v1.1.0", "fix: a patch")
    _add_failing_deploy_check(repo)
    _commit_tag(repo, "v1.2.0", "fix: a release whose deploy checks fail")
    (repo / "NOTES.txt").write_text("renamed everything\n")
    _commit_tag(repo, "v1.3.0", "feat!: rename every URL")
    return repo


@pytest.fixture
def auto_deployed(auto_repo, wheelhouse, first_venv, tmp_path, django_db_blocker) -> Path:
    return _deploy(auto_repo, wheelhouse, first_venv, tmp_path, django_db_blocker)


def test_auto_update_holds_breaking_backs_off_after_a_failure_and_takes_a_newer_tag(auto_deployed, auto_repo):
    def auto_update(*args: str) -> subprocess.CompletedProcess:
        return run_manage(auto_deployed / "current", "auto_update", *args)

    planned = auto_update("--dry-run")
    assert "Would update: v1.2.0" in planned.stdout and "Held v1.3.0" in planned.stdout

    failed = auto_update()
    assert failed.returncode == 1
    assert "Held v1.3.0 for a human: BREAKING changes need a human: feat!: rename every URL" in failed.stdout
    assert "the update to v1.2.0 failed" in failed.stderr or "preparing v1.2.0 failed" in failed.stderr

    backing_off = auto_update()
    assert backing_off.returncode == 0
    assert "Not retrying: v1.2.0 failed before" in backing_off.stdout and "Held" not in backing_off.stdout
    quiet = auto_update()
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")  # cron stays silent
    assert (auto_deployed / "current").resolve().name == "v1.0.0"

    git("checkout", "-q", "-b", "patch-2", "v1.1.0", cwd=auto_repo)
    (auto_repo / "NOTES.txt").write_text("a second patch\n")
    _commit_tag(auto_repo, "v1.4.0", "fix: a second patch")
    applied = auto_update()
    assert applied.returncode == 0, applied.stderr
    assert "auto_update: updated v1.0.0 -> v1.4.0" in applied.stdout
    assert (auto_deployed / "current").resolve().name == "v1.4.0"
    assert last_journal(auto_deployed)["actor"] == "auto_update"
    assert auto_update().stdout == ""

    cleared = auto_update("--clear", "v1.2.0")
    assert "v1.2.0 may be tried again" in cleared.stdout
    assert not (auto_deployed / "releases" / "v1.2.0" / ".helpdesk-bad").exists()


def test_auto_update_waits_for_the_window_and_applies_security_fixes_at_once(
    auto_deployed, auto_repo, settings, django_db_blocker
):
    with (auto_deployed / "shared" / ".env").open("a") as env_file:
        env_file.write("UPDATE_WINDOW_IMPORTANT=never\n")
    waiting = run_manage(auto_deployed / "current", "auto_update", "-v", "2")
    assert waiting.returncode == 0, waiting.stderr
    assert "is classed important; its window (never) is closed and next opens never" in waiting.stdout

    # The same decision at fixed instants, in-process: enough of the window left, or not.
    settings.UPDATE_TIME_ZONE = "Europe/Warsaw"
    settings.UPDATE_WINDOW_IMPORTANT = "Sun 02:00-06:00"
    root = layout.DeploymentRoot(auto_deployed)
    sunday = datetime(2026, 11, 29, tzinfo=ZoneInfo("Europe/Warsaw"))
    with django_db_blocker.unblock():
        early = auto.decide(root, at=sunday + timedelta(hours=3))
        late = auto.decide(root, at=sunday + timedelta(hours=5, minutes=59, seconds=30))
        monday = auto.decide(root, at=sunday + timedelta(days=1, hours=3))
    assert (early.action, early.reason) == (auto.UPDATE, "important update, window open")
    assert late.action == auto.WAIT and "the important window closes in 0.5 min" in late.reason
    assert monday.action == auto.WAIT and "next opens Sun 2026-12-06 02:00 CET" in monday.reason

    assert (auto_deployed / "current").resolve().name == "v1.0.0"
    assert not list((auto_deployed / "shared" / "updates").glob("*-update.json"))

    with locks.hold(auto_deployed / "shared" / "update.lock", command="update --version v9 (by hand)"):
        git("checkout", "-q", "-b", "security", "v1.1.0", cwd=auto_repo)
        (auto_repo / "NOTES.txt").write_text("escaped\n")
        _commit_tag(auto_repo, "v1.5.0", "security: escape the search box")
        busy = run_manage(auto_deployed / "current", "auto_update")
    assert busy.returncode == 3 and "update --version v9 (by hand)" in busy.stderr  # the lock is shared
    critical = run_manage(auto_deployed / "current", "auto_update")  # important is still `never`
    assert critical.returncode == 0, critical.stderr
    assert "auto_update: updated v1.0.0 -> v1.5.0 (critical update, window open)" in critical.stdout


def test_each_run_is_reported_by_email_slack_and_status_page_even_when_a_webhook_hangs(deployed):
    without_rehearsal(deployed)
    with Mailbox() as smtp, Webhook("hang") as slack, Webhook(200) as status_page:
        with (deployed / "shared" / ".env").open("a") as env_file:
            env_file.write(
                f"EMAIL_HOST=127.0.0.1\nEMAIL_PORT={smtp.port}\nNOTIFY_EMAILS=ops@example.org\nNOTIFY_MODE=always\n"
                f"NOTIFY_TIMEOUT=1\nSLACK_WEBHOOK_URL={slack.url()}\nSTATUS_PAGE_URL={status_page.url('/c/1')}\n"
            )
        succeeded = update(deployed, "--version", "v2.0.0")
        assert succeeded.returncode == 0, succeeded.stderr
        failed = update(deployed, "--version", "v3.0.0")
        assert failed.returncode == 1

    subjects = [message.subject for message in smtp.received]
    assert subjects[0].startswith("[OK] helpdesk update v1.0.0 -> v2.0.0")
    assert subjects[1].startswith("[ROLLED BACK] helpdesk update v2.0.0 -> v3.0.0")
    assert "  feat: organizations get a phone number" in smtp.received[0].body.splitlines()
    assert "this migration fails half-way on purpose" in smtp.received[1].body
    states = [call.body["component"]["status"] for call in status_page.calls]
    assert states == ["under_maintenance", "operational"] * 2
    assert len(slack.calls) == 2  # it was called, and it never answered

    journal = last_journal(deployed)
    deliveries = {n["channel"]: n for n in journal["facts"]["notifications"]}
    assert deliveries["slack"] == {"channel": "slack", "ok": False, "detail": "timed out"}
    assert deliveries["email"]["ok"]
    report = run_manage(deployed / "current", "update_report", "--last", "--format", "markdown", check=True)
    assert report.stdout.startswith("# [ROLLED BACK] helpdesk update v2.0.0 -> v3.0.0")
    assert "## Steps" in report.stdout and "- slack: FAILED (timed out)" in report.stdout
    assert "SECRET-TOKEN-PART" not in report.stdout and "SECRET-TOKEN-PART" not in json.dumps(journal)
    first = run_manage(deployed / "current", "update_report", "--list", check=True).stdout.split()[0]
    as_json = json.loads(
        run_manage(
            deployed / "current", "update_report", "--run", first, "--format", "json", check=True
        ).stdout
    )
    assert as_json["outcome"] == "succeeded" and as_json["maintenance_seconds"] > 0
    assert set(as_json["query_timings_ms"]) == {
        "ticket count",
        "ticket list page 1",
        "open tickets by status",
    }
    assert len(list((deployed / "shared" / "updates").glob("*.report.md"))) == 2
