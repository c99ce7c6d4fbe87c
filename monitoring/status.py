"""The status document: the handbook's dashboard keys plus overall status, version, maintenance, the
last update and every check with its observed value, unit and thresholds."""

import json
import time
from datetime import UTC, datetime

import psutil
from django.conf import settings

from helpdesk.version import app_version
from monitoring import checks, state
from updater import layout
from updater.plan import history, promotion
from updater.run import journal, maintenance

DOCUMENT_SECONDS = 1.0  # pollers asking many times a second share one evaluation per worker
_documents: dict[bool, tuple[float, dict, int]] = {}


def document(detail: bool) -> tuple[dict, int]:
    """The status JSON and its HTTP status (200 for pass and warn, 503 for fail), at most a second old."""
    now = time.monotonic()
    hit = _documents.get(detail)
    if hit and now - hit[0] < DOCUMENT_SECONDS:
        return hit[1], hit[2]
    body, http_status = _evaluate(detail)
    _documents[detail] = (now, body, http_status)
    return body, http_status


def forget() -> None:
    _documents.clear()


def _evaluate(detail: bool) -> tuple[dict, int]:
    snapshot = state.load()  # read once: the services check and the CPU sample both come from it
    results = checks.all_checks(snapshot)
    status = checks.overall(results)
    http_status = 503 if status == checks.FAIL else 200
    now = time.time()
    # The handbook's epoch seconds, and the same instant for people and for JavaScript's Date.
    stamps = {"timestamp": now, "timestamp_iso": datetime.fromtimestamp(now, UTC).isoformat()}
    if not detail:
        return {"status": status, **stamps}, http_status
    by_name = {check.name: check for check in results}
    first_disk = next((c for c in results if c.name.startswith("disk ")), None)
    return {
        "status": status,
        "system_available": status != checks.FAIL,
        "cpu_usage": cpu_percent(snapshot),
        "memory_usage": by_name["memory"].observed,
        "disk_usage": first_disk.observed if first_disk else None,
        "services": checks.service_states(snapshot.get("services", {})),
        **stamps,
        "version": app_version(),
        "environment": settings.ENVIRONMENT,
        "maintenance": maintenance.is_on(),
        "last_update": last_update(),
        "release_journey": release_journey(),
        "checks": [check.as_dict() for check in results],
    }, http_status


def cpu_percent(snapshot: dict | None = None) -> float:
    """Busy share of all cores, in percent: check_system's one-second sample when fresh, otherwise a
    short sample taken here. (The load average is no substitute: it counts waiting processes, and a
    load of 1.1 per core read as 100 % while the load check passed.)"""
    sample = (state.load() if snapshot is None else snapshot).get("cpu", {})
    if sample and time.time() - sample.get("at", 0) <= settings.MONITORING_STALE_SECONDS:
        return sample["percent"]
    return psutil.cpu_percent(interval=0.1)  # the document is cached a second per worker


def release_journey() -> list[dict]:
    """Where the current release has run: here, then each environment above (as last asked; no call
    out of a web request)."""
    current = app_version()
    here = history.of(layout.state().updates)
    own = here[current].as_dict() if current in here else {"outcome": "deployed"}
    return [{"environment": settings.ENVIRONMENT} | own, *promotion.chain(promotion.remembered(), current)]


def last_update() -> dict | None:
    """The newest run in the deployment's journal (one file read; None outside a deployment)."""
    found = journal.paths(layout.state().updates)
    if not found:
        return None
    try:
        run = json.loads(found[-1].read_text())
    except (OSError, ValueError):
        return None
    keys = ("id", "command", "from_version", "to_version", "status", "started_at", "finished_at", "actor")
    facts = run.get("facts", {})
    return {key: run.get(key) for key in keys} | {
        "maintenance_seconds": facts.get("maintenance_seconds"),
        "fleet_run": facts.get("fleet_run"),  # one server's part of a fleet update (deploy/ansible/)
    }
