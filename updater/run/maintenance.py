"""Maintenance mode: a flag file that every release reads (shared/maintenance in a deployment; where
it lives is updater/layout.py's business).

While it exists, every request except the health probes gets 503 with Retry-After and a short
bilingual page (or JSON for the API). The file holds the reason and the start time.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

from updater import layout
from updater.run.files import write_atomically


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
