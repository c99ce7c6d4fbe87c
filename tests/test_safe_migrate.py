"""safe_migrate on the real database: a failing migration leaves the database as it was."""

import importlib
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from crm.models import Ticket
from tests.support.deployments import migrations, newest_migration

AFTER_0002 = [f"crm.{name}" for name in migrations() if name[:4] > "0002"]  # 0003_fill_..., ...

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def back_to_latest():
    yield
    call_command("migrate", verbosity=0)


def test_plan_lists_pending_migrations(back_to_latest):
    call_command("migrate", "crm", "0002", verbosity=0)
    out = StringIO()
    call_command("safe_migrate", "--plan", stdout=out)
    assert out.getvalue().strip() == f"Pending migrations: {', '.join(AFTER_0002)}"


def test_safe_migrate_backs_up_then_migrates(back_to_latest, helpdesk):
    call_command("migrate", "crm", "0002", verbosity=0)
    out = StringIO()
    call_command("safe_migrate", stdout=out)
    assert f"Applied {len(AFTER_0002)}: {', '.join(AFTER_0002)}" in out.getvalue()
    assert "Backup: " in out.getvalue()
    assert Ticket.objects.count() == 2


def test_failing_migration_restores_the_database(back_to_latest, helpdesk, monkeypatch):
    call_command("migrate", "crm", "0002", verbosity=0)
    Ticket.objects.filter(pk=helpdesk.acme_ticket.pk).update(status="resolved")

    def explode(apps, schema_editor):
        raise RuntimeError("data migration exploded")

    module = importlib.import_module("crm.migrations.0003_fill_resolution_notes")
    with monkeypatch.context() as patch:
        patch.setattr(module.Migration.operations[0], "code", explode)
        with pytest.raises(CommandError, match=r"restored from .*data migration exploded"):
            call_command("safe_migrate")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = 'crm' ORDER BY name")
        assert [row[0] for row in cursor.fetchall()][-1] == "0002_ticket_resolution_notes"
    # Only the columns 0002 has: the model's later fields are not in this schema.
    assert Ticket.objects.values_list("resolution_notes", flat=True).get(pk=helpdesk.acme_ticket.pk) == ""


def test_verbosity_2_shows_each_step_with_its_duration_and_0_says_nothing(back_to_latest, helpdesk):
    call_command("migrate", "crm", "0002", verbosity=0)
    shown = StringIO()
    call_command("safe_migrate", verbosity=2, stdout=shown)
    steps = re.findall(r"safe_migrate: (.+) done in \d+\.\d s", shown.getvalue())
    assert steps == [
        "integrity check",
        "maintenance",
        "backup",
        "migrate",
        "verify",
        "maintenance off",
        "finish",
    ]
    call_command("migrate", "crm", "0002", verbosity=0)
    silent = StringIO()
    call_command("safe_migrate", verbosity=0, stdout=silent)
    assert silent.getvalue() == ""
    with connection.cursor() as cursor:  # and it did migrate
        cursor.execute("SELECT name FROM django_migrations WHERE app = 'crm' ORDER BY name")
        assert [row[0] for row in cursor.fetchall()][-1] == newest_migration()
