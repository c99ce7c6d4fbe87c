"""System checks for the helpdesk's own settings."""

from django.conf import settings
from django.core.checks import Error, Tags, register

from crm.storage import media_group_id


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
