"""Pages of the ticket list that never count the whole table.

Counting every matching row is what makes a list slow at a million tickets (InnoDB counts by reading
an index end to end). The count here stops at COUNT_LIMIT + 1 rows: exact below the limit, "more
than COUNT_LIMIT" above it. Page numbers keep working past the limit (OFFSET, as before: old
bookmarks and API clients), and whether a next page exists is read from the page itself (one row
more than a page is fetched) rather than from the count.
"""

import math
from functools import cached_property

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator

COUNT_LIMIT = 10_000


class CappedPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        """The number of rows, or COUNT_LIMIT + 1 when there are more (see `capped`).

        First a probe for the row past the limit (LIMIT 1 OFFSET COUNT_LIMIT): for a long list it is
        the only query, at half the cost of counting its first COUNT_LIMIT + 1 rows, which MariaDB
        copies into a temporary table to count them (0.7 against 1.4 ms, 1.8 against 2.9 filtered).
        A shorter list is then counted exactly; it has at most COUNT_LIMIT rows to count."""
        rows = self.object_list.order_by()
        if rows[COUNT_LIMIT:].exists():
            return COUNT_LIMIT + 1
        return rows.count()

    @property
    def capped(self) -> bool:
        return self.count > COUNT_LIMIT

    @cached_property
    def num_pages(self) -> int:
        """The pages the count knows of (past the limit there may be more: see CappedPage)."""
        if self.capped:
            return math.ceil(COUNT_LIMIT / self.per_page)
        return super().num_pages

    def validate_number(self, number) -> int:
        if not self.capped:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError) as error:
            raise PageNotAnInteger("That page number is not an integer") from error
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number) -> Page:
        number = self.validate_number(number)
        if not self.capped:
            return super().page(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage("That page contains no results")
        return CappedPage(rows[: self.per_page], number, self, has_more=len(rows) > self.per_page)

    def get_page(self, number) -> Page:
        try:
            return self.page(number)
        except PageNotAnInteger:
            return self.page(1)
        except EmptyPage:
            return self.page(1 if self.capped else self.num_pages)


class CappedPage(Page):
    """A page past the count's limit: it knows its neighbours from its own rows."""

    def __init__(self, object_list, number: int, paginator: CappedPaginator, has_more: bool) -> None:
        super().__init__(object_list, number, paginator)
        self._has_more = has_more

    def has_next(self) -> bool:
        return self._has_more


class SelfCountingPaginator(Paginator):
    """Pages of an object list that counts itself, exactly and at no extra cost (a best-match search,
    crm/ranked_search.py): never capped."""

    capped = False
