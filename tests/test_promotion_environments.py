"""DEV -> TEST -> STAGING -> PROD for real: three deployment roots on this machine (test, staging and
prod), test and staging served by their own gunicorn, each environment's promotion gate asking its
predecessor over HTTP on the loopback with a token and a signing key. Time passing on a predecessor is
its journal dated back (the soak is a day)."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.processes import free_port, wait_until_serving
from tests.test_update import (  # noqa: F401 (module fixtures shared with the update tests)
    _deploy,
    first_venv,
    run_manage,
    serve_current,
    tagged_repo,
    wheelhouse,
)

pytestmark = pytest.mark.slow

TOKENS = {name: f"{name}-promotion-token-" + "x" * 20 for name in ("test", "staging")}
KEYS = {name: f"{name}-signing-key-" + "y" * 30 for name in ("test", "staging")}


def _configure(root: Path, **values: str) -> None:
    with (root / "shared" / ".env").open("a") as env_file:  # later lines win
        env_file.writelines(f"{key}={value}\n" for key, value in values.items())


def _environment(root: Path, name: str, predecessor: str | None, url: str | None = None) -> None:
    values = {"ENVIRONMENT": name, "UPDATER_REHEARSE": "False", "UPDATER_SOAK_HOURS_IMPORTANT": "24"}
    if name in TOKENS:
        values |= {"PROMOTION_TOKEN": TOKENS[name], "PROMOTION_SIGNING_KEY": KEYS[name]}
    if predecessor:
        values |= {
            "UPDATER_PROMOTION_SOURCE": f"{url}/monitoring/releases/",
            "UPDATER_PROMOTION_SOURCE_TOKEN": TOKENS[predecessor],
            "UPDATER_PROMOTION_SOURCE_KEY": KEYS[predecessor],
        }
    _configure(root, **values)


def _soak_passes(root: Path, hours: float = 25) -> None:
    """The newest successful update of `root` finished `hours` ago."""
    newest = sorted((root / "shared" / "updates").glob("*-update.json"))[-1]
    run = json.loads(newest.read_text())
    assert run["status"] == "succeeded"
    run["finished_at"] = (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="seconds")
    newest.write_text(json.dumps(run))


def manage(root: Path, *args: str):
    return run_manage(root / "current", *args)


def test_a_release_goes_test_then_staging_then_prod_only_after_soaking_on_each(
    tagged_repo,  # noqa: F811
    wheelhouse,  # noqa: F811
    first_venv,  # noqa: F811
    tmp_path,
    django_db_blocker,
):
    roots = {
        name: _deploy(tagged_repo, wheelhouse, first_venv, tmp_path / name, django_db_blocker, tickets=5)
        for name in ("test", "staging", "prod")
    }
    ports = {name: free_port() for name in ("test", "staging")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    _environment(roots["test"], "test", None)
    _environment(roots["staging"], "staging", "test", urls["test"])
    _environment(roots["prod"], "prod", "staging", urls["staging"])
    servers = {}
    try:
        for name in ("test", "staging"):
            servers[name] = serve_current(roots[name], port=ports[name])
            wait_until_serving(f"{urls[name]}/monitoring/health/", servers[name][0])

        refused = manage(roots["staging"], "update", "--version", "v2.0.0")
        assert refused.returncode == 2, refused.stderr
        assert "v2.0.0 has not run on test; update test to it first" in refused.stderr

        assert manage(roots["test"], "update", "--version", "v2.0.0").returncode == 0
        soaking = manage(roots["staging"], "update", "--version", "v2.0.0")
        assert soaking.returncode == 2
        # hours with one decimal: a slow machine may take minutes between the steps
        assert re.search(
            r"v2\.0\.0 has run on test for 0(\.\d)? h of the required 24 h \(important", soaking.stderr
        )
        assert (roots["staging"] / "current").resolve().name == "v1.0.0"  # nothing changed

        _soak_passes(roots["test"])
        promoted = manage(roots["staging"], "update", "--version", "v2.0.0")
        assert promoted.returncode == 0, promoted.stderr

        plan = manage(roots["prod"], "update_plan", "--version", "v2.0.0")
        assert plan.returncode == 0, plan.stderr
        journey = re.search(r"^  v2\.0\.0 \(target\): (.*)$", plan.stdout, re.M)[1]
        assert journey.startswith("prod: never ran; staging: succeeded, serving since ")
        assert "; test: succeeded, serving since " in journey and re.search(r"25(\.\d)? h healthy", journey)
        assert re.search(
            r"Promotion: REFUSED: v2\.0\.0 has run on staging for 0(\.\d)? h of the required 24 h",
            plan.stdout,
        )
        assert manage(roots["prod"], "update", "--version", "v2.0.0").returncode == 2

        _soak_passes(roots["staging"])
        taken = manage(roots["prod"], "update", "--version", "v2.0.0")
        assert taken.returncode == 0, taken.stderr
        report = manage(roots["prod"], "update_report", "--last").stdout
        assert re.search(
            r"promotion: v2\.0\.0 has run healthy on staging for 25(\.\d)? h \(required 24 h\)", report
        )

        # A release that failed on staging (taken there past the gate) never reaches prod.
        forced = ("--skip-promotion", "--reason", "trying a fix test never ran")
        failed = manage(roots["staging"], "update", "--version", "v3.0.0", *forced)
        assert failed.returncode == 1, failed.stderr
        refused = manage(roots["prod"], "update", "--version", "v3.0.0")
        assert refused.returncode == 2
        assert "v3.0.0 rolled back on staging at " in refused.stderr
        assert "fails half-way on purpose" in refused.stderr

        # A human may take a tag without the predecessor's word, saying why; the report says it too.
        assert (
            "v8.0.0 has not run on staging" in manage(roots["prod"], "update", "--version", "v8.0.0").stderr
        )
        reason = "security fix approved by Ewa (ticket #4711)"
        skipped = manage(
            roots["prod"], "update", "--version", "v8.0.0", "--skip-promotion", "--reason", reason
        )
        assert skipped.returncode == 0, skipped.stderr
        report = manage(roots["prod"], "update_report", "--last").stdout
        assert "promotion gate SKIPPED by " in report and reason in report

        # auto_update waits quietly for a newer tag to soak; it never takes one staging has not run.
        waiting = manage(roots["prod"], "auto_update", "--dry-run", "--no-fetch")
        assert waiting.returncode == 0, waiting.stderr
        assert re.search(r"Would wait: v\d+\.0\.0 \(v\d+\.0\.0 has not run on staging", waiting.stdout)

        # A predecessor that cannot be asked refuses; it never allows.
        server, _ = servers.pop("test")
        server.terminate()
        server.wait(timeout=30)
        unreachable = manage(roots["staging"], "update", "--version", "v8.0.0")
        assert unreachable.returncode == 2
        assert (
            "could not be reached" in unreachable.stderr and "--skip-promotion --reason" in unreachable.stderr
        )
        auto = manage(roots["staging"], "auto_update", "--no-fetch")
        assert auto.returncode == 2
        assert (
            "auto_update refused: the predecessor at " in auto.stderr and "nothing was updated" in auto.stderr
        )
        assert (roots["staging"] / "current").resolve().name == "v2.0.0"
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=30)
