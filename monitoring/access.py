"""Who may see monitoring details: staff sessions, a bearer token (MONITORING_TOKEN), allowed networks."""

import hmac

from django.conf import settings
from django.http import HttpRequest

from helpdesk.proxies import within


def has_detail_access(request: HttpRequest) -> bool:
    token = settings.MONITORING_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    if within(request.META.get("REMOTE_ADDR", ""), tuple(settings.MONITORING_ALLOWED_IPS)):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def has_promotion_token(request: HttpRequest) -> bool:
    """The successor environment's promotion gate (PROMOTION_TOKEN): it may read the attestations only."""
    token = settings.PROMOTION_TOKEN
    header = request.headers.get("Authorization", "")
    return bool(token) and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token)
