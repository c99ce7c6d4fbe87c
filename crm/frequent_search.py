"""Searches for words that are in very many tickets, served by reading the list's index in order.

InnoDB's FULLTEXT search reads every ticket that holds a word before it can rank or count them, so a
word in a tenth of a million tickets costs hundreds of milliseconds however small the page. Such a
word is also found within the first few dozen tickets of any order. So on MariaDB a search first
walks the list's own index (newest first, or the chosen order) testing each ticket with the
search's rule row by row, and stops after a page of matches or SCAN_BUDGET rows examined
(`LIMIT ... ROWS EXAMINED`). Rows found that way are exactly the first rows of the full query.

The walk is kept only when its matches are so dense that the words must be in more than RANK_LIMIT
tickets: then the page is served without a count ("many") and, unless the user asked for the best
match, newest first. Otherwise (a rarer word, a small helpdesk, a budget spent) it is dropped and
the FULLTEXT index answers as before, with its count and its ranking.
"""

from dataclasses import dataclass

from django.db import OperationalError, connection
from django.db.models import QuerySet

from crm import keyset, search
from crm.models import Ticket

# Rows examined (tickets and their comments, about 4 a ticket) before the walk gives up: ~7 ms. A page
# of 25 is then found only when about 1 ticket in 30 matches.
SCAN_BUDGET = 3_000
RANK_LIMIT = 5_000  # estimated matching tickets above which a search is not ranked or counted
# MariaDB turns EXISTS into a semi-join by default and then reads every comment before the first
# ticket; with exists_to_in off the comment test stays a lookup per ticket walked.
WALK_OPTIMIZER = "SET STATEMENT optimizer_switch='exists_to_in=off' FOR "
_SORT_ABORTED = 1028  # "Sort aborted: LIMIT ROWS EXAMINED", where a sorting plan meets the budget


@dataclass(frozen=True)
class FrequentPage(keyset.KeysetPage):
    """A keyset page of a search whose words are in more than about RANK_LIMIT tickets."""

    estimated_matches: int = 0


def page(
    queryset: QuerySet[Ticket],
    term: str,
    ordering: tuple[str, ...],
    per_page: int,
    anchor: Ticket | None = None,
    backwards: bool = False,
) -> FrequentPage | None:
    """The page of `queryset` (filtered, not yet searched) that the search `term` gives in `ordering`
    after `anchor` (before it, when `backwards`), when the words are frequent; None otherwise."""
    order = keyset.reversed_order(ordering) if backwards else ordering
    walked = queryset.filter(keyset.beyond(ordering, anchor, backwards)) if anchor else queryset
    ids = _first_ids(matches_in_order(walked, term, order), per_page + 1)
    if len(ids) <= per_page:
        return None  # the budget ran out first, or the walk found less than a page: not frequent
    last = Ticket.objects.filter(pk=ids[-1]).first()
    if last is None:
        return None  # deleted since the walk read it: let the index answer
    examined = walked.filter(keyset.up_to(order, last)).count()  # an index range of <= SCAN_BUDGET rows
    estimate = len(ids) * _tickets_in_table() // max(examined, 1)
    if estimate <= RANK_LIMIT:
        return None
    ids = ids[:per_page]
    rows = {ticket.pk: ticket for ticket in queryset.filter(pk__in=ids)}
    object_list = [rows[pk] for pk in ids]
    if backwards:
        object_list.reverse()
    # Forward, more matches lie ahead, and behind only when the walk began at an anchor; backward, more
    # lie before, and the anchor's side is always there.
    return FrequentPage(
        object_list, has_next=True, has_previous=backwards or anchor is not None, estimated_matches=estimate
    )


def matches_in_order(queryset: QuerySet[Ticket], term: str, order: tuple[str, ...]) -> QuerySet[Ticket]:
    """The walk's query: each ticket tested row by row, in the list's order."""
    return search.matching(queryset, term, search.ROW_BY_ROW).order_by(*order)


def _first_ids(matches: QuerySet[Ticket], count: int) -> list[int]:
    """The ids of the first matches, at most `count`; fewer when SCAN_BUDGET rows were examined first
    (MariaDB then stops and returns what it found, each a true match in order)."""
    sql, params = matches.values_list("pk", flat=True)[:count].query.sql_with_params()
    statement = f"{WALK_OPTIMIZER}{sql} ROWS EXAMINED {SCAN_BUDGET:d}"
    with connection.cursor() as cursor:
        try:
            cursor.execute(statement, params)
        except OperationalError as error:
            if error.args and error.args[0] == _SORT_ABORTED:
                return []  # the plan sorts (a small table, an unindexed order): the budget ran out there
            raise
        return [row[0] for row in cursor.fetchall()]


def _tickets_in_table() -> int:
    """InnoDB's estimate of the ticket table's rows (statistics, not a count: free)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_rows FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            [Ticket._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0] or 0) if row else 0
