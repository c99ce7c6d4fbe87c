"""update_system with real apt and dpkg, against a file repository the tests build with dpkg-deb.

apt is pointed at its own sources list, lists and cache (SYSTEM_APT_CONFIG), so the machine's sources
are never read; the test packages (helpdesk-test-*) are installed for real and purged afterwards.
No network is used and no real system package is upgraded.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support import machine
from updater.system import system_update

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("dpkg-scanpackages"), reason="needs root and dpkg-dev"
    ),
]

DUMMY, HELD = "helpdesk-test-dummy", "helpdesk-test-held"
CONFFILE = Path("/etc/helpdesk-test-dummy.conf")


class Repository:
    """A flat apt repository (Packages + Release, labelled as a security origin) and an apt.conf for it."""

    def __init__(self, base: Path) -> None:
        self.base, self.debs = base, base / "repo"
        self.debs.mkdir(parents=True)
        for folder in ("lists/partial", "cache/archives/partial", "sources.list.d"):
            (base / folder).mkdir(parents=True)
        (base / "sources.list").write_text(f"deb [trusted=yes] file:{self.debs} ./\n")
        self.apt_conf = base / "apt.conf"
        self.apt_conf.write_text(
            f'Dir::Etc::SourceList "{base / "sources.list"}";\n'
            f'Dir::Etc::SourceParts "{base / "sources.list.d"}";\n'
            f'Dir::State::Lists "{base / "lists"}";\nDir::Cache "{base / "cache"}";\n'
        )

    def add(self, name: str, version: str, *, postinst_fails: bool = False) -> None:
        tree = self.base / f"build-{name}-{version}"
        (tree / "DEBIAN").mkdir(parents=True)
        (tree / "etc").mkdir()
        (tree / "usr" / "share" / name).mkdir(parents=True)
        (tree / "DEBIAN" / "control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Tests <t@example.org>\n"
            f"Description: helpdesk update_system test package\n"
        )
        (tree / "DEBIAN" / "conffiles").write_text(f"/etc/{name}.conf\n")
        (tree / "etc" / f"{name}.conf").write_text(f"shipped_by={version}\n")
        (tree / "usr" / "share" / name / "VERSION").write_text(version + "\n")
        if postinst_fails:
            postinst = tree / "DEBIAN" / "postinst"
            postinst.write_text("#!/bin/sh\necho 'postinst fails on purpose' >&2\nexit 1\n")
            postinst.chmod(0o755)
        deb = self.debs / f"{name}_{version}_all.deb"
        subprocess.run(
            ["dpkg-deb", "-b", "--root-owner-group", str(tree), str(deb)], check=True, capture_output=True
        )
        self._index()

    def _index(self) -> None:
        packages = subprocess.run(
            ["dpkg-scanpackages", "-m", ".", "/dev/null"], cwd=self.debs, check=True, capture_output=True
        ).stdout
        (self.debs / "Packages").write_bytes(packages)
        import hashlib
        from email.utils import formatdate

        (self.debs / "Release").write_text(
            "Origin: Helpdesk tests\nLabel: Debian-Security\nSuite: stable-security\n"
            f"Codename: bookworm-security\nDate: {formatdate(usegmt=True)}\nArchitectures: all amd64\n"
            f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
        )

    def apt(self, *args: str) -> None:
        env = {**os.environ, "APT_CONFIG": str(self.apt_conf), "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "-q", *args], env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL
        )


def installed_version(name: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True).stdout


@pytest.fixture
def repository(tmp_path, settings):
    # dpkg's database and /etc belong to the machine: the other database's test run waits its turn
    with machine.exclusive("dpkg"):
        yield from _repository(tmp_path, settings)


def _repository(tmp_path, settings):
    repo = Repository(tmp_path / "apt")
    repo.add(DUMMY, "1.0")
    repo.add(HELD, "1.0")
    repo.apt("update")
    repo.apt("install", "-y", DUMMY, HELD)
    settings.SYSTEM_APT_CONFIG = str(repo.apt_conf)
    settings.SYSTEM_REBOOT_FLAG = str(tmp_path / "reboot-required")
    settings.UPDATER_RELOAD_COMMAND = settings.UPDATER_RELOAD_PIDFILE = settings.UPDATER_HEALTH_URL = ""
    settings.MONITORED_SERVICES = []
    yield repo
    subprocess.run(["apt-mark", "unhold", DUMMY, HELD], capture_output=True)
    subprocess.run(["dpkg", "--purge", DUMMY, HELD], capture_output=True)
    assert installed_version(DUMMY) == "" and not CONFFILE.exists()  # nothing left behind


@pytest.mark.django_db
def test_upgrade_keeps_local_conffiles_reports_held_packages_and_dry_run_changes_nothing(
    repository, capsys, state_dir
):
    CONFFILE.write_text(CONFFILE.read_text() + "local_change=kept\n")  # an admin edited it
    subprocess.run(["apt-mark", "hold", HELD], check=True, capture_output=True)
    repository.add(DUMMY, "2.0")
    repository.add(HELD, "2.0")

    call_command("update_plan", "--system", "--format", "json")
    plan = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["installed"], u["candidate"], u["security"]) for u in plan["upgrades"]] == [
        (DUMMY, "1.0", "2.0", True)
    ]
    assert plan["update_class"] == "critical" and [h["name"] for h in plan["held_back"]] == [HELD]

    call_command("update_system", "--dry-run")
    planned = capsys.readouterr().out
    assert f"  {DUMMY} 1.0 -> 2.0  [critical; Debian-Security:stable-security]" in planned
    assert f"Held back: {HELD}: held with `apt-mark hold`" in planned
    assert installed_version(DUMMY) == "1.0"
    assert not list(state_dir.path.glob("updates/*.json"))

    reboot = Path(system_update.settings.SYSTEM_REBOOT_FLAG)
    reboot.write_text("*** System restart required ***\n")  # as a kernel upgrade would leave it
    Path(f"{reboot}.pkgs").write_text("linux-image-amd64\n")
    call_command("update_system")
    done = capsys.readouterr().out
    assert installed_version(DUMMY) == "2.0" and installed_version(HELD) == "1.0"
    assert "A reboot is required (not done by update_system)." in done and reboot.exists()
    assert "local_change=kept" in CONFFILE.read_text()  # the admin's file stays; the new one is beside it
    assert Path(f"{CONFFILE}.dpkg-dist").read_text() == "shipped_by=2.0\n"
    assert f"Held back: {HELD}" in done
    run = json.loads(sorted((state_dir.path / "updates").glob("*-update_system.json"))[-1].read_text())
    assert run["status"] == "succeeded" and run["facts"]["update_class"] == "critical"
    etc_backup = Path(run["facts"]["etc_backup"])
    assert etc_backup.exists() and (etc_backup.stat().st_mode & 0o777) == 0o600
    manifest = json.loads(Path(f"{etc_backup}.manifest.json").read_text())
    assert manifest["size"] == etc_backup.stat().st_size and manifest["source"] == "/etc"
    assert Path(run["facts"]["backup"]).exists()
    assert any(HELD in line for line in run["facts"]["held_back"])
    assert run["facts"]["reboot_required"] == ["linux-image-amd64"]
    report = (state_dir.path / "updates").glob("*-update_system.report.md")
    assert f"{HELD}: held with" in next(report).read_text()


@pytest.mark.django_db
def test_a_failing_postinst_is_reported_with_exit_1_and_the_next_run_repairs_dpkg(
    repository, capsys, state_dir
):
    repository.add(DUMMY, "3.0", postinst_fails=True)
    with pytest.raises(CommandError) as failure:
        call_command("update_system")
    assert failure.value.returncode == 1
    assert "the system upgrade failed" in str(failure.value) and "/etc was saved to" in str(failure.value)
    run = json.loads(sorted((state_dir.path / "updates").glob("*-update_system.json"))[-1].read_text())
    assert run["status"] == "failed" and Path(run["facts"]["etc_backup"]).exists()
    assert "cannot be undone: upgrade; packages are not downgraded: /etc was saved to" in run["cause"]
    assert [s["status"] for s in run["steps"]] == ["done", "failed"]  # backup done, upgrade failed

    call_command("update_system", "--dry-run")
    assert "dpkg was interrupted" in capsys.readouterr().out  # a dry run only reports it

    Path(f"/var/lib/dpkg/info/{DUMMY}.postinst").write_text("#!/bin/sh\nexit 0\n")  # the cause is fixed
    call_command("update_system")
    out = capsys.readouterr().out
    assert "Repaired an interrupted dpkg run" in out and "No package to upgrade." in out
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", DUMMY], capture_output=True, text=True
    ).stdout
    assert status == "install ok installed" and installed_version(DUMMY) == "3.0"


def test_package_names_are_validated_before_apt_sees_them():
    with pytest.raises(CommandError) as refused:
        call_command("update_system", "--packages", "nginx;rm -rf /", "--dry-run")
    assert refused.value.returncode == 2 and "is not a Debian package name" in str(refused.value)


def test_a_venv_made_for_another_python_minor_is_noticed(tmp_path):
    import sys

    config = tmp_path / "pyvenv.cfg"
    config.write_text(f"home = {Path(sys.base_prefix) / 'bin'}\nversion = 3.9.2\n")
    changed = system_update.python_changed(config)
    assert changed is not None and changed[1:] == ("3.9", f"{sys.version_info[0]}.{sys.version_info[1]}")
    config.write_text(
        f"home = {Path(sys.base_prefix) / 'bin'}\nversion = {sys.version_info[0]}.{sys.version_info[1]}.0\n"
    )
    assert system_update.python_changed(config) is None


@pytest.mark.parametrize(
    ("name", "origins", "expected"),
    [
        ("openssl", "Debian-Security:12/stable-security", "critical"),
        ("mariadb-server", "Debian:12.8/stable", "important"),
        ("python3.11", "Debian:12.8/stable", "important"),
        ("apache2-bin", "Debian:12.8/stable", "important"),
        ("less", "Debian:12.8/stable", "routine"),
    ],
)
def test_packages_are_classed_by_origin_and_by_what_they_are(name, origins, expected):
    from updater.system import apt

    assert apt.classify(name, origins) == expected


def test_services_restart_databases_first_and_web_servers_last():
    from updater.system import apt

    units = ["apache2.service", "cron.service", "mariadb.service", "nginx.service", "ssh.service"]
    ordered = sorted(units, key=apt._restart_order)
    assert ordered == ["mariadb.service", "cron.service", "ssh.service", "apache2.service", "nginx.service"]


def test_release_venvs_are_rebuilt_when_the_python_minor_version_moved(settings, tmp_path):
    import sys

    from tests.support.deployments import REPO_ROOT, wheelhouse_for

    root = tmp_path / "srv"
    release = root / "releases" / "v1.0.0"
    release.mkdir(parents=True)
    (root / "shared").mkdir()
    (root / "repo.git").mkdir()
    (root / "repo.git" / "HEAD").write_text("ref: refs/heads/main\n")
    shutil.copy(REPO_ROOT / "requirements.txt", release / "requirements.txt")
    old_venv = tmp_path / "old-venv"  # what a Python 3.9 venv's configuration says
    old_venv.mkdir()
    (old_venv / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\nversion = 3.9.2\n")
    (release / ".venv").symlink_to(old_venv)
    (root / "current").symlink_to("releases/v1.0.0")
    settings.UPDATER_ROOT = str(root)
    settings.UPDATER_WHEELHOUSE = str(wheelhouse_for(REPO_ROOT / "requirements.txt"))

    rebuilt = system_update.rebuild_venv_if_python_changed()
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert len(rebuilt) == 1 and rebuilt[0].startswith(f"v1.0.0: Python 3.9 -> {minor}")
    linked = (release / ".venv").resolve()
    assert linked.parent == root / "shared" / "venvs"
    python = str(release / ".venv" / "bin" / "python")
    probe = [python, "-c", "import django; print(django.VERSION[:2])"]
    works = subprocess.run(probe, capture_output=True, text=True, check=True)
    assert works.stdout.strip() == "(5, 2)"
    assert system_update.rebuild_venv_if_python_changed() == []  # now it matches
