"""Smoke checks run inside a release: the pages and the API answer, a ticket can be created and read.

Everything happens inside a transaction that is rolled back, so the checks leave no trace.
"""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client, override_settings

from crm.models import Organization, Ticket, UserProfile
from updater.plan import migrations


class SmokeFailed(Exception):
    pass


class _Rollback(Exception):
    pass


def run_smoke_checks(allowed_pending: Iterable[str] = ()) -> list[str]:
    """Return the checks that passed; raise SmokeFailed naming the first that did not.

    They run while maintenance mode is still on (it ends only after verification), so they go
    through every middleware except the maintenance one. `allowed_pending`: migrations that may
    still be unapplied (an update's contract migrations, run only once this release is verified)."""
    without_maintenance = [
        m for m in settings.MIDDLEWARE if m != "updater.middleware.MaintenanceModeMiddleware"
    ]
    with override_settings(MIDDLEWARE=without_maintenance):
        return _checks(set(allowed_pending))


def _checks(allowed_pending: set[str]) -> list[str]:
    passed: list[str] = []
    host = next((h.lstrip(".") for h in settings.ALLOWED_HOSTS if h not in ("*", "")), "localhost")
    client = Client(HTTP_HOST=host, raise_request_exception=False)  # a broken page is a 500, as users see it
    secure = bool(settings.SECURE_SSL_REDIRECT)

    def expect(label: str, response, status: int) -> None:
        if response.status_code != status:
            raise SmokeFailed(f"{label}: expected HTTP {status}, got {response.status_code}")
        passed.append(label)

    expect("login page", client.get("/login/", secure=secure), 200)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name="Smoke check organization (rolled back)")
            user = get_user_model().objects.create_user("smoke-check-agent")
            UserProfile.objects.create(user=user, role=UserProfile.Role.AGENT)
            client.force_login(user)
            expect("ticket list", client.get("/tickets/", secure=secure), 200)
            created = client.post(
                "/tickets/create/",
                {
                    "title": "Smoke check ticket",
                    "description": "rolled back",
                    "priority": "low",
                    "organization": organization.pk,
                },
                secure=secure,
            )
            expect("create a ticket", created, 302)
            ticket = Ticket.objects.get(title="Smoke check ticket", organization=organization)
            expect("read the ticket", client.get(f"/tickets/{ticket.pk}/", secure=secure), 200)
            expect("API list", client.get("/api/tickets/", secure=secure), 200)
            raise _Rollback
    except _Rollback:
        pass
    unexpected = [name for name in migrations.pending_migrations() if name not in allowed_pending]
    if unexpected:
        raise SmokeFailed(
            "migrate --check: the schema does not match this release's migrations "
            f"({', '.join(unexpected)} not applied)"
        )
    passed.append(
        "migrate --check"
        + (f" ({len(allowed_pending)} left for after the switch)" if allowed_pending else "")
    )
    return passed
