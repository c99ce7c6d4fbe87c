"""The checks and runs as the dashboard shows them, in the reader's language.

The status JSON and the metrics stay in English (machines read them and match on the words); the
dashboard translates names, units, details and outcomes here, and formats each value by its unit:
counts as whole numbers, measurements with one decimal, in the locale's notation."""

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy

from monitoring import checks
from updater.run import journal

NO_VALUE = "\u2013"  # an en dash where a check could not measure anything

NAMES = {
    "database": pgettext_lazy("monitoring check", "database"),
    "migrations": pgettext_lazy("monitoring check", "migrations"),
    "backup": pgettext_lazy("monitoring check", "backup"),
    "offsite backup": pgettext_lazy("monitoring check", "off-site backup"),
    "mail outbox": pgettext_lazy("monitoring check", "mail outbox"),
    "overdue tickets": pgettext_lazy("monitoring check", "overdue tickets"),
    "memory": pgettext_lazy("monitoring check", "memory"),
    "load": pgettext_lazy("monitoring check", "load"),
    "services": pgettext_lazy("monitoring check", "services"),
}
UNITS = {
    "ms": "ms",
    "percent": "%",
    "hours": pgettext_lazy("unit", "h"),
    "minutes": pgettext_lazy("unit", "min"),
    "load per core (5 min)": gettext_lazy("per core (5 min)"),
}
COUNTS = {  # unit -> its word for n of them
    "migrations": lambda n: ngettext("pending migration", "pending migrations", n),
    "inactive services": lambda n: ngettext("inactive service", "inactive services", n),
    "tickets": lambda n: ngettext("overdue ticket", "overdue tickets", n),
}
DETAILS = {
    "no backup yet": gettext_lazy("no backup yet"),
    "no off-site copy yet": gettext_lazy("no off-site copy yet"),
    "an update is probably migrating": gettext_lazy("an update is probably migrating"),
    "the database could not be asked": gettext_lazy("the database could not be asked"),
    "none configured": gettext_lazy("none configured"),
    "mails given up (dead letters)": gettext_lazy("mails given up (dead letters)"),
    "check_system has not reported recently": gettext_lazy("check_system has not reported recently"),
    "check_system has not run yet": gettext_lazy("check_system has not run yet"),
}
STATUSES = {
    checks.PASS: pgettext_lazy("check status", "OK"),
    checks.WARN: pgettext_lazy("check status", "warning"),
    checks.FAIL: pgettext_lazy("check status", "failing"),
}
OUTCOMES = {
    journal.RUNNING: pgettext_lazy("run outcome", "running"),
    journal.SUCCEEDED: pgettext_lazy("run outcome", "succeeded"),
    journal.FAILED: pgettext_lazy("run outcome", "failed"),
    journal.ROLLED_BACK: pgettext_lazy("run outcome", "rolled back"),
    journal.UNDO_FAILED: pgettext_lazy("run outcome", "undo failed"),
    journal.INCOMPLETE: pgettext_lazy("run outcome", "incomplete"),
    journal.PAUSED: pgettext_lazy("run outcome", "paused between fleet stages"),
}


def check(raw: dict) -> dict:
    """One check of the status document, with label, value, unit, status and detail to show."""
    name, unit, observed = raw["name"], raw["unit"], raw["observed"]
    if name.startswith("disk "):
        label = _("disk %(mount)s") % {"mount": name.removeprefix("disk ")}
    else:
        label = str(NAMES.get(name, name))
    if unit in COUNTS:
        value = NO_VALUE if observed is None else number_format(round(observed), 0)
        unit_text = COUNTS[unit](round(observed or 0))
    else:
        value = NO_VALUE if observed is None else number_format(observed, 1)
        unit_text = str(UNITS.get(unit, unit))
    return raw | {
        "label": label,
        "value": value,
        "unit_text": unit_text,
        "is_count": unit in COUNTS,
        "status_text": str(STATUSES[raw["status"]]),
        "detail_text": _detail(raw["detail"]),
    }


def _detail(detail: str) -> str:
    if detail in DETAILS:
        return str(DETAILS[detail])
    if detail.startswith("unreachable: "):
        return _("unreachable: %(error)s") % {"error": detail.removeprefix("unreachable: ")}
    return detail  # service states ("mariadb: failed") and the operating system's own messages


def outcome(status: str) -> str:
    return str(OUTCOMES.get(status, status))


def status_labels() -> dict[str, str]:
    """For the page's script, which refreshes the badges every 10 seconds."""
    return {status: str(text) for status, text in STATUSES.items()}
