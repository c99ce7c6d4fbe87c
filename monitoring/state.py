"""check_system's small state file: service states and a CPU sample for the status page, alert
levels and log offsets for deduplication. Written atomically (tmp + rename); read without locks."""

import json
from pathlib import Path

from updater import layout
from updater.run.files import write_atomically


def path() -> Path:
    return layout.state().monitoring_state


def load() -> dict:
    try:
        data = json.loads(path().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(data: dict) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, json.dumps(data, indent=2, sort_keys=True).encode())
