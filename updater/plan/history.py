"""What each release has been through in this environment, read from its journal: when an update to it
succeeded (and passed its smoke checks) or failed, when another release replaced it, and whether a
human rolled it back. It is what this environment attests to its successor (monitoring/attestations.py)
and what the promotion gate of the successor judges (updater/plan/promotion.py)."""

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from updater.run import journal

SUCCEEDED, FAILED, ROLLED_BACK = journal.SUCCEEDED, journal.FAILED, journal.ROLLED_BACK
ROLLED_BACK_BY_HAND = "rolled back by hand"


@dataclass
class Stay:
    version: str
    outcome: str  # succeeded | failed | rolled back (its update undid itself) | rolled back by hand
    at: str  # when that outcome was journaled (UTC, ISO 8601)
    smoke_passed: bool = False
    since: str | None = None  # it began serving (a succeeded update's finish)
    until: str | None = None  # another release replaced it
    cause: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def of(directory: Path) -> dict[str, Stay]:
    """Every release an update or rollback in `directory` went to or from, by version."""
    stays: dict[str, Stay] = {}
    serving: str | None = None
    for run in journal.all_journals(directory):
        data = run.data
        if data.get("status") not in journal.FINISHED or data["facts"].get("dry_run"):
            continue
        finished, target, cause = data["finished_at"], data.get("to_version"), _short(data.get("cause"))
        if data["command"] == "update" and target:
            if data["status"] == SUCCEEDED:
                smoke = bool(data["facts"].get("verified") or data["facts"].get("smoke_checks"))
                _replace(stays, serving, finished)
                stays[target] = Stay(target, SUCCEEDED, finished, smoke_passed=smoke, since=finished)
                serving = target
            else:
                stays[target] = Stay(target, data["status"], finished, cause=cause)
        elif data["command"] == "rollback" and data["status"] == SUCCEEDED and target:
            left = data.get("from_version")
            if left:
                stays[left] = Stay(
                    left,
                    ROLLED_BACK_BY_HAND,
                    finished,
                    since=_since(stays, left),
                    until=finished,
                    cause=f"rolled back to {target} by {data.get('actor', '?')}",
                )
            if target in stays and stays[target].outcome == SUCCEEDED:
                stays[target].since, stays[target].until = finished, None  # it serves again from now
            serving = target
    return stays


def _short(cause: str | None) -> str:
    """A cause in one line: its first line and, for a traceback, the exception at its end."""
    lines = [line.strip() for line in (cause or "").splitlines() if line.strip()]
    if len(lines) <= 1:
        return (lines or [""])[0][:300]
    return f"{lines[0][:150]} … {lines[-1][:150]}"


def _replace(stays: dict[str, Stay], serving: str | None, at: str) -> None:
    if serving in stays and stays[serving].until is None:
        stays[serving].until = at


def _since(stays: dict[str, Stay], version: str) -> str | None:
    return stays[version].since if version in stays else None


def seconds_between(start: str | None, end: str | datetime) -> float:
    if start is None:
        return 0.0
    end_at = end if isinstance(end, datetime) else datetime.fromisoformat(end)
    return max(0.0, (end_at - datetime.fromisoformat(start)).total_seconds())
