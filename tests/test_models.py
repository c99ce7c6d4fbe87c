"""The model contract, enforced by the database itself (on SQLite and on MariaDB)."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from crm.models import ActivityLog, Organization, Ticket, UserProfile


def test_database_rejects_an_invalid_ticket_status(ticket):
    # QuerySet.update() skips model validation: only the CHECK constraint stands in the way.
    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.filter(pk=ticket.pk).update(status="bogus")
    ticket.refresh_from_db()
    assert ticket.status == "new"


def test_database_rejects_an_invalid_status_in_raw_sql(ticket):
    table = connection.ops.quote_name(Ticket._meta.db_table)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET status = %s WHERE id = %s", ["deleted", ticket.pk])  # noqa: S608
    assert Ticket.objects.get(pk=ticket.pk).status == "new"


@pytest.mark.parametrize("status", ["new", "in_progress", "resolved", "closed"])
def test_database_accepts_every_valid_status(ticket, status):
    Ticket.objects.filter(pk=ticket.pk).update(status=status)
    assert Ticket.objects.get(pk=ticket.pk).status == status


def test_database_rejects_an_invalid_priority(ticket):
    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.filter(pk=ticket.pk).update(priority="whenever")


def test_database_rejects_an_invalid_role(customer):
    with pytest.raises(IntegrityError), transaction.atomic():
        UserProfile.objects.filter(user=customer).update(role="superhero")


def test_ticket_defaults(ticket):
    assert (ticket.status, ticket.priority, ticket.assigned_to, ticket.resolved_at) == (
        "new",
        "normal",
        None,
        None,
    )
    assert ticket.resolution_notes == ""
    assert ticket.created_at is not None


def test_deleting_an_organization_with_tickets_is_refused(ticket, organization):
    with pytest.raises(ProtectedError):
        organization.delete()
    assert Ticket.objects.filter(pk=ticket.pk).exists()


def test_activity_log_outlives_its_ticket(ticket, customer):
    entry = ActivityLog.objects.create(
        ticket=ticket, actor=customer, action="created", changes={"title": [None, "x"]}
    )
    ticket.delete()
    entry.refresh_from_db()
    assert entry.ticket is None
    assert entry.changes == {"title": [None, "x"]}


def test_organization_names_are_unique(organization):
    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(name=organization.name)


def test_ticket_list_indexes_exist_in_the_database(db):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Ticket._meta.db_table)
    indexes = {name for name, info in constraints.items() if info["index"]}
    assert {"crm_ticket_created_idx", "crm_ticket_status_created_idx", "crm_ticket_org_status_idx"} <= indexes


def test_agents_admins_and_superusers_are_assignable_and_customers_and_inactive_people_are_not(helpdesk):
    from django.contrib.auth import get_user_model

    from crm import access
    from tests.conftest import _person

    users = get_user_model().objects
    users.create_user("root", "root@example.com", "pw", is_superuser=True)  # no profile at all
    _person("gone", "agent", is_active=False)
    _person("zed", "agent")
    assert [user.username for user in access.assignable_users()] == ["adam", "agnes", "root", "zed"]
    assert access.assignable_users().filter(pk=helpdesk.alice.pk).exists() is False


def test_the_assignee_indexes_exist_in_the_database(db):
    from django.contrib.auth import get_user_model

    from crm.models import UserProfile

    with connection.cursor() as cursor:
        profile = connection.introspection.get_constraints(cursor, UserProfile._meta.db_table)
        user = connection.introspection.get_constraints(cursor, get_user_model()._meta.db_table)
    assert profile["crm_userprofile_role_idx"]["columns"] == ["role", "user_id"]
    assert user["crm_user_superuser_idx"]["columns"] == ["is_superuser"]
