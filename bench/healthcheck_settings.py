"""Settings for running django-health-check as the anchor of bench/status.py: ours plus its app."""

from helpdesk.settings import *  # noqa: F403
from helpdesk.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "health_check"]
ROOT_URLCONF = "bench.healthcheck_urls"
