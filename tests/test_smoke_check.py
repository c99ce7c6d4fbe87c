"""The smoke checks' last check: every migration of the release is applied, except those the update
leaves for after verify (its contract migrations, `smoke_check --allow-pending`)."""

import pytest
from django.core.management import call_command

from tests.support.deployments import migrations
from updater.release.smoke import SmokeFailed, run_smoke_checks

NEWEST = f"crm.{migrations()[-1]}"


@pytest.fixture
def newest_unapplied(transactional_db):
    """Recorded as unapplied, its schema left in place (the code of this checkout needs it)."""
    call_command("migrate", "crm", migrations()[-2], fake=True, verbosity=0)
    yield
    call_command("migrate", "crm", fake=True, verbosity=0)


@pytest.mark.usefixtures("newest_unapplied")
def test_an_unapplied_migration_fails_the_smoke_checks_by_name():
    with pytest.raises(
        SmokeFailed, match=f"schema does not match this release's migrations \\({NEWEST} not applied"
    ):
        run_smoke_checks()


@pytest.mark.usefixtures("newest_unapplied")
def test_a_contract_migration_left_for_after_verify_is_allowed_and_said():
    passed = run_smoke_checks(allowed_pending=[NEWEST])
    assert passed[-1] == "migrate --check (1 left for after the switch)"
    assert "ticket list" in passed and "create a ticket" in passed


@pytest.mark.django_db
def test_a_fully_migrated_release_passes():
    assert run_smoke_checks()[-1] == "migrate --check"
