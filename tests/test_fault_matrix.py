"""The fault matrix: every command that changes a live site, killed (SIGKILL of its whole process
group, as a power loss) before each of its steps, after its last one and in the middle of its long
steps, or failing inside each step (its work done, not yet journaled as done); then `rollback
--recover`. Afterwards the site serves exactly one release, `migrate --check` passes in it, every table
equals the state before the run or the completed target (which one follows from the fault: a run
is completed once it is verified, undone before), maintenance is off, no journal step is left
running and no good release is marked bad.

The rows are built from each command's steps as listed in COMMANDS; the row that kills a command
after its last step checks that list against the steps the command journals, so a step added to a
command without its rows fails here.

Faults are injected through the updater's failpoints (UPDATER_FAILPOINTS, updater/run/faults.py) in
real processes: real git, venvs, database, and the real commands. One deployment per module; between
rows the links are put back, and the database from a baseline backup when a row changed it.
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import reports
from tests.support.deployments import newest_migration
from tests.test_update import (  # noqa: F401  (module-scoped fixtures shared with the update tests)
    ONLINE_UPDATE_STEPS,
    SCHEMA_AND_ROWS,
    UPDATE_STEPS,
    _deploy,
    first_venv,
    run_manage,
    tagged_repo,
    wheelhouse,
)

pytestmark = pytest.mark.slow

V1, V2, V8 = "v1.0.0", "v2.0.0", "v8.0.0"  # v2.0.0 adds a migration; v8.0.0 is v2.0.0 plus code only
V10, V11 = "v10.0.0", "v11.0.0"  # v11.0.0 migrates v10.0.0's schema online, then contracts it
V2_UNMIGRATED = "v2.0.0 with its migration pending"


@dataclass(frozen=True)
class Command:
    steps: tuple[str, ...]  # in the order the command runs them, skipped ones left out
    during: tuple[str, ...] = ()  # steps with a failpoint in their middle
    # the steps faulted before and inside (default: all); a command whose other steps are the same
    # code as another command's, already faulted there, lists only its own
    faulted: tuple[str, ...] | None = None

    def faults(self) -> list[tuple[str, str]]:
        faulted = [step for step in self.steps if self.faulted is None or step in self.faulted]
        kills = [f"{step}:before" for step in faulted] + [f"{self.steps[-1]}:after"]
        kills += [f"{step}:during" for step in self.during]
        return [(point, "kill") for point in kills] + [(f"{step}:end", "fail") for step in faulted]

    def completes(self, failpoint: str) -> bool:
        """Whether a run stopped at failpoint is past its point of no return (verified)."""
        step, _, where = failpoint.rpartition(":")
        position = self.steps.index(step)
        verified = self.steps.index("verify")
        return position > verified or (position == verified and where == "after")


COMMANDS = {
    "update (migration)": Command(
        UPDATE_STEPS,
        during=("rehearse", "migrate", "switch"),
    ),
    "update (no migration)": Command(
        ("prepare", "backup", "switch", "verify", "maintenance off", "finish"), during=("switch",)
    ),
    # prepare, rehearse, backup and maintenance off are the blocking update's own steps (faulted above);
    # what differs is undone or completed differently: migrate online (undone by migrating back, also
    # after the switch and verify) and contract (completed, past the point of no return)
    "update (online + contract)": Command(
        ONLINE_UPDATE_STEPS,
        during=("migrate online", "contract"),
        faulted=("migrate online", "switch", "verify", "contract"),
    ),
    "rollback --db migrate": Command(
        ("maintenance", "migrate back", "switch", "verify", "maintenance off", "finish"),
        during=("migrate back", "switch"),
    ),
    "rollback --db restore": Command(
        ("maintenance", "safety backup", "restore", "switch", "verify", "maintenance off", "finish"),
        during=("restore", "switch"),
    ),
    "rollback --db keep": Command(("switch", "verify", "maintenance off", "finish"), during=("switch",)),
    "safe_migrate": Command(
        ("integrity check", "maintenance", "backup", "migrate", "verify", "maintenance off", "finish"),
        during=("migrate",),
    ),
    "restore_database": Command(
        ("maintenance", "safety backup", "restore", "verify", "maintenance off", "finish"),
        during=("restore",),
    ),
}


def rows(label: str) -> list:
    return [
        pytest.param(point, action, id=f"{action} at {point}") for point, action in COMMANDS[label].faults()
    ]


def run_with_faults(root: Path, *args: str, failpoints: str = "") -> subprocess.CompletedProcess:
    """A command in the current release, in its own process group (a `kill` failpoint ends it whole)."""
    current = root / "current"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "ENV_FILE": str(root / "shared" / ".env"),
    }
    if failpoints:
        env["UPDATER_FAILPOINTS"] = failpoints
    return subprocess.run(
        [str(current / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=current,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        start_new_session=True,
    )


# One process for what would take two: the tables and whether every migration of the release is applied.
OBSERVE = (
    SCHEMA_AND_ROWS
    + "from io import StringIO\nfrom django.core.management import call_command\n"
    + "try:\n"
    + "    call_command('migrate', check_unapplied=True, verbosity=0, stdout=StringIO())\n"
    + "    print('applied')\n"
    + "except SystemExit:\n"
    + "    print('pending')\n"
    + "from updater.plan import rehearsal\n"
    + "print('scratch copy left' if rehearsal.scratch_exists() else 'no scratch copy')\n"
)


class Site:
    """A deployment with baseline databases to put back between rows."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.baseline: dict[str, Path] = {}
        self.state: dict[str, dict] = {}
        self.applied_in: dict[str, bool] = {}  # whether every migration of the release is applied
        self.tables: dict | None = None  # as last observed, unless a command ran since
        self.applied = False

    def observe(self) -> dict:
        """Checksums of every table but django_migrations (its `applied` times differ from run to run;
        the schema and `migrate --check` stand for it)."""
        done = run_with_faults(self.root, "shell", "--no-imports", "-c", OBSERVE)
        assert done.returncode == 0, done.stderr
        tables_line, applied_line, scratch_line = done.stdout.strip().splitlines()[-3:]
        assert scratch_line == "no scratch copy", "a rehearsal's scratch copy of the database was left behind"
        self.tables = json.loads(tables_line)
        self.tables.pop("django_migrations", None)
        self.applied = applied_line == "applied"
        return self.tables

    def run(self, *args: str, failpoints: str = "") -> subprocess.CompletedProcess:
        self.tables = None
        return run_with_faults(self.root, *args, failpoints=failpoints)

    def snapshot(self, version: str) -> None:
        folder = self.root / "shared" / f"baseline-{version}"
        folder.mkdir(exist_ok=True)
        done = run_manage(self.root / "current", "backup_database", "--output", str(folder), check=True)
        assert done.returncode == 0
        self.baseline[version] = sorted(p for p in folder.iterdir() if p.name.endswith(".gz"))[-1]
        self.state[version] = self.observe()
        self.applied_in[version] = self.applied

    def reset(self, version: str) -> None:
        """Serve `version` with its baseline database; no flag, no bad marks, no unfinished journal.
        The database is restored only when the last row left it elsewhere."""
        served = V2 if version == V2_UNMIGRATED else version
        for link, release in (("current", served), ("previous", V1 if served != V1 else V2)):
            target = self.root / "releases" / release
            if target.exists():
                temporary = self.root / f".{link}.reset"
                temporary.unlink(missing_ok=True)
                temporary.symlink_to(os.path.relpath(target, self.root))
                os.replace(temporary, self.root / link)
        for marker in self.root.glob("releases/*/.helpdesk-bad"):
            marker.unlink()
        (self.root / "shared" / "maintenance").unlink(missing_ok=True)
        if self.tables == self.state[version] and self.applied == self.applied_in[version]:
            return
        restored = self.run("restore_database", str(self.baseline[version]), "--no-input")
        assert restored.returncode == 0, restored.stderr
        self.tables, self.applied = self.state[version], self.applied_in[version]


