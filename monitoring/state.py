"""check_system's small state file: service states and a CPU sample for the status page, alert
levels and log offsets for deduplication. Written atomically (tmp + rename); read without locks."""

import json
import os
from pathlib import Path

from django.conf import settings


def path() -> Path:
    return Path(settings.MONITORING_STATE_FILE)


def load() -> dict:
    try:
        data = json.loads(path().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(data: dict) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temporary, target)
