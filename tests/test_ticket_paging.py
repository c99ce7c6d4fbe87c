"""Pages of the ticket list that never count the whole table (crm/paging.py): exact counts below the
limit, "more than" above it, page numbers that keep working; and the API's cursor pages, which visit
each ticket once while tickets are being created."""

import html
import re

import pytest
from django.db import connection  # noqa: F401 (read by a skipif condition)

from crm import api, paging, tickets
from crm.models import Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def many(helpdesk):
    """24 tickets in Acme (23 + the fixture's printer), and Globex's one that Alice never sees. Titles
    run against creation order, and eight tickets share one creation time: a keyset must compare every
    part of the order, the id included, to walk them."""
    for n in range(23):
        tickets.open_ticket(author=helpdesk.alice, title=f"Batch {22 - n:02}", description="d")
    same_time = Ticket.objects.get(title="Batch 10").created_at
    Ticket.objects.filter(title__in=[f"Batch {n:02}" for n in range(5, 13)]).update(created_at=same_time)
    return helpdesk


def acme_tickets():
    return Ticket.objects.filter(organization__name="Acme").order_by("-created_at", "-id")


def test_a_count_exactly_at_the_limit_is_exact(many, as_user, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 24)
    assert "24 tickets" in as_user(many.alice).get("/tickets/", {"per_page": 10}).content.decode()
    paginator = paging.CappedPaginator(acme_tickets(), 10)
    assert (paginator.count, paginator.capped, paginator.num_pages) == (24, False, 3)


def test_a_count_past_the_limit_says_more_than_and_page_numbers_still_work(many, as_user, monkeypatch):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 23)
    client = as_user(many.alice)
    assert "More than 23 tickets" in client.get("/tickets/", {"per_page": 10}).content.decode()
    old_bookmark = client.get("/tickets/", {"per_page": 10, "page": 3})  # page numbers still open
    assert [t.pk for t in old_bookmark.context["page"]] == list(acme_tickets().values_list("pk", flat=True))[
        20:
    ]
    paginator = paging.CappedPaginator(acme_tickets(), 10)
    assert paginator.capped and paginator.count == 24  # counted one past the limit, no further
    assert paginator.page(2).has_next() and not paginator.page(3).has_next()
    assert len(paginator.page(3).object_list) == 4
    assert paginator.get_page(9).number == 1 and paginator.get_page("x").number == 1
    for n in range(6):  # 30: the third page is exactly full, and the last
        tickets.open_ticket(author=many.alice, title=f"More {n}", description="d")
    paginator = paging.CappedPaginator(acme_tickets(), 10)
    assert len(paginator.page(3).object_list) == 10 and not paginator.page(3).has_next()


@pytest.mark.skipif("connection.vendor != 'mysql'", reason="only a search's relevance order is numbered")
@pytest.mark.django_db(transaction=True)  # MariaDB's FULLTEXT index sees only committed rows
def test_best_match_pages_are_numbered_and_counted_exactly_past_the_limit(many, as_user, monkeypatch):
    client = as_user(many.alice)
    monkeypatch.setattr(paging, "COUNT_LIMIT", 22)  # the ranked statement counts every match anyway
    text = client.get("/tickets/", {"per_page": 10, "search": "batch"}).content.decode()
    assert "Page 1 of 3 (23 tickets)" in text
    assert "?per_page=10&amp;search=batch&amp;page=2" in text and "last »" in text
    last = client.get("/tickets/", {"per_page": 10, "search": "batch", "page": 3})
    assert len(last.context["page"].object_list) == 3 and "Page 3 of 3 (23 tickets)" in last.content.decode()
    past = client.get("/tickets/", {"per_page": 10, "search": "batch", "page": 9})
    assert [t.pk for t in past.context["page"]] == [t.pk for t in last.context["page"]]  # the last page


def follow(client, url: str, rel: str, during=None) -> list[int]:
    """Follow the page's rel=next (or prev) links from `url` to the end; the ids seen, page by page."""
    seen = []
    while url:
        assert len(seen) < 200, "the links go round in circles"
        response = client.get(url)
        seen += [ticket.pk for ticket in response.context["page"].object_list]
        if during:
            during()
        found = re.search(rf'<a href="\?([^"]+)" rel="{rel}">', response.content.decode())
        url = "/tickets/?" + html.unescape(found[1]) if found else None
    return seen


