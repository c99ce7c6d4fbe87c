"""Ticket search: the words of a query, found in a ticket's title and description or in one of its
public comments (never in internal notes, whoever searches), each word as a prefix ("print" finds
"printer"), every word required.

On MariaDB the words are looked up in InnoDB FULLTEXT indexes (migration 0008: one over the ticket's
title and description, one over comment bodies) in boolean mode, and a search can be ordered by
relevance. Elsewhere (SQLite), and on MariaDB for words the index does not hold (shorter than
innodb_ft_min_token_size, or InnoDB's stopwords), the same rule is applied with a regular expression
per word (`\\bword`): slower, same results. `#123` is ticket 123 itself; a bare `123` finds that ticket
and the word.

The search only narrows the queryset it is given, so organization scoping (crm.access) stays in
the same query.
"""

import re

from django.db import connection
from django.db.models import Exists, FloatField, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from crm.models import Ticket, TicketComment

FULLTEXT, FALLBACK = "fulltext", "fallback"
# The fallback's rule written row by row (the comments as a correlated EXISTS): for reading an index
# in order and stopping at the first page of matches (crm/frequent_search.py), never for a whole table.
ROW_BY_ROW = "row by row"
MIN_TOKEN = 3  # InnoDB's innodb_ft_min_token_size default: shorter words are not in the index
MAX_WORDS = 10
# InnoDB's default stopword list (INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD): never indexed.
_STOPWORDS = """a about an are as at be by com de en for from how i in is it la of on or that the this to was
what when where who will with und www"""
STOPWORDS = frozenset(_STOPWORDS.split())
_WORD = re.compile(r"\w+")
# The UNION sits in a derived table: `id IN (... UNION ...)` is run as a dependent subquery, once per
# ticket row (minutes at 200,000 tickets); `id IN (SELECT id FROM (... UNION ...) m)` is materialized
# once and joined.
_MATCHING_IDS = (
    "SELECT m.id FROM ("
    "SELECT id FROM crm_ticket WHERE MATCH (title, description) AGAINST (%s IN BOOLEAN MODE) "
    "UNION SELECT ticket_id FROM crm_ticketcomment "
    "WHERE is_internal = 0 AND MATCH (body) AGAINST (%s IN BOOLEAN MODE)"
    ") AS m"
)
_TICKET_MATCH = "MATCH (crm_ticket.title, crm_ticket.description) AGAINST (%s IN BOOLEAN MODE)"


def words(term: str) -> list[str]:
    """The query's words, lower case, in order, without repeats."""
    found = dict.fromkeys(word.lower() for word in _WORD.findall(term))
    return list(found)[:MAX_WORDS]


def engine_for(found: list[str]) -> str:
    indexable = all(len(word) >= MIN_TOKEN and word not in STOPWORDS for word in found)
    return FULLTEXT if connection.vendor == "mysql" and found and indexable else FALLBACK


def ticket_number(term: str) -> int | None:
    text = term.strip().removeprefix("#")
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def matching(queryset: QuerySet[Ticket], term: str, engine: str | None = None) -> QuerySet[Ticket]:
    """Narrow `queryset` to the tickets the term finds; `engine` forces one way (for tests)."""
    found = words(term)
    number = ticket_number(term)
    by_number = Q(pk=number) if number is not None else Q(pk__in=[])
    if by_number_only(term):
        return queryset.filter(by_number)  # "#123" is ticket 123, not the word 123
    if (engine or engine_for(found)) == FULLTEXT:
        query = boolean_query(found)
        in_text = Q(pk__in=RawSQL(_MATCHING_IDS, [query, query]))  # noqa: S611 (bound parameters)
    else:
        in_ticket, in_comment = Q(), Q()
        for word in found:
            pattern = rf"\b{word}"  # a word starts here (words are \w+, so \b is "after a non-word")
            in_ticket &= Q(title__iregex=pattern) | Q(description__iregex=pattern)
            in_comment &= Q(body__iregex=pattern)
        public = TicketComment.objects.filter(in_comment, is_internal=False)
        if engine == ROW_BY_ROW:
            in_text = in_ticket | Exists(public.filter(ticket_id=OuterRef("pk")))
        else:
            in_text = in_ticket | Q(pk__in=public.values("ticket_id"))
    return queryset.filter(in_text | by_number)


def uses_fulltext(term: str) -> bool:
    """Whether the term is looked up in the FULLTEXT indexes: MariaDB, words the index holds, and not
    a ticket number."""
    return not by_number_only(term) and engine_for(words(term)) == FULLTEXT


def by_number_only(term: str) -> bool:
    """'#123' (or nothing searchable): the term names a ticket, no word is looked up."""
    return not words(term) or (ticket_number(term) is not None and term.strip().startswith("#"))


def boolean_query(found: list[str]) -> str:
    """Every word required, each as a prefix: '+printer* +jammed*' (words are \\w+ only, so no
    boolean-mode operator can come from the user)."""
    return " ".join(f"+{word}*" for word in found)


def by_relevance(queryset: QuerySet[Ticket], term: str) -> QuerySet[Ticket] | None:
    """The queryset ordered by how well title and description match (newest first among equals), or
    None when relevance cannot be computed here (not MariaDB, or words the index does not hold)."""
    found = words(term)
    if engine_for(found) != FULLTEXT:
        return None
    # The words are bound as a parameter, never spliced into the SQL.
    relevance = RawSQL(_TICKET_MATCH, [boolean_query(found)], output_field=FloatField())  # noqa: S611
    return queryset.alias(relevance=relevance).order_by("-relevance", "-created_at", "-id")
