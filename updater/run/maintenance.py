"""Maintenance mode: a flag file that every release reads (shared/maintenance in a deployment; where
it lives is updater/layout.py's business).

While it exists, every request except the health probes gets 503 with Retry-After and a short
bilingual page (or JSON for the API). The file holds the reason and the start time.
"""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from updater import layout
from updater.run.files import write_atomically
from updater.run.journal import Journal
from updater.run.steps import Step


def flag_path() -> Path:
    return layout.state().maintenance_flag


def is_on(flag: Path | None = None) -> bool:
    return (flag or flag_path()).exists()


def enable(reason: str, flag: Path | None = None) -> None:
    flag = flag or flag_path()
    flag.parent.mkdir(parents=True, exist_ok=True)
    since = datetime.now(UTC).isoformat(timespec="seconds")
    write_atomically(flag, json.dumps({"reason": reason, "since": since}).encode(), mode=0o644)


def disable(flag: Path | None = None) -> None:
    (flag or flag_path()).unlink(missing_ok=True)


def switch_on(run: Journal, reason: str) -> None:
    """Maintenance on for a run; when it started is journaled for reports and the downtime bench."""
    if not run.fact("maintenance_since"):
        run.record(maintenance_on=True, maintenance_since=time.time())
    enable(reason)


def switch_off(run: Journal) -> None:
    """Maintenance off, and how long it lasted (epoch seconds)."""
    disable()
    since = run.fact("maintenance_since")
    if since and not run.fact("maintenance_until"):
        now = time.time()
        run.record(maintenance_until=now, maintenance_seconds=round(now - since, 2))


def step(reason: Callable[[Journal], str], when: Callable[[Journal], bool] | None = None) -> Step:
    """Maintenance on, undone by maintenance off: writes are blocked while the schema may change."""
    return Step("maintenance", lambda run: switch_on(run, reason(run)), switch_off, when=when)


def off_step(when: Callable[[Journal], bool] | None = None) -> Step:
    """The end of a run's maintenance, after its point of no return."""
    return Step("maintenance off", switch_off, None, when=when)