@pytest.fixture(scope="module")
def site(tagged_repo, wheelhouse, first_venv, tmp_path_factory, django_db_blocker):  # noqa: F811
    root = _deploy(tagged_repo, wheelhouse, first_venv, tmp_path_factory.mktemp("matrix"), django_db_blocker)
    site = Site(root)
    site.snapshot(V1)
    for online in (V10, V11):
        assert site.run("update", "--version", online).returncode == 0
        site.snapshot(online)
    site.reset(V1)
    assert site.run("update", "--version", V2).returncode == 0
    site.snapshot(V2)
    assert site.run("update", "--version", V8).returncode == 0
    site.state[V8], site.applied_in[V8] = site.state[V2], True  # v8.0.0 changes code only
    site.baseline[V8] = site.baseline[V2]
    assert site.run("migrate", "crm", newest_migration()).returncode == 0  # safe_migrate's starting point
    site.snapshot(V2_UNMIGRATED)
    return site


def newest_journal(root: Path) -> dict:
    return json.loads(max((root / "shared" / "updates").glob("*.json")).read_text())


def inject(
    site: Site, label: str, args: list[str], failpoint: str, action: str
) -> subprocess.CompletedProcess:
    """Run the command with the fault, check how it ended and what it journaled, then recover."""
    run = site.run(*args, failpoints=f"{failpoint}={action}")
    assert run.returncode == (-9 if action == "kill" else 1), run.stdout + run.stderr
    if action == "fail":
        assert f"failure injected at {failpoint}" in run.stderr, run.stderr
    journaled = [step["name"] for step in newest_journal(site.root)["steps"]]
    steps = COMMANDS[label].steps
    assert set(journaled) <= set(steps), f"{label} journals steps the matrix does not know: {journaled}"
    if failpoint == f"{steps[-1]}:after":
        assert journaled == list(steps), f"{label} runs {journaled}, the matrix lists {steps}"
    if action == "kill" or "rollback --recover" in run.stderr:
        recovered = site.run("rollback", "--recover")
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    return run


