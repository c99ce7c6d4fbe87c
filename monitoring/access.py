"""Who may see monitoring details: staff sessions, a bearer token (MONITORING_TOKEN), allowed networks."""

import hmac
import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest


def has_detail_access(request: HttpRequest) -> bool:
    token = settings.MONITORING_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    if _from_allowed_network(request.META.get("REMOTE_ADDR", "")):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def _from_allowed_network(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.MONITORING_ALLOWED_IPS)))


@cache
def _networks(specs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec.strip())
