"""Scheduled backups: the hourly timer runs `backup_database --scheduled`, which backs up only when
BACKUP_INTERVAL_HOURS have passed (4 h in prod, 24 h elsewhere, as the handbook says), keeps
BACKUP_KEEP sets, and stays silent when nothing is due."""

from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from crm import demo_data
from tests.test_settings import PROD
from updater.backup import backups, rotation, schedule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def helpdesk(db, state_dir):
    demo_data.seed(tickets=3, orgs=1)
    return state_dir


def scheduled(*args: str) -> str:
    out = StringIO()
    call_command("backup_database", "--scheduled", *args, stdout=out, stderr=out)
    return out.getvalue()


def sets(state_dir) -> list:
    return rotation.list_backups(state_dir.backups)


def test_the_first_hourly_run_backs_up_and_the_next_one_stays_silent(helpdesk):
    assert "Backup written and verified" in scheduled()
    assert scheduled() == ""  # cron mails only news
    assert len(sets(helpdesk)) == 1
    assert "Not due: the newest backup set" in scheduled("--verbosity", "2")


@pytest.mark.parametrize("interval", [4.0, 24.0])
def test_a_backup_is_due_from_one_interval_less_the_timers_slack(helpdesk, settings, interval):
    settings.BACKUP_INTERVAL_HOURS = interval
    made = backups.create_backup().manifest
    started = datetime.fromisoformat(made.started_at)
    boundary = started + timedelta(hours=interval) - schedule.SLACK
    assert schedule.due(boundary).due
    assert not schedule.due(boundary - timedelta(seconds=1)).due
    assert schedule.due(boundary).age_hours == pytest.approx(interval - 0.25)


def test_a_database_only_backup_does_not_count_as_a_scheduled_set(helpdesk):
    backups.create_backup(include_media=False)
    assert schedule.due().due
    assert "Backup written and verified" in scheduled()


def test_a_scheduled_run_rotates_to_backup_keep(helpdesk, settings):
    settings.BACKUP_INTERVAL_HOURS, settings.BACKUP_KEEP = 0.0, 2
    for _ in range(3):
        scheduled()
    assert len(sets(helpdesk)) == 2


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"ENVIRONMENT": "dev"}, "24.0 7 26.0 50.0"),
        (PROD, "4.0 42 6.0 10.0"),
        ({**PROD, "ENVIRONMENT": "staging"}, "24.0 7 26.0 50.0"),
    ],
)
def test_the_handbooks_schedule_is_the_default_per_environment(manage, environment, expected):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; "
        "print(s.BACKUP_INTERVAL_HOURS, s.BACKUP_KEEP, s.BACKUP_WARN_HOURS, s.BACKUP_CRIT_HOURS)",
        LOG_FILE="",
        **environment,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