@pytest.mark.parametrize("sort", ["newest", "oldest", "updated", "title", "priority", "due"])
def test_keyset_pages_visit_each_ticket_once_forward_and_back_while_tickets_are_created(many, as_user, sort):
    client = as_user(many.alice)
    expected = [t.pk for t in client.get("/tickets/", {"sort": sort, "per_page": 100}).context["page"]]

    def someone_writes() -> None:
        tickets.open_ticket(author=many.alice, title="Meanwhile", description="d")

    last = client.get(f"/tickets/?sort={sort}&per_page=10&after={expected[-11]}")
    assert [t.pk for t in last.context["page"]] == expected[-10:]
    forward = follow(client, f"/tickets/?sort={sort}&per_page=10", "next", someone_writes)
    assert len(set(forward)) == len(forward)  # nothing twice, the new tickets included
    assert [pk for pk in forward if pk in expected] == expected  # each ticket there at the start, in order
    backward = follow(
        client, f"/tickets/?sort={sort}&per_page=10&before={expected[-10]}", "prev", someone_writes
    )
    assert len(set(backward)) == len(backward)
    backward = [pk for pk in backward if pk in expected]  # new tickets may sort into the walk: met once
    pages = [backward[i : i + 10] for i in range(0, len(backward), 10)]
    assert sorted(backward) == sorted(expected[:-10])
    assert all(page == [pk for pk in expected if pk in page] for page in pages)  # each page in order


def test_a_keyset_anchor_one_may_not_see_is_ignored(many, as_user):
    client = as_user(many.alice)
    probing = client.get("/tickets/", {"after": many.globex_ticket.pk})
    assert probing.context["page"].number == 1  # the first page, as without the anchor
    assert many.globex_ticket.pk not in [t.pk for t in probing.context["page"]]
    assert client.get("/tickets/", {"after": "1; DROP TABLE crm_ticket"}).status_code == 200


def test_the_api_counts_up_to_the_limit_and_keeps_its_page_numbers(many, as_user, monkeypatch, settings):
    monkeypatch.setattr(paging, "COUNT_LIMIT", 23)
    client = as_user(many.alice)
    body = client.get("/api/tickets/").json()
    assert (body["count"], body["count_exact"], len(body["results"])) == (23, False, 24)
    monkeypatch.setattr(paging, "COUNT_LIMIT", 24)
    body = client.get("/api/tickets/").json()
    assert (body["count"], body["count_exact"]) == (24, True)
    assert client.get("/api/tickets/", {"page": 2}).status_code == 404  # 24 rows, one page of 25


def acme_newest_first(world) -> list[int]:
    ordered = Ticket.objects.filter(organization=world.acme).order_by("-created_at", "-id")
    return list(ordered.values_list("pk", flat=True))


def walk(client, first_url: str, link: str, during=None) -> list[int]:
    seen, url = [], first_url
    while url:
        body = client.get(url).json()
        seen += [ticket["id"] for ticket in body["results"]]
        url = body[link]
        if during and url:  # someone writes between two pages of the walk
            during()
    return seen


def test_cursor_pages_visit_each_ticket_once_while_tickets_are_created(many, as_user, monkeypatch):
    monkeypatch.setattr(api.TicketCursor, "page_size", 4)
    client = as_user(many.alice)
    before = list(
        Ticket.objects.filter(organization=many.acme)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    )
    created = []

    def someone_writes() -> None:
        created.append(tickets.open_ticket(author=many.alice, title="Meanwhile", description="d").pk)

    forward = walk(client, "/api/tickets/?cursor=", "next", someone_writes)
    assert forward == before  # every ticket there at the start, once, in order; none of the new ones
    last_page = client.get("/api/tickets/?cursor=").json()
    while last_page["next"]:
        last_page = client.get(last_page["next"]).json()
    backward = walk(client, last_page["previous"], "previous", someone_writes)
    newest_first = list(
        Ticket.objects.filter(organization=many.acme)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    )
    ends = [ticket["id"] for ticket in last_page["results"]]
    assert sorted(backward + ends) == sorted(newest_first) and len(set(backward)) == len(backward)
    assert many.globex_ticket.pk not in forward + backward
    assert len(created) >= 4  # pages of 4: tickets were written between pages, both ways


def test_cursor_pages_follow_the_lists_sort_and_refuse_one_they_cannot_keep(many, as_user):
    client = as_user(many.alice)
    titles = [t["title"] for t in client.get("/api/tickets/?cursor=&sort=title").json()["results"]]
    assert titles == sorted(titles) and titles[0] == "Acme printer jammed"
    refused = client.get("/api/tickets/?cursor=&sort=priority")
    assert refused.status_code == 400
    assert "newest, oldest, updated or title" in str(refused.json()["cursor"])
