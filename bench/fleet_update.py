"""Benchmark: a fleet of three app servers updated under load, the playbook against the handbook's way.

    .venv/bin/python bench/fleet_update.py [--clients 20] [--tickets 20000]

One throwaway MariaDB; three app servers on this machine (deployment roots made by
deploy/ansible/init.yml over a local sshd, each with its own gunicorn, 2 workers) behind HAProxy
(deploy/haproxy/haproxy.cfg); 20 clients on the balancer the whole time (logged-in agents on
/tickets/, two opening tickets through the API). The update is bench/update_downtime.py's v2.0.0 ->
v3.0.0: a nullable ticket field and an index (an online migration). In one run:

  (1) the playbook: deploy/ansible/update.yml -e version=v3.0.0 (prepare in parallel, the migration
      once on the primary, each server drained, switched, verified and put back)
  (2) one server alone: `update --version v3.0.0` on a single deployment root under the same load
      (the wall time the fleet's is compared with; goal: fleet <= 1.5x)
  (3) anchor, the handbook's scripts/deploy.sh run on each server in turn behind the same HAProxy:
      stop gunicorn, git checkout in place, pip install into the live venv, migrate, collectstatic,
      start gunicorn, wait for the new version

For each: requests, failed (connection errors, 5xx other than maintenance), 503 with Retry-After,
the longest gap without a successful response, wall time. Goal: (1) fails no request.
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from update_downtime import (  # noqa: E402  (the same tags, gunicorn and manage.py helpers)
    MONITORING_TOKEN,
    WRITERS,
    Outcome,
    _gunicorn,
    _manage,
    _tagged_repository,
    _wait_for_version,
)

from tests.support import fleet  # noqa: E402
from tests.support.deployments import git, wheelhouse_for  # noqa: E402
from tests.support.mariadb import MariaDBServer  # noqa: E402
from tests.support.processes import free_port, wait_until_serving  # noqa: E402
from tests.support.traffic import Load  # noqa: E402
from updater.release import venvs  # noqa: E402

FROM, TO = "v2.0.0", "v3.0.0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--tickets", type=int, default=20_000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name,
        MariaDBServer(Path(tmp_name) / "db") as server,
    ):
        tmp = Path(tmp_name)
        repo = _tagged_repository(tmp / "source")
        wheels = wheelhouse_for(REPO_ROOT / "requirements.txt")
        venv = venvs.ensure_venv(tmp / "venvs", REPO_ROOT / "requirements.txt", wheelhouse=wheels)
        print(
            f"3 app servers behind HAProxy, {args.clients} clients on the balancer ({WRITERS} opening "
            f"tickets), {args.tickets} tickets, MariaDB, {FROM} -> {TO} (an online migration)"
        )
        results = [
            _playbook(tmp / "fleet", repo, wheels, venv, server, args),
            _single(tmp / "single", repo, wheels, venv, server, args),
            _handbook(tmp / "handbook", repo, wheels, server, args),
        ]
    header = f"{'scenario':<44} {'reqs':>6} {'ok':>6} {'failed':>6} {'503':>6} {'max gap':>9} {'wall':>8}"
    print("\n" + header)
    for outcome in results:
        print(outcome.row())
    ours, single, anchor = results
    print(
        f"\nfleet wall time {ours.wall:.1f}s = {ours.wall / single.wall:.2f}x one server's update "
        f"({single.wall:.1f}s; goal <= 1.5x); the handbook's on each server in turn {anchor.wall:.1f}s"
    )
    print(
        f"longest gap without a successful request: playbook {ours.gap:.2f}s, handbook {anchor.gap:.2f}s "
        f"({anchor.gap / max(ours.gap, 1e-3):.1f}x shorter)"
    )


def _environment(path: Path, database_url: str, wheels: Path, **extra: str) -> Path:
    lines = {
        "ENVIRONMENT": "staging",
        "SECRET_KEY": "b" * 60,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "UPDATER_MIN_FREE_BYTES": "1000000",
        "UPDATER_WHEELHOUSE": str(wheels),
        "MONITORING_TOKEN": MONITORING_TOKEN,
        "LOG_LEVEL": "WARNING",
        "UPDATE_WINDOW_IMPORTANT": "always",
        "UPDATE_WINDOW_ROUTINE": "always",
        **extra,
    }
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def _under_load(base: str, clients: int, name: str, run) -> Outcome:
    load = Load(base, readers=clients - WRITERS, writers=WRITERS)
    load.start()
    time.sleep(3)  # steady state first
    start = time.time()
    note = run()
    wall = time.time() - start
    time.sleep(1)  # requests in flight end
    end = time.time()
    load.stop()
    return Outcome(name, load.between(start, end), wall, start, end, note)


def _playbook(tmp: Path, repo: Path, wheels: Path, venv: venvs.Venv, server, args) -> Outcome:
    server.create_database("fleet")
    tmp.mkdir()
    env_file = _environment(
        tmp / "fleet.env",
        server.url("fleet"),
        wheels,
        UPDATER_MAINTENANCE_FLAG=str(tmp / "shared-store" / "maintenance"),
    )
    site = fleet.Fleet(tmp)
    try:
        site.create(repo, FROM, env_file, wheels, (venv.key, venv.path))
        _manage(site.roots["app1"] / "current", "seed_demo", "--tickets", str(args.tickets), "--orgs", "20")
        site.serve_all(LOG_LEVEL="WARNING")

        def update() -> str:
            result = site.playbook("update.yml", version=TO, fleet_run="bench")
            if result.returncode != 0:
                raise RuntimeError(f"update.yml failed:\n{result.stdout[-3000:]}")
            return f"every server on {set(site.versions().values())}; {_stage_seconds(site)}"

        return _under_load(site.balancer.base, args.clients, "(1) playbook update.yml, 3 servers", update)
    finally:
        site.stop()


def _stage_seconds(site: fleet.Fleet) -> str:
    """Where the playbook's time went: each stage's seconds on each server, from their journals (the
    rest of the wall time is Ansible's: ssh, moving modules, starting manage.py)."""
    from updater.release.fleet import STAGES

    parts = []
    for stage, names in STAGES.items():
        seconds = [
            sum(
                step.get("seconds", 0)
                for step in site.journal(name, "bench")["steps"]
                if step["name"] in names
            )
            for name in site.roots
        ]
        if any(seconds):
            parts.append(f"{stage} " + "/".join(f"{value:.1f}" for value in seconds))
    return "seconds per server: " + ", ".join(parts)


def _single(tmp: Path, repo: Path, wheels: Path, venv: venvs.Venv, server, args) -> Outcome:
    server.create_database("single")
    tmp.mkdir()
    root, port = tmp / "srv", free_port()
    pidfile = root / "shared" / "gunicorn.pid"
    env_file = _environment(
        tmp / "single.env",
        server.url("single"),
        wheels,
        UPDATER_RELOAD_PIDFILE=str(pidfile),
        UPDATER_HEALTH_URL=f"http://127.0.0.1:{port}/monitoring/health/",
    )
    (root / "shared" / "venvs").mkdir(parents=True)
    (root / "shared" / "venvs" / venv.key).symlink_to(venv.path)
    init = ["init_deployment", "--root", str(root), "--repo", str(repo), "--version", FROM]
    _manage(REPO_ROOT, *init, "--env-file", str(env_file), "--wheelhouse", str(wheels))
    _manage(root / "current", "seed_demo", "--tickets", str(args.tickets), "--orgs", "20")
    gunicorn = _gunicorn(root / "current", root / "shared" / ".env", port, pidfile, chdir=root / "current")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base + "/monitoring/health/", gunicorn)

        def update() -> str:
            return _manage(root / "current", "update", "--version", TO).stdout.strip().splitlines()[0]

        return _under_load(base, args.clients, "(2) update --version, one server", update)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=60)


