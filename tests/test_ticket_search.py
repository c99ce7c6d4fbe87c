"""Ticket search (crm/search.py): words in titles, descriptions and public comments, never in internal
notes, each word a prefix and every word required, scoped to what the searcher may see; on MariaDB
through FULLTEXT indexes, ranked by relevance, and agreeing with the fallback used elsewhere.

Transactional: InnoDB's FULLTEXT index only sees committed rows."""

from datetime import timedelta

import pytest
from django.db import connection  # noqa: F401 (read by the skipif conditions)

from crm import access, search, tickets
from crm.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)
on_mariadb = pytest.mark.skipif("connection.vendor != 'mysql'", reason="FULLTEXT indexes are MariaDB's")

QUERIES = [
    "scanner",
    "scann",
    "toner",
    "cartridge leaks",
    "LEAKS cartridge",
    "firmware",
    "firmware cartridge",
    "bios",
    "printer",
    "PC",
    "fire",
    "zzz",
    "scanner firmware",
]


@pytest.fixture
def library(helpdesk):
    """Tickets whose words sit in different places; one word (bios) only in an internal note."""

    def ticket(title: str, description: str, organization=helpdesk.acme, author=helpdesk.alice) -> Ticket:
        return tickets.open_ticket(
            author=author, title=title, description=description, organization=organization
        )

    helpdesk.scanner = ticket("Scanner offline", "It stopped after lunch")
    helpdesk.toner = ticket("Office supplies", "The toner cartridge leaks everywhere")
    helpdesk.firmware = ticket("Slow boot", "Takes ten minutes")
    tickets.add_comment(helpdesk.firmware, helpdesk.agent, "A firmware upgrade is needed")
    tickets.add_comment(helpdesk.firmware, helpdesk.agent, "BIOS password is 1234", is_internal=True)
    helpdesk.fire = ticket("PC on fire", "Smoke from the PC")
    helpdesk.globex_scanner = ticket(
        "Globex scanner broken", "Their scanner", organization=helpdesk.globex, author=helpdesk.bob
    )
    return helpdesk


def found(user, term: str, engine: str | None = None) -> set[str]:
    return set(search.matching(access.visible_tickets(user), term, engine).values_list("title", flat=True))


def test_words_are_found_in_titles_descriptions_and_public_comments_never_internal_notes(library, as_user):
    agent = library.agent
    assert found(agent, "scanner") == {"Scanner offline", "Globex scanner broken"}
    assert found(agent, "scann") == {"Scanner offline", "Globex scanner broken"}  # a prefix
    assert found(agent, "toner") == {"Office supplies"}  # the description
    assert found(agent, "LEAKS cartridge") == {"Office supplies"}  # every word, any order or case
    assert found(agent, "cartridge firmware") == set()
    assert found(agent, "firmware") == {"Slow boot"}  # a public comment
    assert found(agent, "bios") == set()  # only in an internal note: not even agents search notes
    assert found(library.alice, "bios") == set()
    assert found(agent, "PC") == {"PC on fire"}  # shorter than the index's tokens: the fallback
    assert found(agent, "can") == set()  # prefixes of words, not any substring ("scanner")
    page = as_user(library.alice).get("/tickets/", {"search": "firmware"})
    assert [t.title for t in page.context["page"].object_list] == ["Slow boot"]


def test_search_stays_inside_the_searchers_organization(library):
    assert found(library.alice, "scanner") == {"Scanner offline"}
    assert found(library.bob, "scanner") == {"Globex scanner broken"}
    assert found(library.bob, f"#{library.scanner.pk}") == set()  # a number never crosses it either
    assert found(library.alice, f"#{library.scanner.pk}") == {"Scanner offline"}
    assert found(library.alice, str(library.fire.pk)) == {"PC on fire"}


@pytest.mark.parametrize("term", ['+"-*()~<>@', "printer -jammed", "'; DROP TABLE crm_ticket; --", "a" * 300])
def test_boolean_mode_operators_from_the_user_are_only_words(library, as_user, term):
    response = as_user(library.agent).get("/tickets/", {"search": term})
    assert response.status_code == 200
    assert Ticket.objects.count() == 7
    if term == "printer -jammed":  # both words required, the minus is no operator
        assert [t.title for t in response.context["page"].object_list] == ["Acme printer jammed"]


@on_mariadb
def test_fulltext_and_the_fallback_find_the_same_tickets(library):
    indexable = [term for term in QUERIES if search.engine_for(search.words(term)) == search.FULLTEXT]
    assert len(indexable) == len(QUERIES) - 1  # all but "PC", too short for the index
    for user in (library.agent, library.alice, library.bob):
        for term in indexable:
            assert found(user, term, search.FULLTEXT) == found(user, term, search.FALLBACK), (user, term)
    assert search.engine_for(search.words("scanner firmware")) == search.FULLTEXT
    assert search.engine_for(search.words("the scanner")) == search.FALLBACK  # an InnoDB stopword


@on_mariadb
def test_a_search_is_ranked_by_relevance_and_the_page_says_so(library, as_user):
    strong = tickets.open_ticket(
        author=library.alice, title="Scanner scanner", description="scanner, the scanner again"
    )
    Ticket.objects.filter(pk=strong.pk).update(created_at=library.scanner.created_at - timedelta(days=1))
    client = as_user(library.alice)
    page = client.get("/tickets/", {"search": "scanner"})
    titles = [t.title for t in page.context["page"].object_list]
    assert titles == [strong.title, "Scanner offline"]  # older but a better match: first
    assert "Best matches first" in page.content.decode()
    newest = client.get("/tickets/", {"search": "scanner", "sort": "newest"})
    assert [t.title for t in newest.context["page"].object_list] == ["Scanner offline", strong.title]
    assert "Matching tickets, ordered by: Newest." in newest.content.decode()


@pytest.mark.skipif("connection.vendor == 'mysql'", reason="MariaDB ranks by relevance")
def test_without_fulltext_a_search_is_newest_first_and_the_page_says_so(library, as_user):
    page = as_user(library.agent).get("/tickets/", {"search": "scanner"})
    assert [t.title for t in page.context["page"].object_list] == ["Globex scanner broken", "Scanner offline"]
    assert "Matching tickets, ordered by: Newest." in page.content.decode()


def test_the_api_searches_the_same_way(library, as_user):
    client = as_user(library.alice)
    body = client.get("/api/tickets/", {"search": "firmware"}).json()
    assert [t["title"] for t in body["results"]] == ["Slow boot"]
    assert client.get("/api/tickets/", {"search": "bios"}).json()["count"] == 0
