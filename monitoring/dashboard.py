"""The update history for the dashboard: each run's versions, outcome, duration, maintenance time
and its steps as proportions of the run (drawn as a timeline)."""

import json
from datetime import datetime

from updater import layout
from updater.run import journal

HISTORY = 20


def history(limit: int = HISTORY) -> list[dict]:
    runs = []
    for path in reversed(journal.paths(layout.state().updates)[-limit:]):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # an unreadable journal is left out of the history, not an error page
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
