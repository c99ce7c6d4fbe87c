"""Ticket writes that lose a lock race run again, a bounded number of times, and only when running
again is safe (their own transaction, a transient error)."""

import pytest
from django.db import OperationalError, transaction

from crm import retries

DEADLOCK = OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
LOCK_WAIT = OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")
SQLITE_LOCKED = OperationalError("database is locked")


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "stored"


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(retries, "PAUSE_SECONDS", 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "error", [DEADLOCK, LOCK_WAIT, SQLITE_LOCKED], ids=["deadlock", "lock wait", "sqlite"]
)
def test_a_lost_lock_race_is_run_again(error):
    action = Flaky([error] * (retries.ATTEMPTS - 1))  # fails on every attempt but the last
    assert retries.retrying(action)() == "stored"
    assert action.calls == retries.ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_after_the_last_attempt_the_error_stands():
    action = Flaky([DEADLOCK] * retries.ATTEMPTS)
    with pytest.raises(OperationalError, match="Deadlock"):
        retries.retrying(action)()
    assert action.calls == retries.ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_retried():
    action = Flaky([OperationalError(2006, "MySQL server has gone away")])
    with pytest.raises(OperationalError, match="gone away"):
        retries.retrying(action)()
    assert action.calls == 1


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_it_runs_once():
    action = Flaky([DEADLOCK])
    with pytest.raises(OperationalError), transaction.atomic():
        retries.retrying(action)()
    assert action.calls == 1
