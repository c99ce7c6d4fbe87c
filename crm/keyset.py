"""Keyset pages of the ticket list: "the tickets after this one" rather than "skip 50,000 rows".

An OFFSET page makes the database read and throw away every row before it, so page 2,000 costs two
thousand pages; a keyset page starts where the index says the anchor ticket sits and reads one page.
It also stays put while tickets are being created: a new ticket lands before the anchor or after it,
never shifting the rows of the next page, so walking next (or previous) visits each ticket once.

Only orders made of plain columns ending in the id can be walked this way: every order of the list
(priority and due through their computed columns) but a search's relevance, which keeps page numbers.
"""

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from crm.models import Ticket


@dataclass(frozen=True)
class KeysetPage:
    object_list: list[Ticket]
    has_next: bool
    has_previous: bool

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)


def walkable(ordering: tuple) -> bool:
    """True when every part of the order is a column name (with an optional "-") and the last is the id."""
    return all(isinstance(part, str) for part in ordering) and ordering[-1].lstrip("-") == "id"


def page(
    queryset: QuerySet[Ticket],
    ordering: tuple[str, ...],
    anchor: Ticket,
    per_page: int,
    backwards: bool = False,
) -> KeysetPage:
    """The `per_page` tickets after `anchor` in `ordering` (before it, when `backwards`), in list order.

    The anchor must belong to `queryset` (the caller looks it up there, so that a ticket one may not
    see cannot be used to probe the order)."""
    order = reversed_order(ordering) if backwards else ordering
    rows = list(queryset.filter(beyond(ordering, anchor, backwards)).order_by(*order)[: per_page + 1])
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
        return KeysetPage(rows, has_next=True, has_previous=more)
    return KeysetPage(rows, has_next=more, has_previous=True)


def beyond(ordering: tuple[str, ...], anchor: Ticket, backwards: bool) -> Q:
    """Rows strictly after the anchor in `ordering`: (a > x) or (a = x and b > y) or ... — written as a
    disjunction the database can turn into one index range."""
    condition = Q(pk__in=[])
    equal = Q()
    for part in ordering:
        name = part.lstrip("-")
        descending = part.startswith("-") != backwards
        value = getattr(anchor, name)
        condition |= equal & Q(**{f"{name}__{'lt' if descending else 'gt'}": value})
        equal &= Q(**{name: value})
    return condition


def up_to(ordering: tuple[str, ...], row: Ticket) -> Q:
    """Rows up to `row` in `ordering`, itself included."""
    return beyond(ordering, row, backwards=True) | Q(pk=row.pk)


def reversed_order(ordering: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part[1:] if part.startswith("-") else f"-{part}" for part in ordering)