def check_consistent(site: Site, expected: str) -> None:
    """The invariants after the run and its recovery, serving `expected` with its tables."""
    root = site.root
    assert (root / "current").resolve().name == expected
    assert site.observe() == site.state[expected], f"tables differ from the state of {expected}"
    assert site.applied, f"the schema does not match {expected}: migrate --check fails"
    check_finished(site)


def check_finished(site: Site) -> None:
    assert not (site.root / "shared" / "maintenance").exists(), "maintenance left on"
    for path in (site.root / "shared" / "updates").glob("*.json"):
        run = json.loads(path.read_text())
        if "steps" in run:
            assert run["status"] != "running", path.name
            assert all(step["status"] != "running" for step in run["steps"]), path.name


def record(label: str, failpoint: str, action: str, outcome: str) -> None:
    reports.fault_matrix.append((label, f"{action} at {failpoint}", outcome))


UPDATES = {  # label: from, to
    "update (migration)": (V1, V2),
    "update (no migration)": (V2, V8),
    "update (online + contract)": (V10, V11),
}


@pytest.mark.parametrize(
    ("label", "failpoint", "action"),
    [pytest.param(label, *row.values, id=f"{label}: {row.id}") for label in UPDATES for row in rows(label)],
)
def test_update(site, label, failpoint, action):
    start, target = UPDATES[label]
    site.reset(start)
    inject(site, label, ["update", "--version", target], failpoint, action)
    check_consistent(site, target if COMMANDS[label].completes(failpoint) else start)
    assert not (site.root / "releases" / start / ".helpdesk-bad").exists()
    record(label, failpoint, action, f"serving {(site.root / 'current').resolve().name}")


