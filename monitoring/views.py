"""Probes and status for load balancers, dashboards and Prometheus.

health (liveness) touches nothing; ready asks the database; status and metrics run the checks of
monitoring/checks.py, in detail only for staff, a bearer token or allowed networks. All four are
exempt from login and from maintenance mode. The dashboard is a staff page.
"""

from django.contrib.admin.views.decorators import staff_member_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from helpdesk.version import app_version
from monitoring import access, attestations, dashboard, display, metrics, status
from updater.plan import promotion
from updater.plan.migrations import pending_migrations


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness. Anonymous callers (load balancers) learn pass or fail, nothing an attacker could use;
    the version needs the same access as status (the updater's health wait sends MONITORING_TOKEN)."""
    body = {"status": "pass"}
    if access.has_detail_access(request):
        body["version"] = app_version()
    return JsonResponse(body)


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers and no migration is pending (details as for health)."""
    try:
        pending = pending_migrations()
    except DatabaseError:
        body, details = {"status": "fail"}, {"database": "unreachable"}
    else:
        body, details = {"status": "pass" if not pending else "fail"}, {"pending_migrations": len(pending)}
    if access.has_detail_access(request):
        body.update(version=app_version(), **details)
    return JsonResponse(body, status=200 if body["status"] == "pass" else 503)


@never_cache
@require_GET
def status_view(request: HttpRequest) -> JsonResponse:
    body, http_status = status.document(detail=access.has_detail_access(request))
    return JsonResponse(body, status=http_status)


@never_cache
@require_GET
def releases_view(request: HttpRequest) -> HttpResponse:
    """What this environment attests to its successor's promotion gate (monitoring/attestations.py)."""
    if not (access.has_promotion_token(request) or access.has_detail_access(request)):
        response = HttpResponse("the releases need PROMOTION_TOKEN as a bearer token\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="helpdesk-promotion"'
        return response
    nonce = request.GET.get("nonce", "")
    if nonce and not attestations.NONCE.match(nonce):
        return HttpResponse("nonce: 16 to 128 letters, digits, '-' or '_'\n", status=400)
    body, signature = attestations.signed_body(nonce)
    response = HttpResponse(body, content_type="application/json")
    if signature:
        response[promotion.SIGNATURE_HEADER] = signature
    return response


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not access.has_detail_access(request):
        response = HttpResponse(
            "metrics need a bearer token, an allowed network or a staff session\n", status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="helpdesk-monitoring"'
        return response
    return HttpResponse(metrics.exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


@never_cache
@staff_member_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    body, _ = status.document(detail=True)
    runs = [run | {"status_text": display.outcome(run["status"])} for run in dashboard.history()]
    return render(
        request,
        "monitoring/dashboard.html",
        {
            "status": body,
            "status_text": display.STATUSES[body["status"]],
            "checks": [display.check(check) for check in body["checks"]],
            "status_labels": display.status_labels(),
            "runs": runs,
        },
    )
