"""Django system checks for the monitoring thresholds: each percentage within 0-100, every warning
level at or below its critical level, counts and times positive. A threshold the wrong way round
would page nobody, or everybody, until someone read the code."""

import ipaddress

from django.conf import settings
from django.core.checks import Error, Tags, register

_PAIRS = (
    ("DISK_WARN_PERCENT", "DISK_CRIT_PERCENT", 100.0),
    ("MEMORY_WARN_PERCENT", "MEMORY_CRIT_PERCENT", 100.0),
    ("LOAD_WARN_PER_CORE", "LOAD_CRIT_PER_CORE", None),
    ("DB_LATENCY_WARN_MS", "DB_LATENCY_CRIT_MS", None),
    ("BACKUP_WARN_HOURS", "BACKUP_CRIT_HOURS", None),
    ("ERROR_LOG_WARN_LINES", "ERROR_LOG_CRIT_LINES", None),
)
_AT_LEAST_ONE = ("ALERT_CONSECUTIVE", "ALERT_REPEAT_MINUTES", "ALERT_REPEAT_CRITICAL_MINUTES")


@register(Tags.compatibility)
def check_thresholds(app_configs=None, **kwargs) -> list:
    problems = []
    for warn_name, crit_name, ceiling in _PAIRS:
        warn, crit = getattr(settings, warn_name), getattr(settings, crit_name)
        if warn < 0 or crit < 0 or (ceiling is not None and max(warn, crit) > ceiling):
            limit = f"0-{ceiling:g}" if ceiling is not None else "0 or more"
            problems.append(
                Error(f"{warn_name}={warn:g} and {crit_name}={crit:g} must be {limit}", id="monitoring.E001")
            )
        elif warn > crit:
            problems.append(
                Error(
                    f"{warn_name}={warn:g} is above {crit_name}={crit:g}: "
                    "the warning would come after the alarm",
                    id="monitoring.E002",
                )
            )
    for name in _AT_LEAST_ONE:
        if getattr(settings, name) < 1:
            problems.append(Error(f"{name} must be at least 1", id="monitoring.E003"))
    if not 0 <= settings.ALERT_HYSTERESIS < 100:
        problems.append(Error("ALERT_HYSTERESIS must be 0 or more and below 100", id="monitoring.E004"))
    return problems


@register(Tags.security)
def check_networks(app_configs=None, **kwargs) -> list:
    """Address lists that decide who sees details and whose X-Forwarded-For is believed: a typo would
    otherwise fail every request that consults them."""
    problems = []
    for name in ("MONITORING_ALLOWED_IPS", "TRUSTED_PROXIES"):
        for spec in getattr(settings, name):
            try:
                ipaddress.ip_network(spec.strip(), strict=False)
            except ValueError:
                problems.append(
                    Error(f"{name} holds {spec!r}, not an address or network", id="monitoring.E005")
                )
    return problems
