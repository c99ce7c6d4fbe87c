"""Searches for words in very many tickets (crm/frequent_search.py): on MariaDB the list's index is
walked and the first page of matches served without counting or ranking them all, newest first unless
the best match was asked for; the pages are exactly those the FULLTEXT search gives in that order.

Transactional: InnoDB's FULLTEXT index only sees committed rows."""

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm import access, frequent_search, search, tickets
from crm.models import Ticket, TicketComment

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'mysql'", reason="the walk stands in for MariaDB's FULLTEXT"),
]
NOTE = "These words are in very many tickets: the newest come first."
MANY = "Many matching tickets"


@pytest.fixture
def printers(helpdesk):
    """40 Acme tickets an hour apart, "printer" in the title of every third and the description of the
    next; one with it only in a public comment, one only in an internal note; the oldest matches best;
    Globex has printers too."""
    start = timezone.now() - timedelta(days=30)
    for n in range(40):
        title, description = f"Ticket {n}", "Nothing to see"
        if n % 3 == 0:
            title = f"Printer {n}"
        elif n % 3 == 1:
            description = "The printer again"
        ticket = tickets.open_ticket(author=helpdesk.alice, title=title, description=description)
        Ticket.objects.filter(pk=ticket.pk).update(created_at=start + timedelta(hours=n))
    commented = Ticket.objects.get(title="Ticket 20")
    TicketComment.objects.create(ticket=commented, author=helpdesk.agent, body="Printers, all of them")
    noted = Ticket.objects.get(title="Ticket 23")
    TicketComment.objects.create(ticket=noted, author=helpdesk.agent, body="printer", is_internal=True)
    best = tickets.open_ticket(author=helpdesk.alice, title="Printer printer", description="printer, printer")
    Ticket.objects.filter(pk=best.pk).update(created_at=start - timedelta(days=1))
    for n in range(5):
        tickets.open_ticket(author=helpdesk.bob, title=f"Globex printer {n}", description="d")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE crm_ticket")  # the walk's estimate reads the table's statistics
        cursor.fetchall()
    helpdesk.best = best
    return helpdesk


def expected(user, *ordering: str) -> list[int]:
    """What the FULLTEXT search finds for the user, in that order."""
    found = search.matching(access.visible_tickets(user), "printer", search.FULLTEXT)
    return list(found.order_by(*ordering).values_list("pk", flat=True))


def walk(client, url: str, rel: str = "next") -> tuple[list[list[int]], list[str]]:
    """Follow the rel links from url: each page's ticket ids, and each page's text."""
    pages, texts = [], []
    while url:
        assert len(pages) < 50, "the links go round in circles"
        response = client.get(url)
        pages.append([ticket.pk for ticket in response.context["page"].object_list])
        texts.append(response.content.decode())
        found = re.search(rf'<a href="\?([^"]+)" rel="{rel}">', texts[-1])
        url = "/tickets/?" + html.unescape(found[1]) if found else None
    return pages, texts


def test_frequent_words_are_listed_newest_first_uncounted_and_every_match_is_reached(
    printers, as_user, monkeypatch
):
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", 1)
    client = as_user(printers.agent)
    pages, texts = walk(client, "/tickets/?search=printer&per_page=5")
    newest = expected(printers.agent, "-created_at", "-id")
    assert len(newest) == 35  # 27 in titles and descriptions, the comment, the best, Globex's 5 and 2 more
    assert [pk for page in pages for pk in page] == newest  # each once, in order, to the very end
    assert NOTE in texts[0] and MANY in texts[0]
    assert "Best matches first" not in texts[0]
    assert Ticket.objects.get(title="Ticket 20").pk in newest  # found by its public comment
    assert Ticket.objects.get(title="Ticket 23").pk not in newest  # an internal note is never searched
    back, _ = walk(client, f"/tickets/?search=printer&per_page=5&before={newest[-5]}", "prev")
    assert [pk for page in reversed(back) for pk in page] == newest[:-5]


