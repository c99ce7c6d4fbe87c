"""Health probes for load balancers and the updater: liveness and readiness.

Both are exempt from login and from maintenance mode, and answer fast: liveness touches nothing,
readiness asks the database one question.
"""

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from helpdesk.version import app_version


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "pass", "version": app_version()})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return JsonResponse(
            {"status": "fail", "version": app_version(), "database": "unreachable"}, status=503
        )
    body = {
        "status": "pass" if not pending else "fail",
        "version": app_version(),
        "pending_migrations": len(pending),
    }
    return JsonResponse(body, status=200 if not pending else 503)
