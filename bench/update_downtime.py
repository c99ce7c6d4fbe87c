"""Benchmark: what users see while the helpdesk is updated under load, against the handbook's way.

    .venv/bin/python bench/update_downtime.py [--clients 20] [--tickets 100000]

A real deployment root (init_deployment) on a throwaway MariaDB, served by gunicorn (2 workers,
HUP reload) from `current`, while 20 clients use it as fast as they can on the loopback: logged-in
agents fetching /tickets/, and two of them opening tickets through the API (tests/support/traffic.py).
Tags: v1.0.0 (this repository's HEAD), v1.0.1 (a change without migrations), v2.0.0 (a new field the
old code cannot insert without: a blocking migration), v3.0.0 (a nullable ticket field and an index:
online), v4.0.0 (v3.0.0's field dropped: contract). Scenarios, in one run:

  (a) update v1.0.0 -> v1.0.1 (no migrations)          target: zero failed requests
  (c) rollback v1.0.1 -> v1.0.0 (code only)             target: zero failed requests, <= 3 s
  (b) update v1.0.0 -> v2.0.0 (a migration)             target: 503 only inside the maintenance
                                                        window (as the journal timed it),
                                                        window <= backup + migrate + 2 s
  (e) update v2.0.0 -> v3.0.0 (online migration)        target: 0 failed, 0 x 503
  (f) update v3.0.0 -> v4.0.0 (contract migration)      target: 0 failed, 0 x 503
  (d) anchor, the handbook's procedure on its own clone and database: stop the server, git checkout
      in place, pip install into the live venv, backup_database --format sql, migrate,
      collectstatic, start the server.

For each: requests, failed (connection errors, 5xx other than maintenance), 503 with Retry-After,
the longest gap without a successful response, and the wall time of the command; for (e) and (f) the
rehearsal's measured migration time beside the live one.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.deployments import (  # noqa: E402
    clone_project,
    git,
    newest_migration,
    next_migration,
    wheelhouse_for,
)
from tests.support.mariadb import MariaDBServer  # noqa: E402
from tests.support.processes import free_port, wait_until_serving  # noqa: E402
from tests.support.traffic import FAILED, MAINTENANCE, OK, Load, Sample, count, longest_gap  # noqa: E402

MONITORING_TOKEN = "bench-monitoring-token"  # noqa: S105  (health tells its version to monitoring only)
MONITORING_HEADERS = {"Authorization": f"Bearer {MONITORING_TOKEN}"}

FIELD = '    phone = models.CharField(max_length=40, blank=True, default="")\n'
MIGRATION = f"""from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "{newest_migration()}")]
    operations = [
        migrations.AddField("organization", "phone", models.CharField(blank=True, default="", max_length=40)),
    ]
"""

REFERENCE = next_migration("ticket_reference", after=2)
DROP_REFERENCE = next_migration("remove_ticket_reference", after=3)
ONLINE_MIGRATION = f"""from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "{next_migration("organization_phone")}")]
    operations = [
        migrations.AddField("ticket", "reference", models.CharField(blank=True, max_length=40, null=True)),
        migrations.AddIndex("ticket", models.Index(fields=["reference"], name="crm_ticket_reference_idx")),
    ]
"""
CONTRACT_MIGRATION = f"""from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("crm", "{REFERENCE}")]
    operations = [
        migrations.RemoveIndex("ticket", "crm_ticket_reference_idx"),
        migrations.RemoveField("ticket", "reference"),
    ]