def test_the_walk_keeps_to_what_the_searcher_may_see(printers, as_user, monkeypatch):
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", 1)
    pages, texts = walk(as_user(printers.alice), "/tickets/?search=printer&per_page=5")
    seen = [pk for page in pages for pk in page]
    assert seen == expected(printers.alice, "-created_at", "-id")
    assert not Ticket.objects.filter(pk__in=seen, organization=printers.globex).exists()
    assert NOTE in texts[0]


def test_words_in_fewer_tickets_than_the_rank_limit_are_ranked_and_counted(printers, as_user):
    text = as_user(printers.agent).get("/tickets/", {"search": "printer", "per_page": 5})
    assert text.context["page"].object_list[0].pk == printers.best.pk  # the oldest, the best match
    assert "Best matches first" in text.content.decode() and "(35 tickets)" in text.content.decode()


def test_the_rank_limit_is_a_boundary_on_the_estimated_matches(printers, monkeypatch):
    queryset = access.visible_tickets(printers.agent)
    ordering = ("-created_at", "-id")
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", 1)
    estimate = frequent_search.page(queryset, "printer", ordering, 5).estimated_matches
    assert 20 <= estimate <= 80  # 6 matches in the 8 newest of ~50 tickets
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", estimate)
    assert frequent_search.page(queryset, "printer", ordering, 5) is None
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", estimate - 1)
    assert frequent_search.page(queryset, "printer", ordering, 5) is not None


def test_a_walk_that_finds_exactly_a_page_is_not_frequent(printers, monkeypatch):
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", 1)
    queryset = access.visible_tickets(printers.agent)
    newest = ("-created_at", "-id")
    assert frequent_search.page(queryset, "printer", newest, 35) is None  # all 35, and nothing after
    last_but_one = frequent_search.page(queryset, "printer", newest, 34)
    assert [t.pk for t in last_but_one] == expected(printers.agent, *newest)[:34] and last_but_one.has_next


def test_a_walk_that_spends_its_budget_gives_way_to_the_ranked_search(printers, as_user, monkeypatch):
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", 1)
    monkeypatch.setattr(frequent_search, "SCAN_BUDGET", 5)
    response = as_user(printers.agent).get("/tickets/", {"search": "printer", "per_page": 5})
    assert response.context["page"].object_list[0].pk == printers.best.pk
    assert "Best matches first" in response.content.decode()


def test_a_chosen_order_is_kept_and_a_chosen_best_match_is_ranked(printers, as_user, monkeypatch):
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", 1)
    client = as_user(printers.agent)
    pages, texts = walk(client, "/tickets/?search=printer&per_page=5&sort=oldest")
    assert [pk for page in pages for pk in page] == expected(printers.agent, "created_at", "id")
    assert "Matching tickets, ordered by: Oldest." in texts[0] and MANY in texts[0]
    ranked = client.get("/tickets/", {"search": "printer", "per_page": 5, "sort": "relevance"})
    assert ranked.context["page"].object_list[0].pk == printers.best.pk
    assert "Best matches first" in ranked.content.decode()


def test_a_numbered_page_keeps_its_number(printers, as_user, monkeypatch):
    monkeypatch.setattr(frequent_search, "RANK_LIMIT", 1)
    client = as_user(printers.agent)
    oldest = expected(printers.agent, "created_at", "id")
    page = client.get("/tickets/", {"search": "printer", "sort": "oldest", "per_page": 10, "page": 2})
    assert [t.pk for t in page.context["page"].object_list] == oldest[10:20]
    ranked = client.get("/tickets/", {"search": "printer", "per_page": 10, "page": 2})
    assert "Best matches first" in ranked.content.decode() and "Page 2 of 4" in ranked.content.decode()


@pytest.mark.parametrize("term", ["#1", "the", "PC", "printer the"])
def test_ticket_numbers_and_words_the_index_does_not_hold_are_never_walked(term):
    assert not search.uses_fulltext(term)
    assert search.uses_fulltext("printer jammed")
