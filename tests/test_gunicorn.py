"""The production configuration is served by a real gunicorn: pages render, static files come through."""

import os
import subprocess
import sys

import pytest
import requests

from tests.conftest import REPO_ROOT
from tests.support.processes import free_port, start_gunicorn, wait_until_serving
from tests.test_settings import PROD


@pytest.fixture(scope="module")
def gunicorn_prod(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))},
        **PROD,
        "ALLOWED_HOSTS": "127.0.0.1",
        "HTTPS": "False",  # plain HTTP on the loopback, as behind a TLS-terminating proxy
        "ENV_FILE": str(env_file),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp_path / "static"),
        "LOG_FILE": str(tmp_path / "helpdesk.log"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_PIDFILE": str(tmp_path / "gunicorn.pid"),
    }
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    for command in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        subprocess.run([*manage, *command], env=env, check=True, cwd=REPO_ROOT, timeout=120)
    server = start_gunicorn(env, REPO_ROOT, sys.executable)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base + "/admin/login/", server)
    yield base, tmp_path
    server.terminate()
    server.wait(timeout=30)


def test_gunicorn_serves_the_admin_login_page_in_prod(gunicorn_prod):
    base, _ = gunicorn_prod
    response = requests.get(base + "/admin/login/", timeout=5)
    assert response.status_code == 200
    assert 'name="username"' in response.text
    assert response.headers["X-Frame-Options"] == "DENY"


def test_gunicorn_serves_hashed_static_files_through_whitenoise(gunicorn_prod):
    base, static_root = gunicorn_prod
    css = next((static_root / "static" / "admin" / "css").glob("base.*.css"))
    response = requests.get(f"{base}/static/admin/css/{css.name}", timeout=5)
    assert response.status_code == 200
    assert "max-age=315360000" in response.headers["Cache-Control"]


def test_unknown_host_is_refused_in_prod(gunicorn_prod):
    base, _ = gunicorn_prod
    response = requests.get(base + "/admin/login/", headers={"Host": "evil.example"}, timeout=5)
    assert response.status_code == 400