@pytest.mark.parametrize(
    ("db", "failpoint", "action"),
    [
        pytest.param(db, *row.values, id=f"{db}: {row.id}")
        for db in ("migrate", "restore", "keep")
        for row in rows(f"rollback --db {db}")
    ],
)
def test_rollback(site, db, failpoint, action):
    label = f"rollback --db {db}"
    # --db keep leaves the schema as it is: from v8.0.0 to v2.0.0, which share it (v1.0.0's code fails
    # on v2.0.0's schema: see the test below)
    start, target = (V8, V2) if db == "keep" else (V2, V1)
    site.reset(start)
    run = inject(site, label, ["rollback", "--to", target, "--db", db, "--no-input"], failpoint, action)
    completed = COMMANDS[label].completes(failpoint)
    if action == "fail" and not completed:  # undone at once: exactly as before the rollback
        assert "failed and was undone" in run.stderr, run.stderr
    serving = target if completed else start
    check_consistent(site, serving)
    assert not list(site.root.glob("releases/*/.helpdesk-bad")), "a good release was marked bad"
    record(label, failpoint, action, f"serving {serving}")


def test_rollback_keeping_a_schema_the_older_code_cannot_write_is_undone(site):
    """v1.0.0 cannot insert an organization into v2.0.0's table (its new column has no default in
    the database); the smoke checks find it after the switch and the rollback is undone."""
    site.reset(V2)
    run = site.run("rollback", "--to", V1, "--db", "keep", "--no-input")
    assert run.returncode == 1
    assert "failed and was undone" in run.stderr and "smoke_check failed in v1.0.0" in run.stderr
    check_consistent(site, V2)
    assert not list(site.root.glob("releases/*/.helpdesk-bad")), "a good release was marked bad"
    record("rollback --db keep", "v1.0.0's code on v2.0.0's schema", "(none)", "serving v2.0.0")


@pytest.mark.parametrize("step", ["switch", "migrate", "backup", "maintenance", "prepare"])
def test_rollback_recover_killed_while_undoing_an_update(site, step):
    site.reset(V1)
    killed = site.run("update", "--version", V2, failpoints="verify:before=kill")
    assert killed.returncode == -9
    again = site.run("rollback", "--recover", failpoints=f"undo {step}:before=kill")
    assert again.returncode == -9, again.stdout + again.stderr
    recovered = site.run("rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    check_consistent(site, V1)
    assert not (site.root / "releases" / V1 / ".helpdesk-bad").exists()
    record("rollback --recover", f"undo {step}:before", "kill", "serving v1.0.0")


def test_rollback_recover_killed_while_completing_an_update(site):
    site.reset(V1)
    killed = site.run("update", "--version", V2, failpoints="maintenance off:before=kill")
    assert killed.returncode == -9
    again = site.run("rollback", "--recover", failpoints="maintenance off:before=kill")
    assert again.returncode == -9, again.stdout + again.stderr
    recovered = site.run("rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    check_consistent(site, V2)
    record("rollback --recover", "maintenance off:before (completing)", "kill", "serving v2.0.0")


@pytest.mark.parametrize(("failpoint", "action"), rows("safe_migrate"))
def test_safe_migrate(site, failpoint, action):
    label = "safe_migrate"
    site.reset(V2_UNMIGRATED)  # v2.0.0 served, its migration not applied
    inject(site, label, ["safe_migrate"], failpoint, action)
    migrated = COMMANDS[label].completes(failpoint)
    assert site.observe() == site.state[V2 if migrated else V2_UNMIGRATED]
    assert site.applied == migrated
    check_finished(site)
    assert not list(site.root.glob("releases/*/.helpdesk-bad"))
    record(label, failpoint, action, "database migrated" if migrated else "database as before")


@pytest.mark.parametrize(("failpoint", "action"), rows("restore_database"))
def test_restore_database_on_a_deployment(site, failpoint, action):
    label = "restore_database"
    site.reset(V1)
    site.run("seed_demo", "--tickets", "5", "--orgs", "1")  # the rows a completed restore throws away
    changed = site.observe()
    assert changed != site.state[V1]
    inject(site, label, ["restore_database", str(site.baseline[V1]), "--no-input"], failpoint, action)
    restored = COMMANDS[label].completes(failpoint)
    # undone: put back from the safety backup, as before the restore; completed: the backup's state
    assert site.observe() == (site.state[V1] if restored else changed)
    check_finished(site)
    record(label, failpoint, action, "database restored" if restored else "database as before")
