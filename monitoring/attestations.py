"""What this environment attests to its successor (GET /monitoring/releases/): every release it was
updated to, with the outcome, whether its smoke checks passed, since when it served, for how long, and
for how long healthily (check_system records the last failing round of each version). The chain above
it (what its own predecessor attested when last asked) rides along, so production's status page can
show a release's way through test and staging. The successor's promotion gate judges it
(updater/plan/promotion.py); the body is signed with PROMOTION_SIGNING_KEY over the caller's nonce."""

import json
import re
from datetime import UTC, datetime

from django.conf import settings

from helpdesk.version import app_version
from monitoring import checks, state, status
from updater import layout
from updater.plan import history, promotion

NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# The checks that speak of the release itself. A full disk, a busy CPU or an old backup say nothing
# about the code that runs, and would hold every promotion hostage to the predecessor's machine.
RELEASE_CHECKS = frozenset({"database", "migrations", "error log"})


def document(nonce: str = "", now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    current = app_version()
    unhealthy = state.load().get("unhealthy", {})
    failing_now = release_failing(status.document(detail=True)[0]["checks"])
    releases = []
    for stay in sorted(history.of(layout.state().updates).values(), key=lambda stay: stay.at):
        entry = stay.as_dict()
        if stay.since is not None:
            end = stay.until or now
            healthy_since = max(stay.since, unhealthy.get(stay.version, stay.since))
            entry["ran_seconds"] = round(history.seconds_between(stay.since, end), 1)
            entry["healthy_seconds"] = round(history.seconds_between(healthy_since, end), 1)
            entry["current"] = stay.until is None and stay.version == current
            if entry["current"] and failing_now:
                entry["healthy_seconds"] = 0.0
        releases.append(entry)
    return {
        "environment": settings.ENVIRONMENT,
        "generated_at": now.isoformat(timespec="seconds"),
        "nonce": nonce,
        "current_version": current,
        "releases": releases,
        "upstream": promotion.remembered(),
    }


def signed_body(nonce: str) -> tuple[bytes, str | None]:
    """The document's bytes and their signature (None without PROMOTION_SIGNING_KEY)."""
    body = json.dumps(document(nonce), indent=1).encode()
    key = settings.PROMOTION_SIGNING_KEY
    return body, promotion.signature(body, key) if key else None


def release_failing(results: list) -> bool:
    """Whether a check about the release itself fails (checks as objects or as the status page's dicts)."""
    for check in results:
        name, outcome = (
            (check["name"], check["status"]) if isinstance(check, dict) else (check.name, check.status)
        )
        if name in RELEASE_CHECKS and outcome == checks.FAIL:
            return True
    return False


def record_health(results: list, data: dict, now: float) -> None:
    """check_system's part: the last moment each version was seen failing restarts its healthy time."""
    if release_failing(results):
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        data.setdefault("unhealthy", {})[app_version()] = stamp
