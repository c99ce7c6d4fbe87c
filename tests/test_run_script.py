"""The README's first command: the helpdesk comes up on SQLite with demo data, and its admin works."""

import os
import signal
import subprocess

import pytest
import requests

from tests.conftest import REPO_ROOT
from tests.support.processes import free_port, wait_until_serving


@pytest.fixture
def running_helpdesk(tmp_path):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_URL", "ENVIRONMENT"))
        },
        "ENV_FILE": str(env_file),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PORT": str(port),
    }
    log = tmp_path / "run.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # runserver's autoreloader forks; stop the whole group
        )
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base + "/login/", process, timeout=300)
    yield base, log
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_run_script_serves_demo_data_and_prints_working_logins(running_helpdesk):
    base, log = running_helpdesk
    output = log.read_text()
    assert "admin / admin" in output, output

    session = requests.Session()
    session.get(base + "/admin/login/", timeout=5)
    response = session.post(
        base + "/admin/login/?next=/admin/crm/ticket/",
        data={"username": "admin", "password": "admin", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.url.endswith("/admin/crm/ticket/")
    assert "500 tickets" in response.text  # the changelist paginator counts the demo tickets
