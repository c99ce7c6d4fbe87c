"""Before a migration drops what the previous release reads, the updater waits until none of that
release's app-server workers is left (updater/release/reload.py wait_until_only). A real parent
process stands for gunicorn's master, its real children for the workers, each working in the
release it was started from."""

import subprocess
import sys
import time

import pytest

from updater.errors import UpdateFailed
from updater.release.reload import wait_until_only

# A "master" that starts two "workers" in the folder it is given, and lives until killed.
MASTER = """
import subprocess, sys, time
workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], cwd=sys.argv[1])
           for _ in range(2)]
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def releases(tmp_path):
    old, new = tmp_path / "releases" / "v1", tmp_path / "releases" / "v2"
    old.mkdir(parents=True)
    new.mkdir()
    return old, new


def start_master(folder, pidfile):
    master = subprocess.Popen([sys.executable, "-c", MASTER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert master.stdout.readline().strip() == "ready"
    pidfile.write_text(f"{master.pid}\n")
    return master


def stop(master):
    subprocess.run(["pkill", "-P", str(master.pid)], check=False)
    master.kill()
    master.wait()


def test_workers_of_the_previous_release_hold_the_drop_back_until_the_timeout(releases, tmp_path, settings):
    old, new = releases
    settings.UPDATER_RELOAD_PIDFILE = str(tmp_path / "gunicorn.pid")
    master = start_master(old, tmp_path / "gunicorn.pid")
    try:
        started = time.monotonic()
        with pytest.raises(
            UpdateFailed, match=r"app server workers \d+, \d+ still run other code than v2 after 1s"
        ):
            wait_until_only(new, timeout=1)
        assert time.monotonic() - started >= 1  # it waited for them
        wait_until_only(old, timeout=1)  # the release they do run: nothing to wait for
    finally:
        stop(master)


def test_a_symlinked_current_counts_as_the_release_it_points_to(releases, tmp_path, settings):
    old, new = releases
    current = tmp_path / "current"
    current.symlink_to(new)
    settings.UPDATER_RELOAD_PIDFILE = str(tmp_path / "gunicorn.pid")
    master = start_master(current, tmp_path / "gunicorn.pid")
    try:
        wait_until_only(new, timeout=1)
        with pytest.raises(UpdateFailed):
            wait_until_only(old, timeout=0)
    finally:
        stop(master)


def test_no_app_server_means_nothing_to_wait_for(releases, tmp_path, settings):
    _, new = releases
    settings.UPDATER_RELOAD_PIDFILE = str(tmp_path / "gone.pid")  # no such file: no server running
    wait_until_only(new, timeout=5)
    settings.UPDATER_RELOAD_PIDFILE = ""
    settings.UPDATER_RELOAD_COMMAND = ""
    started = time.monotonic()
    wait_until_only(new, timeout=5)
    assert time.monotonic() - started < 5  # nothing reloaded by the updater, nothing to drain


def test_behind_a_reload_command_the_workers_cannot_be_seen_so_the_grace_period_is_waited(releases, settings):
    _, new = releases
    settings.UPDATER_RELOAD_PIDFILE = ""
    settings.UPDATER_RELOAD_COMMAND = "/bin/true"
    started = time.monotonic()
    wait_until_only(new, timeout=1)
    assert time.monotonic() - started >= 1
