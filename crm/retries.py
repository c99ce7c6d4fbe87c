"""Ticket writes that lose a lock race are tried again instead of answering 500.

Writes take their locks on a ticket in an order that cannot deadlock (crm.tickets): a change to the
ticket locks its row first; a comment or an upload only adds rows (shared locks through their foreign
keys) and moves the ticket's updated_at afterwards, in a statement of its own. Before, a comment
inserted its rows and then updated the ticket within one transaction, and two such comments
deadlocked (InnoDB error 1213): each held a shared lock and waited for the other's to go. A deadlock
or lock-wait timeout that still happens (another table, an admin's long transaction) or SQLite's
"database is locked" rolls back the whole transaction, which can simply run again: a bounded number
of times, with a short random pause, then the error stands.
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
