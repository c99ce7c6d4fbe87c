"""Telling the app server that `current` moved, and waiting until it serves the new version."""

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import psutil
import requests
from django.conf import settings

from updater.errors import UpdateFailed

RELOAD_TIMEOUT = 120


def reload_app_server() -> None:
    """UPDATER_RELOAD_COMMAND (an argument list, never a shell), or SIGHUP to UPDATER_RELOAD_PIDFILE."""
    if settings.UPDATER_RELOAD_COMMAND:
        result = subprocess.run(
            shlex.split(settings.UPDATER_RELOAD_COMMAND),
            capture_output=True,
            text=True,
            timeout=RELOAD_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise UpdateFailed(f"the reload command failed: {(result.stderr or result.stdout).strip()}")
    elif settings.UPDATER_RELOAD_PIDFILE:
        pid = int(Path(settings.UPDATER_RELOAD_PIDFILE).read_text().strip())
        os.kill(pid, signal.SIGHUP)


def _monitoring_headers() -> dict[str, str]:
    """The health endpoint tells its version only to monitoring (a token or an allowed network)."""
    token = settings.MONITORING_TOKEN
    return {"Authorization": f"Bearer {token}"} if token else {}


def wait_for_version(url: str, version: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5, headers=_monitoring_headers())
            if not response.ok:
                seen = f"HTTP {response.status_code}"
            else:
                seen = response.json().get(
                    "version", "an answer without the version: is MONITORING_TOKEN set?"
                )
            if seen == version:
                return
        except (requests.RequestException, ValueError) as error:
            seen = str(error)
        time.sleep(0.5)
    raise UpdateFailed(f"{url} did not report {version} within {timeout:.0f}s (last: {seen})")


def wait_until_only(release: Path, timeout: float | None = None) -> None:
    """Wait until no worker of the app server runs another release's code: before a migration drops
    what that code reads (a contract migration; migrating back after a switch back). A HUP only asks
    gunicorn's old workers to finish their requests; they serve until they have.

    With UPDATER_RELOAD_PIDFILE the workers are seen: each runs from the release it was started in
    (its working directory). Behind a reload command they cannot be: wait UPDATER_DRAIN_SECONDS.
    With neither, the updater reloads no app server and has none to wait for."""
    timeout = settings.UPDATER_DRAIN_SECONDS if timeout is None else timeout
    if not settings.UPDATER_RELOAD_PIDFILE:
        if settings.UPDATER_RELOAD_COMMAND:
            time.sleep(timeout)
        return
    wanted = release.resolve()
    deadline = time.monotonic() + timeout
    while True:
        others = _workers_not_in(wanted)
        if not others:
            return
        if time.monotonic() >= deadline:
            raise UpdateFailed(
                f"app server workers {', '.join(map(str, others))} still run other code than "
                f"{release.name} after {timeout:.0f}s"
            )
        time.sleep(0.2)


def _workers_not_in(release: Path) -> list[int]:
    try:
        master = psutil.Process(int(Path(settings.UPDATER_RELOAD_PIDFILE).read_text().strip()))
        workers = master.children()
    except (OSError, ValueError, psutil.Error):
        return []  # no app server running: no old code serving either
    others = []
    for worker in workers:
        try:
            if Path(worker.cwd()).resolve() != release:
                others.append(worker.pid)
        except psutil.Error:  # exited meanwhile
            continue
    return others
