"""Ticket writes that lose a lock race are tried again instead of answering 500.

Every write to a ticket locks the ticket's row first (crm.tickets), so writers queue on it instead of
deadlocking: before, a comment inserted its rows (shared locks on the ticket through their foreign
keys) and then updated the ticket (an exclusive lock), and two such writers deadlocked (InnoDB error
1213). A deadlock or lock-wait timeout that still happens (another table, an admin's long
transaction) or SQLite's "database is locked" rolls back the whole transaction, which can simply
run again: a bounded number of times, with a short random pause, then the error stands.
"""

import random
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection, transaction

ATTEMPTS = 4
PAUSE_SECONDS = 0.05
MYSQL_TRANSIENT = {1205, 1213}  # lock wait timeout exceeded; deadlock found

P = ParamSpec("P")
R = TypeVar("R")


def transient(error: OperationalError) -> bool:
    code = error.args[0] if error.args else None
    return code in MYSQL_TRANSIENT or "database is locked" in str(error)


def retrying(action: Callable[P, R]) -> Callable[P, R]:
    """Run action in its own transaction, again when it lost a lock race. Inside a caller's
    transaction it runs once: the race rolled back the caller's work too, which only the caller
    can redo."""

    @wraps(action)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        attempt = 1
        while True:
            nested = connection.in_atomic_block
            try:
                with transaction.atomic():
                    return action(*args, **kwargs)
            except OperationalError as error:
                if nested or attempt >= ATTEMPTS or not transient(error):
                    raise
            time.sleep(PAUSE_SECONDS * attempt * (0.5 + random.random()))  # noqa: S311 (not for secrets)
            attempt += 1

    return run
