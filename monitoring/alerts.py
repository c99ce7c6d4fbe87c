"""Deduplicated alerts from check results: what check_system sends, and when.

Per check, a level (ok, warning, critical) is kept in check_system's state file between cron runs:
- a level is entered only after ALERT_CONSECUTIVE samples at or above it (a value flapping around a
  threshold does not page anyone) and left only when the value falls ALERT_HYSTERESIS below it;
- one message per transition: entering warning, entering critical (which suppresses the warning of
  the same check: ok -> critical sends only the critical), and a single "resolved" on the way back;
- reminders while a level stands, every ALERT_REPEAT_MINUTES (ALERT_REPEAT_CRITICAL_MINUTES for
  critical); going down from critical to warning is not news.
Checks without a number (an unreachable database) take their level from the check's status.
"""

from dataclasses import dataclass

from django.conf import settings

from monitoring.checks import FAIL, WARN, Check

OK, WARNING, CRITICAL = "ok", "warning", "critical"
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}


@dataclass(frozen=True)
class Alert:
    check: str
    kind: str  # "warning", "critical", "resolved", "reminder"
    level: str
    text: str

    @property
    def subject_flag(self) -> str:
        return {"resolved": "RESOLVED", "reminder": f"STILL {self.level.upper()}"}.get(
            self.kind, self.kind.upper()
        )


def evaluate(previous: dict, results: list[Check], now: float) -> tuple[dict, list[Alert]]:
    """New per-check state and the alerts to send for this round of samples."""
    states, alerts = {}, []
    for check in results:
        state = dict(previous.get(check.name) or {"level": OK, "breaches": 0, "last_sent": 0.0})
        alert = _step(state, check, now)
        states[check.name] = state
        if alert:
            alerts.append(alert)
    return states, alerts


def _step(state: dict, check: Check, now: float) -> Alert | None:
    current = state["level"]
    target = _level(check, current)
    if RANK[target] > RANK[current]:
        state["breaches"] = state.get("breaches", 0) + 1
        if state["breaches"] < settings.ALERT_CONSECUTIVE:
            return None
        state.update(level=target, breaches=0, since=now, last_sent=now)
        return Alert(check.name, target, target, _describe(check, target))
    state["breaches"] = 0
    if target == OK and current != OK:
        state.update(level=OK, since=now, last_sent=now)
        return Alert(check.name, "resolved", OK, f"{check.name} is back to normal: {_value(check)}")
    if RANK[target] < RANK[current]:
        state["level"] = target  # critical -> warning: the warning is implied by the critical already sent
        return None
    repeat = settings.ALERT_REPEAT_CRITICAL_MINUTES if current == CRITICAL else settings.ALERT_REPEAT_MINUTES
    if current != OK and now - state.get("last_sent", 0.0) >= repeat * 60:
        state["last_sent"] = now
        return Alert(check.name, "reminder", current, _describe(check, current))
    return None


def _level(check: Check, current: str) -> str:
    """The level the value calls for, holding the current one until it is ALERT_HYSTERESIS below."""
    if check.observed is None or check.warn is None:
        return CRITICAL if check.status == FAIL else WARNING if check.status == WARN else OK
    value, band = check.observed, settings.ALERT_HYSTERESIS
    fail = check.fail if check.fail is not None else float("inf")
    if value >= fail or (current == CRITICAL and value > fail - band):
        return CRITICAL
    if value >= check.warn or (current != OK and value > check.warn - band):
        return WARNING
    return OK


def _describe(check: Check, level: str) -> str:
    limit = check.fail if level == CRITICAL else check.warn
    threshold = f" (threshold {limit:g} {check.unit})" if limit is not None else ""
    detail = f"; {check.detail}" if check.detail else ""
    return f"{check.name} is {level}: {_value(check)}{threshold}{detail}"


def _value(check: Check) -> str:
    return "no value" if check.observed is None else f"{check.observed:g} {check.unit}"