def _handbook(tmp: Path, repo: Path, wheels: Path, server, args) -> Outcome:
    """scripts/deploy.sh of the handbook on each of three servers in turn, behind the same HAProxy."""
    server.create_database("handbook")
    tmp.mkdir()
    env_file = _environment(tmp / "handbook.env", server.url("handbook"), wheels)
    offline = ["--disable-pip-version-check", "--no-index", "--find-links", str(wheels)]
    sites, ports, servers = {}, {}, {}
    for name in ("app1", "app2", "app3"):
        site = sites[name] = tmp / name
        git("clone", "-q", str(repo), str(site), cwd=tmp)
        git("checkout", "-q", FROM, cwd=site)
        subprocess.run([sys.executable, "-m", "venv", str(site / ".venv")], check=True)
        (site / ".env").write_text(env_file.read_text() + f"STATIC_ROOT={site / 'staticfiles'}\n")
        _pip(site, offline)
        ports[name] = free_port()
    for command in (["migrate", "-v", "0"], ["seed_demo", "--tickets", str(args.tickets), "--orgs", "20"]):
        _manage(sites["app1"], *command)
    for name, site in sites.items():
        _manage(site, "collectstatic", "--noinput", "-v", "0")
        servers[name] = _gunicorn(site, site / ".env", ports[name], site / "gunicorn.pid")
        wait_until_serving(f"http://127.0.0.1:{ports[name]}/monitoring/health/", servers[name])
    balancer = fleet.Balancer(tmp / "haproxy", ports)
    balancer.start()
    try:
        balancer.wait_all_up()

        def deploy_each() -> str:
            for name, site in sites.items():
                servers[name].send_signal(signal.SIGTERM)  # systemctl stop
                servers[name].wait(timeout=60)
                git("checkout", "-q", TO, cwd=site)
                _pip(site, offline)
                _manage(site, "migrate", "--noinput")
                _manage(site, "collectstatic", "--noinput", "-v", "0")
                servers[name] = _gunicorn(site, site / ".env", ports[name], site / "gunicorn.pid")
                _wait_for_version(f"http://127.0.0.1:{ports[name]}", TO)
            return "anchor"

        return _under_load(
            balancer.base, args.clients, "(3) handbook deploy.sh, each server in turn", deploy_each
        )
    finally:
        balancer.stop()
        for process in servers.values():
            process.terminate()
            process.wait(timeout=60)


def _pip(site: Path, offline: list[str]) -> None:
    python = str(site / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", *offline, "-r", "requirements.txt"], cwd=site, check=True
    )


if __name__ == "__main__":
    main()
