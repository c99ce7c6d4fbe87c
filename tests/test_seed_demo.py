"""seed_demo: demo organizations, people and tickets with history, and logins printed to try them."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from crm.models import ActivityLog, Organization, Ticket, TicketComment, UserProfile

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_creates_the_requested_counts_and_prints_logins():
    output = seed("--tickets", "120", "--orgs", "4")

    assert Organization.objects.count() == 4
    assert Ticket.objects.count() == 120
    # one admin, five agents, two customers per organization
    assert get_user_model().objects.count() == 1 + 5 + 4 * 2
    assert UserProfile.objects.filter(role="customer").count() == 8
    assert TicketComment.objects.exists()
    assert ActivityLog.objects.filter(action="created").count() == 120
    assert "admin / admin" in output
    assert "agent1 / agent" in output
    assert "customer0001-1 / customer" in output


def test_printed_logins_actually_work(rf):
    seed("--tickets", "5", "--orgs", "1")

    def login(username: str, password: str):
        return authenticate(rf.post("/login/"), username=username, password=password)

    admin = login("admin", "admin")
    assert admin is not None and admin.is_superuser
    assert login("agent3", "agent").profile.role == "agent"
    customer = login("customer0001-2", "customer")
    assert customer.profile.organization.name == "Demo Organization 0001"


def test_demo_tickets_are_consistent():
    seed("--tickets", "300", "--orgs", "5")
    tickets = Ticket.objects.select_related("created_by__profile")
    for ticket in tickets:
        assert ticket.created_by.profile.organization_id == ticket.organization_id
        assert (ticket.resolved_at is not None) == (ticket.status in ("resolved", "closed"))
        assert ticket.resolved_at is None or ticket.created_at <= ticket.resolved_at <= timezone.now()
        if ticket.status == "new":
            assert ticket.assigned_to_id is None
    assert set(tickets.values_list("status", flat=True)) == {"new", "in_progress", "resolved", "closed"}
    assert len(set(tickets.values_list("created_at", flat=True))) > 250  # spread over the year


def test_seeding_again_reuses_people_and_adds_tickets():
    seed("--tickets", "10", "--orgs", "2")
    users = get_user_model().objects.count()
    seed("--tickets", "10", "--orgs", "2")
    assert get_user_model().objects.count() == users
    assert Organization.objects.count() == 2
    assert Ticket.objects.count() == 20


def test_if_empty_leaves_a_database_with_tickets_alone():
    seed("--tickets", "3", "--orgs", "1")
    output = seed("--tickets", "50", "--orgs", "1", "--if-empty")
    assert Ticket.objects.count() == 3
    assert "already has tickets" in output


def test_same_seed_gives_the_same_data():
    seed("--tickets", "20", "--orgs", "2", "--seed", "7")
    first = list(Ticket.objects.order_by("id").values_list("title", "status", "priority"))
    Ticket.objects.all().delete()
    seed("--tickets", "20", "--orgs", "2", "--seed", "7")
    assert list(Ticket.objects.order_by("id").values_list("title", "status", "priority")) == first


@override_settings(ENVIRONMENT="prod")
def test_seed_demo_refuses_to_run_in_prod():
    with pytest.raises(CommandError, match="well-known passwords"):
        seed("--tickets", "1", "--orgs", "1")
    assert not get_user_model().objects.filter(username="admin").exists()


def test_bad_counts_are_refused():
    with pytest.raises(CommandError, match="--orgs at least 1"):
        seed("--orgs", "0")
