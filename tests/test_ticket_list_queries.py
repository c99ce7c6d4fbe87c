"""The ticket list costs a constant number of queries, whatever the page size (no N+1)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm import tickets

pytestmark = pytest.mark.django_db


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("who", ["alice", "agent"])
def test_ticket_list_query_count_does_not_grow_with_page_size(helpdesk, as_user, who):
    for n in range(120):
        tickets.open_ticket(
            author=helpdesk.agent,
            title=f"T{n}",
            description="d",
            organization=helpdesk.acme,
            assigned_to=helpdesk.agent if n % 2 else None,
        )
    client = as_user(getattr(helpdesk, who))
    small = _queries(client, "/tickets/?per_page=10")
    large = _queries(client, "/tickets/?per_page=100")
    filtered = _queries(client, "/tickets/?per_page=100&status=new&search=T")
    assert small == large == filtered
    # session, user, profile, the probe past the count limit and the exact count (a short list), page,
    # 2 prefetches, organizations, the assignees' ids (two indexes, one UNION) and the assignees
    assert large <= 11


def test_api_list_query_count_does_not_grow_with_results(helpdesk, as_user):
    client = as_user(helpdesk.agent)
    few = _queries(client, "/api/tickets/")
    for n in range(30):
        tickets.open_ticket(author=helpdesk.agent, title=f"T{n}", description="d", organization=helpdesk.acme)
    assert _queries(client, "/api/tickets/") == few
