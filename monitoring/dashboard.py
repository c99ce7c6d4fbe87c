"""The update history for the dashboard: each run's versions, outcome, duration, maintenance time
and its steps as proportions of the run (drawn as a timeline)."""

import json
import os
from datetime import datetime
from pathlib import Path

from django.conf import settings

HISTORY = 20


def history(limit: int = HISTORY) -> list[dict]:
    from updater.journal import JOURNAL_NAME

    directory = Path(settings.MAINTENANCE_FLAG).parent / "updates"
    try:
        names = sorted((n for n in os.listdir(directory) if JOURNAL_NAME.match(n)), reverse=True)[:limit]
    except OSError:
        return []
    runs = []
    for name in names:
        try:
            run = json.loads((directory / name).read_text())
        except (OSError, ValueError):
            continue
        runs.append(_summary(run))
    return runs


def _summary(run: dict) -> dict:
    started = datetime.fromisoformat(run["started_at"])
    finished = datetime.fromisoformat(run["finished_at"]) if run.get("finished_at") else None
    duration = (finished - started).total_seconds() if finished else None
    steps = [s for s in run.get("steps", []) if s.get("seconds") is not None]
    total = sum(s["seconds"] for s in steps) or 1.0
    return {
        "id": run["id"],
        "command": run["command"],
        "from_version": run.get("from_version"),
        "to_version": run.get("to_version"),
        "status": run["status"],
        "started_at": started,
        "duration": duration,
        "maintenance_seconds": run.get("facts", {}).get("maintenance_seconds"),
        "steps": [
            {
                "name": s["name"],
                "status": s["status"],
                "seconds": s["seconds"],
                "share": round(s["seconds"] / total * 100, 1),
            }
            for s in steps
        ],
    }
