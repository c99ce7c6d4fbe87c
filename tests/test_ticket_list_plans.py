"""The ticket list's queries as MariaDB plans them (EXPLAIN), on 20,000 demo tickets: every filter and
every order reads an index and never the whole table, and the default views (an agent's list, a
customer's list) read their first page straight from an index, without sorting.

Transactional: the statistics the optimizer plans with (ANALYZE TABLE) only count committed rows."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from crm import access, demo_data, frequent_search, ticket_filters
from crm.models import UserProfile

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'mysql'", reason="the plans are MariaDB's"),
]

FILTERS = ["", "status=new", "priority=high", "assignee=me", "assignee=none", "overdue=1", "organization=ORG"]
SORTS = [f"sort={sort}" for sort in ticket_filters.SORTS]


def plan(user, query: str) -> list[dict]:
    filters = ticket_filters.parse(QueryDict(query), user)
    queryset = ticket_filters.apply(access.visible_tickets(user), filters, user)[:25]
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture
def demo():
    demo_data.seed(tickets=20_000, orgs=50)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE crm_ticket")
        cursor.fetchall()
    users = get_user_model().objects
    return users.get(username="agent1"), users.filter(profile__role="customer").first()


def test_every_filter_and_every_order_reads_an_index_and_the_default_views_never_sort(demo):
    agent, customer = demo
    organization = str(access.organization_id_of(customer))
    scans, default_sorts = [], []
    for user in (agent, customer):
        for query in [*FILTERS, *SORTS]:
            query = query.replace("ORG", organization)
            for row in plan(user, query):
                if row["type"] == "ALL" or not row["key"]:
                    scans.append((user.username, query, row["type"], row["Extra"]))
                if query == "" and "filesort" in (row["Extra"] or ""):
                    default_sorts.append((user.username, row["key"], row["Extra"]))
    assert scans == []
    assert default_sorts == []


def test_the_walk_for_frequent_words_reads_an_index_in_order_and_looks_comments_up_per_ticket(demo):
    agent, customer = demo
    problems = []
    for user in (agent, customer):
        for sort in ("newest", "oldest", "updated", "priority", "due", "title"):
            filters = ticket_filters.parse(QueryDict(f"sort={sort}"), user)
            queryset = ticket_filters.apply(access.visible_tickets(user), filters, user)
            walk = frequent_search.matches_in_order(queryset, "printer", ticket_filters.SORTS[sort])
            sql, params = walk.values_list("pk", flat=True)[:26].query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(f"{frequent_search.WALK_OPTIMIZER}EXPLAIN {sql}", params)
                columns = [column[0] for column in cursor.description]
                rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            ticket, comments = rows[0], rows[-1]
            # An organization's tickets in other orders are few and sorted; its newest, and every order
            # of the whole table, are read from an index in order.
            may_sort = user == customer and sort != "newest"
            if not ticket["key"] or ("filesort" in (ticket["Extra"] or "") and not may_sort):
                problems.append((user.username, sort, "tickets", ticket["type"], ticket["Extra"]))
            if comments["select_type"] != "DEPENDENT SUBQUERY" or comments["type"] != "ref":
                problems.append((user.username, sort, "comments", comments["select_type"], comments["type"]))
    assert problems == [], problems


def test_the_people_a_ticket_can_be_assigned_to_are_read_from_indexes_not_from_every_user():
    """A few agents among very many customers: the list's assignee options (and every event of an
    unassigned ticket) read the role and superuser indexes, never the whole user table."""
    users = get_user_model().objects
    customers = users.bulk_create(
        get_user_model()(username=f"c{n}", email=f"c{n}@x.example") for n in range(3000)
    )
    UserProfile.objects.bulk_create(UserProfile(user=user, role="customer") for user in customers)
    agent = users.create_user("agent", "agent@x.example")
    UserProfile.objects.create(user=agent, role="agent")
    users.create_user("root", "root@x.example", is_superuser=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE auth_user, crm_userprofile")
        cursor.fetchall()
    with CaptureQueriesContext(connection) as queries:
        assert [name for _id, name in access.assignable_users().values_list("id", "username")] == [
            "agent",
            "root",
        ]
    scans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            cursor.execute("EXPLAIN " + query["sql"])
            columns = [column[0] for column in cursor.description]
            for row in (dict(zip(columns, row, strict=True)) for row in cursor.fetchall()):
                if row["type"] == "ALL" and not str(row["table"]).startswith("<union"):
                    scans.append((row["table"], query["sql"]))
    assert scans == []
