"""The fault matrix: every command that changes a live site, killed (SIGKILL of its whole process
group, as a power loss) at step boundaries and in the middle of its longest step, or failing inside
each step, then `rollback --recover`. Afterwards the site serves exactly one release, `migrate --check`
passes in it, every table equals the state before the run or the completed target, maintenance is off,
no journal step is left running and no good release is marked bad.

Faults are injected through the updater's failpoints (UPDATER_FAILPOINTS, updater/run/faults.py) in
real processes: real git, venvs, database, and the real commands. One deployment per module; between
rows the links and the database are put back from a baseline backup.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import reports
from tests.test_update import (  # noqa: F401  (module-scoped fixtures shared with the update tests)
    _deploy,
    first_venv,
    run_manage,
    schema_and_rows,
    tagged_repo,
    wheelhouse,
)

pytestmark = pytest.mark.slow

V1, V2 = "v1.0.0", "v2.0.0"


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


def tables(root: Path) -> dict:
    """Checksums of every table but django_migrations (its `applied` times differ from run to run;
    `migrate --check` and the schema stand for it)."""
    state = schema_and_rows(root)
    state.pop("django_migrations", None)
    return state


class Site:
    """A deployment with baselines at v1.0.0 and v2.0.0 to put back between rows."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.baseline: dict[str, Path] = {}
        self.state: dict[str, dict] = {}

    def snapshot(self, version: str) -> None:
        folder = self.root / "shared" / f"baseline-{version}"
        folder.mkdir(exist_ok=True)
        done = run_manage(self.root / "current", "backup_database", "--output", str(folder), check=True)
        assert done.returncode == 0
        self.baseline[version] = sorted(p for p in folder.iterdir() if p.name.endswith(".gz"))[-1]
        self.state[version] = tables(self.root)

    def reset(self, version: str) -> None:
        """Serve `version` with its baseline database; no flag, no bad marks, no unfinished journal."""
        other = V1 if version == V2 else V2
        for link, release in (("current", version), ("previous", other)):
            target = self.root / "releases" / release
            if target.exists():
                temporary = self.root / f".{link}.reset"
                temporary.unlink(missing_ok=True)
                temporary.symlink_to(os.path.relpath(target, self.root))
                os.replace(temporary, self.root / link)
        for marker in self.root.glob("releases/*/.helpdesk-bad"):
            marker.unlink()
        (self.root / "shared" / "maintenance").unlink(missing_ok=True)
        restored = run_with_faults(self.root, "restore_database", str(self.baseline[version]), "--no-input")
        assert restored.returncode == 0, restored.stderr


@pytest.fixture(scope="module")
def site(tagged_repo, wheelhouse, first_venv, tmp_path_factory, django_db_blocker):  # noqa: F811
    root = _deploy(tagged_repo, wheelhouse, first_venv, tmp_path_factory.mktemp("matrix"), django_db_blocker)
    site = Site(root)
    site.snapshot(V1)
    assert run_with_faults(root, "update", "--version", V2).returncode == 0
    site.snapshot(V2)
    return site


def check_consistent(site: Site, before: str, after: str) -> str:
    """The invariants after recovery; returns what the site serves."""
    root = site.root
    serving = (root / "current").resolve().name
    assert serving in (before, after), serving
    assert run_with_faults(root, "migrate", "--check").returncode == 0, f"schema does not match {serving}"
    assert tables(root) == site.state[serving], f"tables differ from the state of {serving}"
    assert not (root / "shared" / "maintenance").exists(), "maintenance left on"
    for path in (root / "shared" / "updates").glob("*.json"):
        run = json.loads(path.read_text())
        if "steps" in run:
            assert run["status"] != "running", path.name
            assert all(step["status"] != "running" for step in run["steps"]), path.name
    return serving


UPDATE_KILLS = [
    "maintenance:before",
    "backup:before",
    "migrate:during",
    "migrate:after",
    "switch:during",
    "verify:before",
    "maintenance off:before",
]
# the last one is past the point of no return: left "incomplete", completed by recovery
UPDATE_FAILS = ["backup:after", "migrate:after", "switch:after", "verify:before", "maintenance off:before"]


