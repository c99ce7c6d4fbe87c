"""Settings for running django-dbbackup as the anchor of bench/backup.py: ours plus its app."""

import os

from helpdesk.settings import *  # noqa: F403
from helpdesk.settings import INSTALLED_APPS, STORAGES

INSTALLED_APPS = [*INSTALLED_APPS, "dbbackup"]
STORAGES = {
    **STORAGES,
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ["DBBACKUP_DIR"]},
    },
}
