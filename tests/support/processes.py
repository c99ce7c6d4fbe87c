"""Helpers for tests and benchmarks that run real servers on the loopback."""

import os
import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(
    url: str, process: subprocess.Popen | None = None, timeout: float = 60, verify: bool | str = True
) -> None:
    """Poll url until anything answers; fail early if the server process died. `verify`: the CA
    bundle of a test's own certificate, for HTTPS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering {url}")
        try:
            requests.get(url, timeout=5, verify=verify)
            return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or a first request still loading
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout}s")


def start_gunicorn(env: dict[str, str], cwd: Path, python: str, log: Path | None = None) -> subprocess.Popen:
    """gunicorn with the project's deploy/gunicorn.conf.py; GUNICORN_* variables in env configure it."""
    output = log.open("w") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [python, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        env=env,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def login(base: str, username: str, password: str) -> requests.Session:
    """A requests session logged in through the login form (CSRF token included)."""
    session = requests.Session()
    session.get(base + "/login/", timeout=10)
    response = session.post(
        base + "/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=10,
    )
    response.raise_for_status()
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"could not log in as {username}")
    return session


def gunicorn_environment(tmp: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's helpdesk under gunicorn (2 workers, no access log) on a free
    loopback port: settings from variables only (an empty ENV_FILE), files under tmp; extra on top."""
    env_file = tmp / "bench.env"
    env_file.write_text("")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "ENV_FILE": str(env_file),
        "ENVIRONMENT": "test",
        "SECRET_KEY": "bench-" + "k" * 60,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "STATIC_ROOT": str(tmp / "static"),
        "MEDIA_ROOT": str(tmp / "media"),
        "LOG_LEVEL": "WARNING",
        "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_ACCESSLOG": "",
        **extra,
    }