@pytest.mark.parametrize(
    ("failpoint", "action"),
    [(point, "kill") for point in UPDATE_KILLS] + [(point, "fail") for point in UPDATE_FAILS],
)
def test_update_with_a_migration(site, failpoint, action):
    site.reset(V1)
    run = run_with_faults(site.root, "update", "--version", V2, failpoints=f"{failpoint}={action}")
    assert run.returncode == (-9 if action == "kill" else 1), run.stderr
    recovered = run_with_faults(site.root, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    serving = check_consistent(site, V1, V2)
    assert not (site.root / "releases" / V1 / ".helpdesk-bad").exists()
    reports.fault_matrix.append(("update (migration)", f"{action} at {failpoint}", f"serving {serving}"))


ROLLBACK_FAULTS = [
    ("migrate", "migrate back:after", "fail"),  # the case: reversed migrations, then a failure
    ("migrate", "switch:during", "fail"),  # the reload fails after the switch
    ("migrate", "maintenance:before", "kill"),
    ("migrate", "migrate back:during", "kill"),
    ("migrate", "switch:before", "kill"),
    ("migrate", "verify:before", "kill"),
    ("migrate", "maintenance off:before", "kill"),  # past verification: completed to v1.0.0
    ("restore", "safety backup:after", "kill"),
    ("restore", "restore:during", "kill"),
    ("restore", "restore:after", "kill"),
    ("restore", "switch:after", "fail"),
    ("restore", "maintenance off:before", "kill"),
    ("keep", "switch:during", "kill"),
    ("keep", "verify:before", "kill"),
    ("keep", "switch:after", "fail"),
]


@pytest.mark.parametrize(("db", "failpoint", "action"), ROLLBACK_FAULTS)
def test_rollback(site, db, failpoint, action):
    site.reset(V2)
    command = ["rollback", "--to", V1, "--db", db, "--no-input"]
    run = run_with_faults(site.root, *command, failpoints=f"{failpoint}={action}")
    assert run.returncode == (-9 if action == "kill" else 1), run.stderr
    if action == "fail":  # undone at once: exactly as before the rollback
        assert (site.root / "current").resolve().name == V2
        assert "failed and was undone" in run.stderr
    recovered = run_with_faults(site.root, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    if db == "keep":
        serving = (site.root / "current").resolve().name
        assert serving == V2 and not (site.root / "shared" / "maintenance").exists()
    else:
        serving = check_consistent(site, V2, V1)
    assert not list(site.root.glob("releases/*/.helpdesk-bad")), "a good release was marked bad"
    reports.fault_matrix.append((f"rollback --db {db}", f"{action} at {failpoint}", f"serving {serving}"))


def test_rollback_recover_killed_while_undoing_an_update(site):
    site.reset(V1)
    killed = run_with_faults(site.root, "update", "--version", V2, failpoints="verify:before=kill")
    assert killed.returncode == -9
    again = run_with_faults(site.root, "rollback", "--recover", failpoints="undo migrate:before=kill")
    assert again.returncode == -9
    recovered = run_with_faults(site.root, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    serving = check_consistent(site, V1, V2)
    assert serving == V1
    reports.fault_matrix.append(("rollback --recover", "kill at undo migrate:before", f"serving {serving}"))


@pytest.mark.parametrize(
    ("failpoint", "action", "expected"),
    [
        ("safety backup:after", "kill", "as before"),
        ("restore:during", "kill", "as before"),
        ("restore:after", "fail", "as before"),
        ("maintenance off:before", "kill", "restored"),  # past verification: completed
    ],
)
def test_restore_database_on_a_deployment(site, failpoint, action, expected):
    site.reset(V1)
    command = ["restore_database", str(site.baseline[V1]), "--no-input"]
    run_with_faults(site.root, "seed_demo", "--tickets", "5", "--orgs", "1")  # changes the restore undoes
    changed = tables(site.root)
    assert changed != site.state[V1]  # the rows a completed restore would throw away
    run = run_with_faults(site.root, *command, failpoints=f"{failpoint}={action}")
    assert run.returncode == (-9 if action == "kill" else 1), run.stderr
    recovered = run_with_faults(site.root, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    # undone: put back from the safety backup, as before the restore; completed: the backup's state
    assert tables(site.root) == (changed if expected == "as before" else site.state[V1])
    assert not (site.root / "shared" / "maintenance").exists()
    reports.fault_matrix.append(("restore_database", f"{action} at {failpoint}", f"database {expected}"))


@pytest.mark.parametrize(
    ("failpoint", "action"), [("switch:during", "kill"), ("verify:before", "fail"), ("backup:after", "kill")]
)
def test_update_without_migrations(site, failpoint, action):
    site.reset(V2)
    site.state.setdefault("v8.0.0", site.state[V2])  # v8.0.0 changes code only
    run = run_with_faults(site.root, "update", "--version", "v8.0.0", failpoints=f"{failpoint}={action}")
    assert run.returncode == (-9 if action == "kill" else 1), run.stderr
    recovered = run_with_faults(site.root, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    serving = check_consistent(site, V2, "v8.0.0")
    assert not (site.root / "releases" / V2 / ".helpdesk-bad").exists()
    reports.fault_matrix.append(("update (no migration)", f"{action} at {failpoint}", f"serving {serving}"))


@pytest.mark.parametrize(
    ("failpoint", "action"),
    [("migrate:during", "kill"), ("migrate:after", "fail"), ("verify:before", "kill")],
)
def test_safe_migrate(site, failpoint, action):
    site.reset(V2)
    assert run_with_faults(site.root, "migrate", "crm", "0003").returncode == 0  # one migration pending
    before = tables(site.root)
    run = run_with_faults(site.root, "safe_migrate", failpoints=f"{failpoint}={action}")
    assert run.returncode == (-9 if action == "kill" else 1), run.stderr
    recovered = run_with_faults(site.root, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    after = tables(site.root)
    assert after in (before, site.state[V2]), "neither the state before safe_migrate nor the migrated one"
    assert not (site.root / "shared" / "maintenance").exists()
    outcome = "migrated" if after == site.state[V2] else "as before"
    reports.fault_matrix.append(("safe_migrate", f"{action} at {failpoint}", f"database {outcome}"))
