"""Our URLs plus django-health-check's view with the database and psutil checks (bench/status.py)."""

from django.urls import path
from health_check.views import HealthCheckView

from helpdesk.urls import urlpatterns as helpdesk_urlpatterns

CHECKS = [
    "health_check.checks.Database",
    "health_check.contrib.psutil.CPU",
    "health_check.contrib.psutil.Memory",
    "health_check.contrib.psutil.Disk",
]

urlpatterns = [*helpdesk_urlpatterns, path("ht/", HealthCheckView.as_view(checks=CHECKS))]
