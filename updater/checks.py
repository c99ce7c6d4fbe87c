"""Django system checks for the updater's settings: `manage.py check` (and every command that runs the
checks) fails at once on a configuration that would otherwise fail half-way through an update.

Errors: an unreadable update window or time zone, an unknown NOTIFY_MODE or STATUS_PAGE_KIND, a
deployment root the updater cannot write, git missing in a deployment, a health URL the updater may
not read the version from. With --deploy, a warning for a
staging or production deployment with no way to reload the app server (an update would switch code
nobody loads).
"""

import os
import shutil
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from updater import layout
from updater.notify import channels
from updater.plan import policy

_WINDOW_SETTINGS = {
    policy.CRITICAL: "UPDATE_WINDOW_CRITICAL",
    policy.IMPORTANT: "UPDATE_WINDOW_IMPORTANT",
    policy.ROUTINE: "UPDATE_WINDOW_ROUTINE",
}


@register(Tags.compatibility)
def check_update_policy(app_configs=None, **kwargs) -> list:
    problems = []
    try:
        ZoneInfo(settings.UPDATE_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError) as error:
        problems.append(
            Error(
                f"UPDATE_TIME_ZONE {settings.UPDATE_TIME_ZONE!r} is not a time zone: {error}",
                id="updater.E001",
            )
        )
    for update_class, name in _WINDOW_SETTINGS.items():
        try:
            policy.window_for(update_class)
        except policy.PolicyError as error:
            problems.append(Error(f"{name} cannot be read: {error}", id="updater.E002"))
    return problems


@register(Tags.compatibility)
def check_notifications(app_configs=None, **kwargs) -> list:
    problems = []
    for name, known, code in (
        ("NOTIFY_MODE", channels.MODES, "updater.E003"),
        ("STATUS_PAGE_KIND", channels.STATUS_PAGE_KINDS, "updater.E004"),
    ):
        value = getattr(settings, name)
        if value not in known:
            problems.append(Error(f"{name} {value!r} is unknown", hint=f"one of {', '.join(known)}", id=code))
    return problems


@register(Tags.compatibility, deploy=True)
def check_reload_method(app_configs=None, **kwargs) -> list:
    """With `check --deploy` (a sysadmin's check; cron runs stay quiet): a staging or production
    deployment must be able to tell its app server that `current` moved."""
    if settings.ENVIRONMENT not in ("staging", "prod"):
        return []
    if settings.UPDATER_RELOAD_COMMAND or settings.UPDATER_RELOAD_PIDFILE:
        return []
    try:
        layout.find_root()
    except layout.NotADeployment:
        return []  # no releases to switch
    return [
        Warning(
            "no way to reload the app server: an update would switch `current` and keep serving the old code",
            hint="set UPDATER_RELOAD_COMMAND (e.g. 'sudo systemctl reload helpdesk') "
            "or UPDATER_RELOAD_PIDFILE",
            id="updater.W001",
        )
    ]


@register(Tags.compatibility)
def check_health_wait(app_configs=None, **kwargs) -> list:
    """The health endpoint tells its version only to monitoring: with neither a token nor an allowed
    network the updater's wait for the new version could never succeed, and every update would fail."""
    if settings.UPDATER_HEALTH_URL and not settings.MONITORING_TOKEN and not settings.MONITORING_ALLOWED_IPS:
        return [
            Error(
                "UPDATER_HEALTH_URL is set but the health endpoint would not tell the updater its version",
                hint="set MONITORING_TOKEN (the updater sends it) or MONITORING_ALLOWED_IPS",
                id="updater.E007",
            )
        ]
    return []


@register(Tags.compatibility)
def check_deployment(app_configs=None, **kwargs) -> list:
    try:
        root = layout.find_root()
    except layout.NotADeployment:
        return []  # no releases to switch: nothing below applies
    problems = []
    for path in (root.path, root.shared, root.releases):
        if not os.access(path, os.W_OK | os.X_OK):
            problems.append(
                Error(
                    f"{path} is not writable by this user: updates and rollbacks cannot run",
                    id="updater.E005",
                )
            )
    if shutil.which("git") is None:
        problems.append(Error("git is not installed: releases cannot be fetched", id="updater.E006"))
    return problems


@register(Tags.compatibility)
def check_promotion(app_configs=None, **kwargs) -> list:
    """A predecessor's soak may be short for critical updates, never none; an http predecessor with no
    signing key would be believed on the word of anyone on the path."""
    if not settings.UPDATER_PROMOTION_SOURCE:
        return []
    problems = []
    for name in ("UPDATER_SOAK_HOURS_CRITICAL", "UPDATER_SOAK_HOURS_IMPORTANT", "UPDATER_SOAK_HOURS_ROUTINE"):
        if getattr(settings, name) <= 0:
            problems.append(
                Error(
                    f"{name} is {getattr(settings, name)}; a soak time may be short, never none",
                    id="updater.E008",
                )
            )
    if settings.UPDATER_PROMOTION_SOURCE.startswith("http://") and not settings.UPDATER_PROMOTION_SOURCE_KEY:
        problems.append(
            Warning(
                "UPDATER_PROMOTION_SOURCE is plain http and UPDATER_PROMOTION_SOURCE_KEY is empty: the "
                "predecessor's answers cannot be told from forged ones",
                hint="set the same key as the predecessor's PROMOTION_SIGNING_KEY, or use https",
                id="updater.W002",
            )
        )
    return problems
