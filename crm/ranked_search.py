"""A search's best-match pages on MariaDB: the page and the number of matches from one statement.

Ranked through the ORM, a page asks InnoDB's FULLTEXT index three times for the same words (the
count, the `IN (...)` that finds the tickets, the `ORDER BY MATCH` that ranks them), and each time
InnoDB reads every matching ticket: a word in 5,000 tickets costs about 20 ms a time. Here each index
(tickets, comments) is asked once: the matching tickets of both, with the ticket's score, in one
UNION ALL that also applies the list's filters; grouped per ticket, counted with COUNT(*) OVER ()
and ranked, best score first and then the newest, as crm.search.by_relevance orders them.

`ranked_results` gives an object list for Django's Paginator (it counts with `count()` and reads
pages by slicing), or None when this cannot be done for the queryset (then the ORM way is used).
"""

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connection
from django.db.models import QuerySet

from crm import access, search, ticket_filters
from crm.models import Ticket

_TICKETS = "crm_ticket"
_MATCHES = """
SELECT r.id, r.total FROM (
  SELECT m.id, MAX(m.score) AS score, m.created_at, COUNT(*) OVER () AS total FROM (
    SELECT crm_ticket.id, MATCH (crm_ticket.title, crm_ticket.description) AGAINST (%s IN BOOLEAN MODE)
      AS score, crm_ticket.created_at
    FROM crm_ticket
    WHERE MATCH (crm_ticket.title, crm_ticket.description) AGAINST (%s IN BOOLEAN MODE) AND ({where})
    UNION ALL
    SELECT crm_ticket.id, 0, crm_ticket.created_at
    FROM crm_ticketcomment JOIN crm_ticket ON crm_ticket.id = crm_ticketcomment.ticket_id
    WHERE crm_ticketcomment.is_internal = 0
      AND MATCH (crm_ticketcomment.body) AGAINST (%s IN BOOLEAN MODE) AND ({where})
    UNION ALL
    SELECT crm_ticket.id, 0, crm_ticket.created_at FROM crm_ticket WHERE crm_ticket.id = %s AND ({where})
  ) AS m
  GROUP BY m.id, m.created_at
) AS r
ORDER BY r.score DESC, r.created_at DESC, r.id DESC
LIMIT %s OFFSET %s
"""


class RankedResults:
    """The tickets a search finds in `scoped` (visible and filtered, not searched), best match first.

    `expected` is the slice the paginator is about to read: the count is taken from that page's own
    statement, so a page costs one statement (two when the page number is past the end)."""

    def __init__(self, scoped: QuerySet[Ticket], term: str, where: tuple[str, list], expected: slice) -> None:
        self.scoped = scoped
        self.query = search.boolean_query(search.words(term))
        self.number = search.ticket_number(term)
        self.where = where
        self.expected = expected
        self.total: int | None = None
        self.window = (0, 0)
        self.rows: list[Ticket] = []

    def count(self) -> int:
        if self.total is None:
            self._read(self.expected.start, self.expected.stop)
        if self.total is None:  # the expected page lies past the end: ask for the first row
            self._read(0, 1)
        return self.total or 0

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, wanted: slice) -> list[Ticket]:
        start, stop = wanted.start or 0, wanted.stop
        if start != self.window[0] or stop > self.window[1]:
            self._read(start, stop)
        return self.rows[: stop - start]

    def _read(self, start: int, stop: int) -> None:
        where_sql, where_params = self.where
        params = [
            self.query,
            self.query,
            *where_params,
            self.query,
            *where_params,
            self.number or 0,  # ids start at 1: 0 finds nothing
            *where_params,
            max(stop - start, 1),
            start,
        ]
        with connection.cursor() as cursor:
            cursor.execute(_MATCHES.replace("{where}", where_sql), params)  # not format(): braces in SQL
            found = cursor.fetchall()
        if found:
            self.total = found[0][1]
        elif start == 0:
            self.total = 0
        ids = [row[0] for row in found]
        tickets = {ticket.pk: ticket for ticket in self.scoped.filter(pk__in=ids)} if ids else {}
        self.rows = [tickets[pk] for pk in ids if pk in tickets]  # unless deleted in between
        self.window = (start, stop)


def for_list(user, filters, number: int, per_page: int, *related: str) -> RankedResults | None:
    """Page `number` of the list's best-match results: the user's tickets under every filter but the
    search, which this module applies."""
    visible = access.visible_tickets(user)
    scoped = ticket_filters.with_related(ticket_filters.without_search(visible, filters, user), *related)
    return ranked_results(scoped, filters.search, slice((number - 1) * per_page, number * per_page))


def ranked_results(scoped: QuerySet[Ticket], term: str, expected: slice) -> RankedResults | None:
    """Best-match results for `term` in `scoped`, or None when the ORM must do it: not MariaDB, words
    the index does not hold, or filters that need another table (the WHERE is reused as it is)."""
    if not search.uses_fulltext(term):
        return None
    query = scoped.query
    if any(count for alias, count in query.alias_refcount.items() if alias != _TICKETS):
        return None  # a join in use (joins the ORM set up and trimmed again have no references)
    try:
        sql, params = query.get_compiler(connection=connection).compile(query.where)
    except FullResultSet:
        sql, params = "1 = 1", ()  # no condition: an agent's unfiltered list
    except EmptyResultSet:
        return None  # Ticket.objects.none(): the ORM answers that without asking the database
    return RankedResults(scoped, term, (sql or "1 = 1", list(params)), expected)
