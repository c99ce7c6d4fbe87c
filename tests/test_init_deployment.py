"""init_deployment on a real repository of this project: a deployment root that gunicorn serves."""

import os
import re
import stat
import subprocess
import sys
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from tests.support.deployments import REPO_ROOT, clone_project, git, wheelhouse_for
from tests.support.processes import free_port, wait_until_serving


@pytest.fixture(scope="module")
def project_repo(tmp_path_factory):
    repo = clone_project(tmp_path_factory.mktemp("project") / "helpdesk")
    git("tag", "v1.0.0", cwd=repo)
    return repo


@pytest.fixture(scope="module")
def wheelhouse():
    return wheelhouse_for(REPO_ROOT / "requirements.txt")


def init(root, repo, tag, wheelhouse) -> str:
    out = StringIO()
    call_command(
        "init_deployment",
        "--root",
        str(root),
        "--repo",
        str(repo),
        "--version",
        tag,
        "--wheelhouse",
        str(wheelhouse),
        stdout=out,
    )
    return out.getvalue()


def test_init_deployment_builds_a_root_that_serves_the_tag(project_repo, wheelhouse, tmp_path):
    root = tmp_path / "srv"
    output = init(root, project_repo, "v1.0.0", wheelhouse)

    release = root / "releases" / "v1.0.0"
    assert (root / "current").resolve() == release
    assert f"{root / 'current'} -> {release}" in output
    assert stat.S_IMODE((root / "shared" / ".env").stat().st_mode) == 0o600
    assert (release / ".venv").resolve().parent == root / "shared" / "venvs"
    assert (release / "VERSION").read_text().strip() == "v1.0.0"
    assert (root / "shared" / "db.sqlite3").exists()  # migrated

    port = free_port()
    env = {"PATH": os.environ["PATH"], "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1"}
    python = str(root / "current" / ".venv" / "bin" / "python")
    server = subprocess.Popen(
        [python, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        cwd=root / "current",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/monitoring/health/", server)
        health = f"http://127.0.0.1:{port}/monitoring/health/"
        assert requests.get(health, timeout=5).json() == {"status": "pass"}  # anonymous: no version
        token = re.search(r"^MONITORING_TOKEN=(\S+)$", (root / "shared" / ".env").read_text(), re.M)[1]
        authorized = requests.get(health, timeout=5, headers={"Authorization": f"Bearer {token}"}).json()
        assert authorized == {"status": "pass", "version": "v1.0.0"}  # the token init_deployment generated
    finally:
        server.terminate()
        server.wait(timeout=30)

    again = init(root, project_repo, "v1.0.0", wheelhouse)  # idempotent
    assert "already points" in again and "venv reused" in again


@pytest.mark.parametrize("version", ["v1;rm -rf /", "main", "v9.9.9"])
def test_init_deployment_refuses_what_is_not_a_tag(project_repo, wheelhouse, tmp_path, version):
    with pytest.raises(CommandError) as error:
        init(tmp_path / "srv", project_repo, version, wheelhouse)
    assert error.value.returncode == 2
    assert not (tmp_path / "srv" / "current").exists()
    assert (
        not list((tmp_path / "srv" / "releases").glob("*"))
        if (tmp_path / "srv" / "releases").exists()
        else True
    )


def test_update_commands_outside_a_deployment_name_init_deployment(settings):
    from updater.layout import NotADeployment, find_root

    settings.UPDATER_ROOT = ""
    with pytest.raises(NotADeployment, match="init_deployment --root DIR --repo URL_OR_PATH --version TAG"):
        find_root()


def test_django_version_flag_does_not_shadow_ours():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), "init_deployment", "--version"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "expected one argument" in result.stderr  # our option, wanting a tag — not Django's version