"""
WRITERS = 2


@dataclass
class Outcome:
    name: str
    samples: list[Sample]
    wall: float
    start: float
    end: float
    note: str = ""

    def row(self) -> str:
        ok, failed = count(self.samples, OK), count(self.samples, FAILED)
        maintenance = count(self.samples, MAINTENANCE)
        gap = longest_gap(self.samples, self.start, self.end)
        counts = f"{len(self.samples):>6} {ok:>6} {failed:>6} {maintenance:>6}"
        return f"{self.name:<44} {counts} {gap:>8.2f}s {self.wall:>7.2f}s  {self.note}"

    @property
    def gap(self) -> float:
        return longest_gap(self.samples, self.start, self.end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--tickets", type=int, default=100_000)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="bench-downtime-") as tmp_name,
        MariaDBServer(Path(tmp_name) / "db") as server,
    ):
        tmp = Path(tmp_name)
        repo = _tagged_repository(tmp / "source")
        wheels = wheelhouse_for(REPO_ROOT / "requirements.txt")
        print(
            f"{args.clients} clients as an agent ({args.clients - WRITERS} on /tickets/, {WRITERS} opening "
            f"tickets through the API), {args.tickets} tickets, MariaDB, 2 workers"
        )
        results = _updater_scenarios(tmp, repo, wheels, server, args)
        results.append(_handbook_scenario(tmp, repo, wheels, server, args))
        header = f"{'scenario':<44} {'reqs':>6} {'ok':>6} {'failed':>6} {'503':>6} {'max gap':>9} {'wall':>8}"
        print("\n" + header)
        for outcome in results:
            print(outcome.row())
        anchor, ours = results[-1], results[2]
        ratio = anchor.gap / max(ours.gap, 1e-3)
        print(
            f"\nlongest gap without a successful request: handbook {anchor.gap:.2f}s, "
            f"update with a migration {ours.gap:.2f}s ({ratio:.1f}x shorter)"
        )
        for online in results[3:5]:
            print(
                f"{online.name}: {count(online.samples, FAILED)} failed, "
                f"{count(online.samples, MAINTENANCE)} x 503, longest gap {online.gap:.2f}s "
                f"({anchor.gap / max(online.gap, 1e-3):.1f}x shorter than the handbook's)"
            )


def _tagged_repository(path: Path) -> Path:
    repo = clone_project(path)
    git("tag", "v1.0.0", cwd=repo)
    css = repo / "crm" / "static" / "crm" / "helpdesk.css"
    css.write_text(css.read_text() + "\n/* v1.0.1 */\n")
    _commit_tag(repo, "v1.0.1", "fix: a change without migrations")
    models = repo / "crm" / "models.py"
    email = '    email = models.EmailField(_("email"), blank=True)\n'
    models.write_text(models.read_text().replace(email, email + FIELD, 1))
    (repo / "crm" / "migrations" / f"{next_migration('organization_phone')}.py").write_text(MIGRATION)
    _commit_tag(repo, "v2.0.0", "feat: organizations get a phone number")
    resolution = '    resolution_notes = models.TextField(_("resolution notes"), blank=True, default="")\n'
    reference = "    reference = models.CharField(max_length=40, null=True, blank=True)\n"
    indexes = "        indexes = [\n"
    index = '            models.Index(fields=["reference"], name="crm_ticket_reference_idx"),\n'
    with_phone = models.read_text()
    with_reference = with_phone.replace(resolution, resolution + reference, 1)
    models.write_text(with_reference.replace(indexes, indexes + index, 1))
    (repo / "crm" / "migrations" / f"{REFERENCE}.py").write_text(ONLINE_MIGRATION)
    _commit_tag(repo, "v3.0.0", "feat: tickets get an optional reference (online migration)")
    models.write_text(with_phone)
    (repo / "crm" / "migrations" / f"{DROP_REFERENCE}.py").write_text(CONTRACT_MIGRATION)
    _commit_tag(repo, "v4.0.0", "refactor: the reference goes (contract migration)")
    return repo


def _commit_tag(repo: Path, tag: str, message: str) -> None:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    git("tag", tag, cwd=repo)


def _updater_scenarios(tmp: Path, repo: Path, wheels: Path, server: MariaDBServer, args) -> list[Outcome]:
    server.create_database("deployed")
    root, port = tmp / "srv", free_port()
    pidfile = root / "shared" / "gunicorn.pid"
    env_file = tmp / "deployed.env"
    env_file.write_text(
        f"ENVIRONMENT=staging\nSECRET_KEY={'b' * 60}\nALLOWED_HOSTS=127.0.0.1\n"
        f"DATABASE_URL={server.url('deployed')}\n"
        f"UPDATER_MIN_FREE_BYTES=1000000\nUPDATER_WHEELHOUSE={wheels}\nUPDATER_RELOAD_PIDFILE={pidfile}\n"
        f"UPDATER_HEALTH_URL=http://127.0.0.1:{port}/monitoring/health/\nLOG_LEVEL=WARNING\n"
        f"MONITORING_TOKEN={MONITORING_TOKEN}\n"
        "UPDATE_WINDOW_IMPORTANT=always\nUPDATE_WINDOW_ROUTINE=always\n"
    )
    _manage(
        REPO_ROOT,
        "init_deployment",
        "--root",
        str(root),
        "--repo",
        str(repo),
        "--version",
        "v1.0.0",
        "--env-file",
        str(env_file),
        "--wheelhouse",
        str(wheels),
    )
    _manage(root / "current", "seed_demo", "--tickets", str(args.tickets), "--orgs", "20")
    gunicorn = _gunicorn(root / "current", root / "shared" / ".env", port, pidfile, chdir=root / "current")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base + "/monitoring/health/", gunicorn)
        load = Load(base, readers=args.clients - WRITERS, writers=WRITERS)
        load.start()
        time.sleep(3)  # steady state first
        results = [
            _timed(load, "(a) update, no migrations", root, "update", "--version", "v1.0.1"),
            _timed(load, "(c) rollback, code only", root, "rollback", health=(base, "v1.0.0")),
        ]
        outcome = _timed(load, "(b) update with a migration", root, "update", "--version", "v2.0.0")
        outcome.note = _maintenance_note(outcome, root)
        results.append(outcome)
        for name, tag in (
            ("(e) update, online migration", "v3.0.0"),
            ("(f) update, contract migration", "v4.0.0"),
        ):
            outcome = _timed(load, name, root, "update", "--version", tag)
            outcome.note = _maintenance_note(outcome, root) + "; " + _rehearsal_note(root)
            results.append(outcome)
        load.stop()
        return results
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=60)


def _timed(
    load: Load, name: str, root: Path, *command: str, health: tuple[str, str] | None = None
) -> Outcome:
    start = time.time()
    result = _manage(root / "current", *command)
    wall = time.time() - start
    note = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    if health:
        _wait_for_version(*health)
        note += f" (new version served after {time.time() - start:.2f}s)"
    time.sleep(1)  # let requests in flight finish
    end = time.time()
    return Outcome(name, load.between(start, end), wall, start, end, note)


def _maintenance_note(outcome: Outcome, root: Path) -> str:
    """Maintenance as the journal timed it (epoch seconds), and any 503 seen outside it."""
    journal = json.loads(sorted((root / "shared" / "updates").glob("*-update.json"))[-1].read_text())
    facts = journal["facts"]
    if not facts.get("maintenance_since"):
        return "maintenance never on"
    on, off = facts["maintenance_since"], facts["maintenance_until"]
    outside = [
        s for s in outcome.samples if s.outcome == "maintenance" and (s.finished < on or s.started > off)
    ]
    steps = {s["name"]: s["seconds"] for s in journal["steps"]}
    budget = steps.get("backup", 0) + steps.get("migrate", 0) + 2
    return (
        f"maintenance {off - on:.2f}s (budget backup+migrate+2 = {budget:.2f}s), "
        f"503 outside it: {len(outside)}"
    )


def _rehearsal_note(root: Path) -> str:
    """The rehearsal's measured time for the migrations beside the live run's."""
    journal = json.loads(sorted((root / "shared" / "updates").glob("*-update.json"))[-1].read_text())
    facts = journal["facts"]
    rehearsed = sum(facts.get("rehearsal", {}).get("migrations", {}).values())
    live = sum(facts.get("migrated_seconds", {}).values())
    return f"migrations rehearsed {rehearsed:.2f}s, live {live:.2f}s"


def _handbook_scenario(tmp: Path, repo: Path, wheels: Path, server: MariaDBServer, args) -> Outcome:
    """The handbook's deploy: everything in place, the server stopped for the whole of it."""
    server.create_database("handbook")
    site = tmp / "handbook"
    git("clone", "-q", str(repo), str(site), cwd=tmp)
    git("checkout", "-q", "v1.0.0", cwd=site)
    subprocess.run([sys.executable, "-m", "venv", str(site / ".venv")], check=True)
    offline = ["--disable-pip-version-check", "--no-index", "--find-links", str(wheels)]
    pip = [
        str(site / ".venv" / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        *offline,
        "-r",
        "requirements.txt",
    ]
    subprocess.run(pip, cwd=site, check=True)
    env_file = site / ".env"
    env_file.write_text(
        f"ENVIRONMENT=staging\nSECRET_KEY={'h' * 60}\nALLOWED_HOSTS=127.0.0.1\n"
        f"DATABASE_URL={server.url('handbook')}\n"
        f"BACKUP_DIR={tmp / 'handbook-backups'}\nSTATIC_ROOT={site / 'staticfiles'}\nLOG_LEVEL=WARNING\n"
        f"MONITORING_TOKEN={MONITORING_TOKEN}\n"
    )
    for command in (
        ["migrate", "-v", "0"],
        ["collectstatic", "--noinput", "-v", "0"],
        ["seed_demo", "--tickets", str(args.tickets), "--orgs", "20"],
    ):
        _manage(site, *command)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn = _gunicorn(site, env_file, port, site / "gunicorn.pid")
    wait_until_serving(base + "/monitoring/health/", gunicorn)
    load = Load(base, readers=args.clients - WRITERS, writers=WRITERS)
    load.start()
    time.sleep(3)
    start = time.time()
    gunicorn.send_signal(signal.SIGTERM)  # systemctl stop apache2
    gunicorn.wait(timeout=60)
    git("checkout", "-q", "v2.0.0", cwd=site)
    subprocess.run(pip, cwd=site, check=True)
    _manage(site, "backup_database", "--format", "sql")
    _manage(site, "migrate", "--noinput")
    _manage(site, "collectstatic", "--noinput")
    gunicorn = _gunicorn(site, env_file, port, site / "gunicorn.pid")  # systemctl start apache2
    _wait_for_version(base, "v2.0.0")
    wall = time.time() - start
    time.sleep(1)
    end = time.time()
    load.stop()
    gunicorn.terminate()
    gunicorn.wait(timeout=60)
    return Outcome(
        "(d) handbook: stop, checkout, pip, migrate", load.between(start, end), wall, start, end, "anchor"
    )


def _gunicorn(
    where: Path, env_file: Path, port: int, pidfile: Path, chdir: Path | None = None
) -> subprocess.Popen:
    env = {
        "PATH": os.environ["PATH"],
        "ENV_FILE": str(env_file),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_PIDFILE": str(pidfile),
        "GUNICORN_ACCESSLOG": "",
        "GUNICORN_CHDIR": str(chdir or where),
    }
    command = [str(where / ".venv" / "bin" / "python"), "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]
    return subprocess.Popen(command, cwd=where, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_version(base: str, version: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            health = requests.get(base + "/monitoring/health/", timeout=2, headers=MONITORING_HEADERS)
            if health.json().get("version") == version:
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{base} did not serve {version} within {timeout}s")


def _manage(where: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    env_file = where / ".env"
    if where.name == "current":
        env["ENV_FILE"] = str(where.resolve().parent.parent / "shared" / ".env")
    elif env_file.exists():
        env["ENV_FILE"] = str(env_file)
    python = where / ".venv" / "bin" / "python" if where != REPO_ROOT else Path(sys.executable)
    result = subprocess.run(
        [str(python), "manage.py", *args], cwd=where, env=env, capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


if __name__ == "__main__":
    main()
