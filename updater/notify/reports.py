"""The report of a run, built from its journal: versions, who ran it, changelog by type, step timings,
maintenance time, backup used, checks, a sample of query timings, the error log's tail, outcome.

A report is written beside the journal at the end of every run (`<run>.report.md`) and can be
rendered again at any time by `update_report` as text, markdown or JSON.
"""

import json
import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import connection

from updater.run import journal

ERROR_LOG_LINES = 20
FLAGS = {"succeeded": "OK", "rolled back": "ROLLED BACK", "failed": "FAILED", "running": "INTERRUPTED"}


def build(run: journal.Journal) -> dict:
    data, facts = run.data, run.data.get("facts", {})
    started = datetime.fromisoformat(data["started_at"])
    finished = datetime.fromisoformat(data["finished_at"]) if data.get("finished_at") else None
    changes: dict[str, list[str]] = {"feat": [], "fix": [], "security": [], "other": []}
    for commit in facts.get("changelog", []):
        changes.setdefault(commit["type"], []).append(
            commit["subject"] + (" (BREAKING)" if commit["breaking"] else "")
        )
    return {
        "id": data["id"],
        "command": data["command"],
        "from_version": data.get("from_version"),
        "to_version": data.get("to_version"),
        "actor": data.get("actor", "?"),
        "host": data.get("host"),
        "outcome": data["status"],
        "cause": data.get("cause"),
        "started_at": data["started_at"],
        "finished_at": data.get("finished_at"),
        "duration_seconds": round((finished - started).total_seconds(), 1) if finished else None,
        "update_class": facts.get("update_class"),
        "promotion": facts.get("promotion"),
        "promotion_skipped": facts.get("promotion_skipped"),
        "fleet_run": facts.get("fleet_run"),
        "changelog": changes,
        "steps": [
            {k: step.get(k) for k in ("name", "status", "seconds", "detail") if step.get(k) is not None}
            for step in data.get("steps", [])
        ],
        "maintenance_seconds": facts.get("maintenance_seconds", 0.0),
        "migrations": facts.get("pending_migrations", facts.get("migrations_ahead", [])),
        "migration_kinds": facts.get("migration_kinds", {}),
        "migration_schedule": facts.get("migration_schedule"),
        "migrations_estimate_vs_actual": _estimate_vs_actual(data),
        "backup": facts.get("backup") or facts.get("database_restored_from"),
        "database_restored_from": facts.get("database_restored_from"),
        # Media files a database restore moved aside (added or changed after its backup): kept, listed.
        "quarantined_media": facts.get("quarantined_media", []),
        "quarantine": facts.get("quarantine"),
        "media_missing": facts.get("media_missing", []),
        "smoke_checks": facts.get("smoke_checks", []),
        "query_timings_ms": facts.get("query_timings_ms", {}),
        "error_log_tail": facts.get("error_log_tail", []),
        "notifications": facts.get("notifications", []),
        "removed_releases": facts.get("removed_releases", []),
        "packages": facts.get("packages", []),
        "held_back": facts.get("held_back", []),
        "etc_backup": facts.get("etc_backup"),
        "reboot_required": facts.get("reboot_required"),
    }


def subject(report: dict) -> str:
    flags = [f"[{FLAGS.get(report['outcome'], report['outcome'].upper())}]"]
    if report.get("held"):
        flags.append("[BREAKING held]")
    versions = f"{report['from_version']} -> {report['to_version']}"
    return f"{' '.join(flags)} helpdesk {report['command']} {versions} on {report['host']}"


