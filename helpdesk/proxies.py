"""The client's address behind a reverse proxy, believed only from proxies we were told to trust.

Behind Apache every request comes from 127.0.0.1: the monitoring allow-list would let every client
in, and django-axes would lock out a username for everyone at once. X-Forwarded-For can say who the
client is, but anyone can send that header, so it is read only when the request comes from an
address in TRUSTED_PROXIES (empty, the default, means never). The client is then the right-most
address in the header that is not itself a trusted proxy: each proxy appends the address it saw, so
what a client wrote itself stands further left and is ignored.

TrustedProxyMiddleware runs first and puts that address in REMOTE_ADDR, so everything after it
(axes, the monitoring allow-list, the logs) sees the client; the proxy's own address is kept in
PROXY_ADDR.
"""

import ipaddress
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: HttpRequest) -> str:
    """The address django-axes counts failures by (AXES_CLIENT_IP_CALLABLE)."""
    return request.META.get("REMOTE_ADDR", "")


def resolve(remote_addr: str, forwarded_for: str, trusted: tuple[str, ...]) -> str:
    """The client's address for a request from remote_addr carrying X-Forwarded-For: forwarded_for."""
    if not trusted or not within(remote_addr, trusted):  # off by default: nothing to parse
        return remote_addr
    client = remote_addr
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not _is_address(hop):
            break  # garbage in the chain: trust nothing further left
        client = hop
        if not within(hop, trusted):
            break
    return client


def within(address: str, specs: tuple[str, ...]) -> bool:
    """Whether address lies in one of the networks specs (addresses or CIDRs); False for no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(specs))


class TrustedProxyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        remote = request.META.get("REMOTE_ADDR", "")
        client = resolve(
            remote, request.META.get("HTTP_X_FORWARDED_FOR", ""), tuple(settings.TRUSTED_PROXIES)
        )
        if client != remote:
            request.META["PROXY_ADDR"] = remote
            request.META["REMOTE_ADDR"] = client
        return self.get_response(request)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@cache
def _networks(specs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec.strip())
