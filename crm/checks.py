"""System checks for the helpdesk's own settings."""

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.utils import timezone

from crm import due_dates
from crm.storage import media_group_id
from updater.plan.policy import PolicyError


@register(Tags.compatibility)
def check_media_group(app_configs=None, **kwargs) -> list:
    try:
        media_group_id()
    except KeyError:
        return [
            Error(
                f"MEDIA_GROUP={settings.MEDIA_GROUP!r} is not a group on this machine: uploads would fail",
                hint="Create the group (groupadd) or leave MEDIA_GROUP empty.",
                id="crm.E001",
            )
        ]
    return []


@register(Tags.compatibility)
def check_due_dates(app_configs=None, **kwargs) -> list:
    """Targets and business hours are read on every new ticket: a typo must stop a deploy, not a ticket."""
    problems = []
    for name in ("DUE_RESPONSE_HOURS", "DUE_RESOLUTION_HOURS"):
        try:
            due_dates.targets(getattr(settings, name))
        except due_dates.DueDateError as error:
            problems.append(Error(f"{name} cannot be read: {error}", id="crm.E002"))
    if settings.BUSINESS_HOURS:
        try:
            due_dates.add_working_hours(timezone.now(), 1)
        except (due_dates.DueDateError, PolicyError) as error:
            problems.append(Error(f"BUSINESS_HOURS cannot be read: {error}", id="crm.E003"))
    return problems