def render(report: dict, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(report, indent=2)
    md = fmt == "markdown"
    head = "# " if md else ""
    sub = "## " if md else ""
    item = "- " if md else "  "
    lines = [
        f"{head}{subject(report)}",
        "",
        f"{item}run {report['id']} by {report['actor']} ({report['command']}), outcome: {report['outcome']}",
        f"{item}started {report['started_at']}, took {report['duration_seconds']} s; "
        f"maintenance mode {report['maintenance_seconds']} s",
    ]
    if report["cause"]:
        lines.append(f"{item}cause: {report['cause']}")
    if report["update_class"]:
        lines.append(f"{item}update class: {report['update_class']}")
    if report.get("promotion_skipped"):
        lines.append(f"{item}promotion gate SKIPPED by {report['actor']}: {report['promotion_skipped']}")
    elif report.get("promotion"):
        lines.append(f"{item}promotion: {report['promotion']['reason']}")
    if report["backup"]:
        lines.append(f"{item}backup: {report['backup']}")
    if report["database_restored_from"]:
        lines.append(f"{item}database restored from: {report['database_restored_from']}")
    if report.get("quarantined_media"):
        lines.append(
            f"{item}media files added or changed after that backup, moved aside (not deleted) to "
            f"{report['quarantine']}: {', '.join(report['quarantined_media'])}"
        )
    if report.get("media_missing"):
        lines.append(
            f"{item}media files rows refer to but the backup lacks: {', '.join(report['media_missing'])}"
        )
    if report["migrations"]:
        lines.append(f"{item}migrations: {', '.join(report['migrations'])}")
        schedule = report.get("migration_schedule")
        if schedule and schedule["mode"] == "online":
            lines.append(
                f"{item}migrated online, the site up: {', '.join(schedule['before_switch']) or 'none'} "
                f"before the switch; {', '.join(schedule['after_switch']) or 'none'} after verify"
            )
        elif schedule:
            lines.append(f"{item}migrated under maintenance: {schedule['why']}")
        for name, kind in report.get("migration_kinds", {}).items():
            lines.append(f"{item}{name}: {kind['kind']} ({'; '.join(kind['why'])})")
        timing = report.get("migrations_estimate_vs_actual")
        if timing:
            lines.append(
                f"{item}migrations took {timing['actual_seconds']} s; "
                f"the rehearsal measured {timing['rehearsed_seconds']} s ({timing['source']})"
            )
    if report.get("etc_backup"):
        lines.append(f"{item}/etc backup: {report['etc_backup']}")
    if report.get("reboot_required"):
        lines.append(f"{item}a reboot is required (not done automatically)")
    if report.get("packages"):
        lines += ["", f"{sub}Packages"] + [f"{item}{text}" for text in report["packages"]]
    if report.get("held_back"):
        lines += ["", f"{sub}Held back"] + [f"{item}{text}" for text in report["held_back"]]
    if any(report["changelog"].values()):
        lines += ["", f"{sub}Changes"]
        for subjects in report["changelog"].values():
            lines += [f"{item}{text}" for text in subjects]  # subjects carry their type
    lines += ["", f"{sub}Steps"]
    for step in report["steps"]:
        detail = f" — {step['detail'][:300]}" if step.get("detail") else ""
        lines.append(f"{item}{step['name']}: {step['status']} ({step.get('seconds', '?')} s){detail}")
    if report["smoke_checks"]:
        lines += ["", f"{sub}Smoke checks"] + [f"{item}{line.strip()}" for line in report["smoke_checks"]]
    if report["query_timings_ms"]:
        lines += ["", f"{sub}Query timings after the run"]
        lines += [f"{item}{name}: {ms} ms" for name, ms in report["query_timings_ms"].items()]
    if report["notifications"]:
        lines += ["", f"{sub}Notifications"]
        lines += [
            f"{item}{n['channel']}: {'ok' if n['ok'] else 'FAILED'} ({n['detail']})"
            for n in report["notifications"]
        ]
    if report["error_log_tail"]:
        lines += ["", f"{sub}Error log since the run started"]
        fence = ["```"] if md else []
        lines += fence + [f"{'' if md else '  '}{line}" for line in report["error_log_tail"]] + fence
    return "\n".join(lines) + "\n"


def save(run: journal.Journal) -> Path:
    path = run.path.with_name(run.path.stem + ".report.md")
    path.write_text(render(build(run), "markdown"))
    return path


def query_timings() -> dict[str, float]:
    """A small sample of the queries behind the busiest pages, timed after the run (milliseconds)."""
    from crm.models import Ticket

    samples = {
        "ticket count": lambda: Ticket.objects.count(),
        "ticket list page 1": lambda: list(Ticket.objects.order_by("-created_at").values_list("id")[:25]),
        "open tickets by status": lambda: list(
            Ticket.objects.filter(status__in=["new", "in_progress"]).values_list("id")[:25]
        ),
    }
    timings = {}
    for name, query in samples.items():
        started = time.perf_counter()
        try:
            query()
        except Exception as error:  # a report never fails because of a sample
            timings[name] = f"failed: {type(error).__name__}"
            continue
        timings[name] = round((time.perf_counter() - started) * 1000, 2)
    connection.close()  # the new release's schema may differ from what this process cached
    return timings


def error_log_tail(since: str, lines: int = ERROR_LOG_LINES) -> list[str]:
    """ERROR and CRITICAL lines of LOG_FILE written since the run started (JSON lines or plain text)."""
    path = Path(settings.LOG_FILE) if getattr(settings, "LOG_FILE", "") else None
    if path is None or not path.is_file():
        return []
    found = []
    with path.open(errors="replace") as handle:
        for line in handle:
            text = line.rstrip("\n")
            try:
                entry = json.loads(text)
            except ValueError:
                if "ERROR" in text or "CRITICAL" in text:
                    found.append(text)
                continue
            if not isinstance(entry, dict) or entry.get("level") not in ("ERROR", "CRITICAL"):
                continue
            if str(entry.get("time", "")) >= since[:19]:
                found.append(f"{entry.get('time', '')} {entry.get('logger', '')}: {entry.get('message', '')}")
    return found[-lines:]


def _estimate_vs_actual(data: dict) -> dict | None:
    """The rehearsal's measured time for the migrations beside what they took on the live database
    (only the migrations both measured)."""
    facts = data.get("facts", {})
    rehearsed, actual = facts.get("rehearsal"), facts.get("migrated_seconds")
    if not rehearsed or not actual:
        return None
    both = set(rehearsed["migrations"]) & set(actual)
    return {
        "rehearsed_seconds": round(sum(rehearsed["migrations"][name] for name in both), 3),
        "actual_seconds": round(sum(actual[name] for name in both), 3),
        "source": rehearsed["source"],
    }
