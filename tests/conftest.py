"""Shared fixtures. Database choice (SQLite or a throwaway MariaDB) is made by tests/plugins/mariadb.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def manage(tmp_path):
    """Run manage.py in a child process with a clean, explicit configuration.

    ENV_FILE points at an empty file so a developer's own .env never leaks into the result;
    pass settings as keyword arguments.
    """
    env_file = tmp_path / "empty.env"
    env_file.write_text("")

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        child_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "ENVIRONMENT", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "LOG_"))
        }
        child_env.update({"ENV_FILE": str(env_file), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
        child_env.update(env)
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "manage.py"), *args],
            capture_output=True,
            text=True,
            env=child_env,
            cwd=tmp_path,
            timeout=120,
        )

    return run


@pytest.fixture
def organization(db):
    from crm.models import Organization

    return Organization.objects.create(name="Acme Sp. z o.o.", email="it@acme.example")


@pytest.fixture
def customer(db, organization, django_user_model):
    from crm.models import UserProfile

    user = django_user_model.objects.create_user("jan", "jan@acme.example", "correct-horse-battery")
    UserProfile.objects.create(user=user, organization=organization, role=UserProfile.Role.CUSTOMER)
    return user


@pytest.fixture
def ticket(db, organization, customer):
    from crm.models import Ticket

    return Ticket.objects.create(
        title="Printer offline", description="Third floor", organization=organization, created_by=customer
    )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # PBKDF2 with a production work factor costs ~0.3 s a hash; tests hash many passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def mail_waits_in_the_outbox(settings):
    """No sending thread after each write: tests drain the outbox themselves (crm/outbox.py)."""
    settings.NOTIFY_OUTBOX_THREAD = False


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def fresh_monitoring_cache():
    """Monitoring caches its slower probes per process (the newest backup, pending migrations): one
    test's backup must not make the next test's status page pass."""
    from monitoring import checks

    checks.clear_cache()


def _person(username: str, role: str, organization=None, **extra):
    from django.contrib.auth import get_user_model

    from crm.models import UserProfile

    user = get_user_model().objects.create_user(
        username, f"{username}@example.com", "pw-" + username, **extra
    )
    UserProfile.objects.create(user=user, role=role, organization=organization)
    return user


@pytest.fixture
def helpdesk(db):
    """Two organizations with a customer and a ticket each, an agent and an admin."""
    from types import SimpleNamespace

    from crm.models import Organization, Ticket

    acme = Organization.objects.create(name="Acme")
    globex = Organization.objects.create(name="Globex")
    world = SimpleNamespace(
        acme=acme,
        globex=globex,
        alice=_person("alice", "customer", acme),
        bob=_person("bob", "customer", globex),
        agent=_person("agnes", "agent"),
        admin=_person("adam", "admin", is_staff=True, is_superuser=True),
    )
    world.acme_ticket = Ticket.objects.create(
        title="Acme printer jammed", description="Paper everywhere", organization=acme, created_by=world.alice
    )
    world.globex_ticket = Ticket.objects.create(
        title="Globex VPN down",
        description="Secret Globex details",
        organization=globex,
        created_by=world.bob,
    )
    return world


@pytest.fixture
def as_user(client):
    """Log the test client in as a given user (force_login: django-axes needs a request for passwords)."""

    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """SQLite tests use a database file, not memory: backups, restores and child processes need one."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(
            tmp_path_factory.mktemp("sqlite") / "test_helpdesk.sqlite3"
        )


@pytest.fixture(autouse=True)
def state_dir(settings, tmp_path):
    """Every state path (journal, lock, maintenance flag, backups, monitoring state) in the test's own
    folder: updater/layout.py owns them all, so this one redirection covers every module."""
    from updater import layout

    settings.UPDATER_ROOT = ""
    settings.UPDATER_STATE_DIR = str(tmp_path / "state")
    settings.BACKUP_DIR = ""
    return layout.state()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.support import reports

    if reports.fault_injection:
        database = "MariaDB" if config.getoption("--mariadb") else "SQLite"
        terminalreporter.section(f"SIGKILL fault injection ({database}): killed -> after rollback --recover")
        for where, outcome in reports.fault_injection:
            terminalreporter.write_line(f"  {where:<22} -> {outcome}")
    if reports.fault_matrix:
        database = "MariaDB" if config.getoption("--mariadb") else "SQLite"
        terminalreporter.section(f"Fault matrix ({database}): command x fault -> after rollback --recover")
        for command, fault, outcome in reports.fault_matrix:
            terminalreporter.write_line(f"  {command:<24} {fault:<30} -> {outcome}")
    for line in reports.concurrency:
        terminalreporter.write_line(f"Two updates at once: {line}")
    if reports.online_migrations:
        database = "MariaDB" if config.getoption("--mariadb") else "SQLite"
        terminalreporter.section(f"Migrations with the site up, under load ({database})")
        for name, requests, failed, written, timing in reports.online_migrations:
            terminalreporter.write_line(
                f"  {name:<40} {requests:>6} requests, {failed} failed or 503, "
                f"{written} tickets written and kept; {timing}"
            )


def _repository_status() -> set[str]:
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return set(result.stdout.splitlines()) if result.returncode == 0 else set()


def pytest_sessionstart(session):
    session.config.stash[_status_key] = _repository_status()


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves no state file in the checkout (lock, flag, journal, backup, database): every
    path goes through updater/layout.py, which the `state_dir` fixture points at a temporary folder."""
    before = session.config.stash.get(_status_key, None)
    if before is None or session.config.option.collectonly:
        return
    left = sorted(_repository_status() - before)
    if left:
        session.config.stash[_left_key] = left
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    left = config.stash.get(_left_key, None)
    if left:
        sys.stderr.write(
            "FAILED: the test suite left files in the repository:\n  " + "\n  ".join(left) + "\n"
        )


_status_key = pytest.StashKey[set]()
_left_key = pytest.StashKey[list]()
