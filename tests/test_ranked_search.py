"""Best-match pages on MariaDB (crm/ranked_search.py): one statement gives a page and the number of
matches, with the very tickets and order the ORM's ranking (crm.search.by_relevance) gives, inside
the searcher's organization and the list's filters.

Transactional: InnoDB's FULLTEXT index only sees committed rows."""

from datetime import timedelta

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm import access, api, paging, ranked_search, search, ticket_filters, tickets
from crm.models import Ticket, TicketComment

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'mysql'", reason="the statement is MariaDB's"),
]


@pytest.fixture
def scanners(helpdesk):
    """Tickets that say "scanner" once to four times, some at the same instant (ties broken by the
    newest, then the id), some resolved; one only in a public comment, one in its text and a comment,
    one only in an internal note; Globex has some too."""
    start = timezone.now() - timedelta(days=10)
    for n in range(30):
        words = " ".join(["scanner"] * (1 + n % 4))
        author = helpdesk.alice if n % 5 else helpdesk.bob
        ticket = tickets.open_ticket(author=author, title=f"Ticket {n}", description=f"The {words} again")
        status = "resolved" if n % 3 == 0 else "new"
        due = start + timedelta(days=1) if n % 2 else timezone.now() + timedelta(days=1)  # odd: overdue
        Ticket.objects.filter(pk=ticket.pk).update(
            created_at=start + timedelta(hours=n // 2), status=status, due_at=due
        )
    quiet = tickets.open_ticket(author=helpdesk.alice, title="Quiet", description="Nothing")
    TicketComment.objects.create(ticket=quiet, author=helpdesk.agent, body="The scanner, in a comment")
    strong = Ticket.objects.get(title="Ticket 3")  # found twice: its text ranks it, not the comment
    TicketComment.objects.create(ticket=strong, author=helpdesk.agent, body="The scanner works now")
    noted = tickets.open_ticket(author=helpdesk.alice, title="Noted", description="Nothing")
    TicketComment.objects.create(ticket=noted, author=helpdesk.agent, body="scanner", is_internal=True)
    return helpdesk


def by_the_orm(user, query: str, term: str = "scanner") -> list[int]:
    filters = ticket_filters.parse(QueryDict(query), user)
    scoped = ticket_filters.apply(access.visible_tickets(user), filters, user)
    ranked = search.by_relevance(search.matching(scoped, term), term)
    return list(ranked.values_list("pk", flat=True))


def by_the_statement(user, query: str, per_page: int, term: str = "scanner") -> tuple[list[int], int]:
    filters = ticket_filters.parse(QueryDict(query), user)
    scoped = ticket_filters.apply(access.visible_tickets(user), filters, user)
    pages = Paginator(ranked_search.ranked_results(scoped, term, slice(0, per_page)), per_page)
    seen = [t.pk for number in pages.page_range for t in pages.page(number).object_list]
    return seen, pages.count


@pytest.mark.parametrize("query", ["", "status=new", "status=resolved&priority=normal", "overdue=1"])
def test_pages_and_count_are_the_orms_ranking_for_agents_and_customers(scanners, query):
    for user in (scanners.agent, scanners.alice, scanners.bob):
        expected = by_the_orm(user, query)
        assert len(expected) >= 2
        for per_page in (4, 7, 100):
            found = by_the_statement(user, query, per_page)
            assert found == (expected, len(expected)), (user.username, query, per_page)
    quiet, noted = Ticket.objects.get(title="Quiet").pk, Ticket.objects.get(title="Noted").pk
    everything = by_the_statement(scanners.agent, "", 100)[0]
    assert quiet in everything and noted not in everything  # public comments count, notes never
    bobs, alices = by_the_statement(scanners.bob, "", 100)[0], by_the_statement(scanners.alice, "", 100)[0]
    assert not set(bobs) & set(alices)


def test_a_bare_number_is_the_ticket_and_the_word(scanners):
    ticket = Ticket.objects.get(title="Ticket 7")
    term = str(ticket.pk)
    Ticket.objects.filter(title="Ticket 9").update(description=f"See {term} first")
    found, count = by_the_statement(scanners.agent, "", 10, term)
    assert set(found) == {ticket.pk, Ticket.objects.get(title="Ticket 9").pk} and count == 2
    assert found == by_the_orm(scanners.agent, "", term)


def test_what_the_statement_cannot_do_is_left_to_the_orm(scanners, django_user_model):
    nobody = django_user_model.objects.create_user("nobody", "n@example.com", "pw")  # sees no ticket
    assert ranked_search.ranked_results(access.visible_tickets(nobody), "scanner", slice(0, 5)) is None
    joined = Ticket.objects.filter(organization__name="Acme")
    assert ranked_search.ranked_results(joined, "scanner", slice(0, 5)) is None
    assert ranked_search.ranked_results(Ticket.objects.all(), "#5", slice(0, 5)) is None
    assert ranked_search.ranked_results(Ticket.objects.all(), "pc", slice(0, 5)) is None  # too short


def test_the_api_gives_the_same_ranking_counted_exactly(scanners, as_user, monkeypatch):
    monkeypatch.setattr(api.TicketPages, "page_size", 4)
    monkeypatch.setattr(paging, "COUNT_LIMIT", 3)  # the ranked statement counts them all anyway
    client = as_user(scanners.agent)
    expected = by_the_orm(scanners.agent, "status=new")
    seen, url = [], "/api/tickets/?search=scanner&status=new"
    while url:
        body = client.get(url).json()
        assert (body["count"], body["count_exact"]) == (len(expected), True)
        seen += [ticket["id"] for ticket in body["results"]]
        url = body["next"]
    assert seen == expected and len(expected) > 8  # three pages or more
    last = client.get("/api/tickets/", {"search": "scanner", "status": "new", "page": "last"}).json()
    assert [ticket["id"] for ticket in last["results"]] == expected[(len(expected) - 1) // 4 * 4 :]


def test_a_best_match_page_is_one_statement_that_asks_each_index_once(scanners, as_user):
    client = as_user(scanners.agent)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/tickets/", {"search": "scanner", "per_page": 10, "page": 2})
    assert [t.pk for t in page.context["page"].object_list] == by_the_orm(scanners.agent, "")[10:20]
    searches = [query["sql"] for query in queries if "AGAINST" in query["sql"]]
    assert len(searches) == 1 and searches[0].count("AGAINST") == 3  # two for the tickets: one pass
