"""What the two test runs of scripts/test.sh (SQLite and MariaDB, side by side) share: the machine.
Tests that change machine-wide state (dpkg's database, /etc) take a lock for it, so the other run
waits instead of installing or purging the same packages at the same time."""

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(resource: str) -> Iterator[None]:
    """Hold the machine-wide lock named `resource` (blocking) for the duration."""
    path = Path(tempfile.gettempdir()) / f"helpdesk-tests-{resource}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
