"""Answers 503 while maintenance mode is on; health probes still get through."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from updater.run import maintenance

EXEMPT_PATHS = (
    "/monitoring/health/",
    "/monitoring/ready/",
    "/monitoring/status/",
    "/monitoring/metrics",
    "/monitoring/releases/",  # a successor asking whether it may take a release
)


class MaintenanceModeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in EXEMPT_PATHS or not maintenance.is_on():
            return self.get_response(request)
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": "The helpdesk is being updated; try again in a few minutes."})
        else:
            response = HttpResponse(render_to_string("maintenance.html"))
        response.status_code = 503
        response["Retry-After"] = str(settings.MAINTENANCE_RETRY_AFTER)
        response["Cache-Control"] = "no-store"
        return response
