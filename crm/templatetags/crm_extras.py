"""Template helpers: pagination links that keep the filters, and readable audit entries."""

from functools import lru_cache
from html import escape

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from crm import due_dates
from crm.models import Ticket

register = template.Library()

_FIELD_LABELS = {
    "title": Ticket._meta.get_field("title").verbose_name,
    "description": Ticket._meta.get_field("description").verbose_name,
    "status": Ticket._meta.get_field("status").verbose_name,
    "priority": Ticket._meta.get_field("priority").verbose_name,
    "assigned_to": Ticket._meta.get_field("assigned_to").verbose_name,
    "resolution_notes": Ticket._meta.get_field("resolution_notes").verbose_name,
    "file": _("file"),
    "size": _("size"),
}
_CHOICES = {"status": dict(Ticket.Status.choices), "priority": dict(Ticket.Priority.choices)}


@register.simple_tag
def select_options(choices, selected) -> str:
    """<option>s for (value, label) pairs, built with the standard library's escape: a template loop,
    or format_html, over a thousand organizations costs tens of milliseconds per page."""
    selected = "" if selected is None else str(selected)
    return mark_safe(  # noqa: S308 - every value and label is escaped just below
        "".join(
            f'<option value="{escape(str(value))}"{" selected" if str(value) == selected else ""}>'
            f"{escape(str(label))}</option>"
            for value, label in choices
        )
    )


@register.simple_tag
def page_query(query_without_page: str, number: int) -> str:
    return f"{query_without_page}&page={number}" if query_without_page else f"page={number}"


@register.simple_tag
def anchor_query(query_without_page: str, direction: str, ticket_id: int) -> str:
    """The list's query with ?after=ID or ?before=ID (keyset pages, crm/keyset.py)."""
    return (
        f"{query_without_page}&{direction}={ticket_id}" if query_without_page else f"{direction}={ticket_id}"
    )


@register.filter
def last_pk(objects) -> int | None:
    """The last row's id (a page's rows are a list or an evaluated queryset slice)."""
    rows = list(objects)
    return rows[-1].pk if rows else None


@register.filter
def audit_rows(changes: dict) -> list[tuple[str, str, str]]:
    """(field label, old, new) for each [old, new] pair in an ActivityLog's changes."""
    rows = []
    for field, value in (changes or {}).items():
        if not isinstance(value, list) or len(value) != 2:
            continue
        labels = _CHOICES.get(field, {})
        old, new = (labels.get(v, v) for v in value)
        if field == "size":
            old, new = (filesizeformat(v) if v is not None else None for v in (old, new))
        rows.append(
            (
                str(_FIELD_LABELS.get(field, field)),
                "" if old is None else str(old),
                "" if new is None else str(new),
            )
        )
    return rows


@lru_cache(maxsize=32)
def choice_labels(field: str, language: str | None) -> dict[str, str]:
    """One ticket field's labels in one language, for the list's rows: ticket.get_<field>_display()
    builds a dict of every choice and translates each label to hash it, on every call. The catalogues
    do not change while the site runs."""
    return {value: str(label) for value, label in Ticket._meta.get_field(field).flatchoices}


@register.filter
def is_overdue(ticket, now) -> bool:
    """Open and past its due date (crm/due_dates.py), as of `now` (one instant for the whole page)."""
    return due_dates.is_overdue(ticket, now)


@register.filter
def time_tag(value):
    """<time datetime="ISO">YYYY-MM-DD HH:MM</time> in the current time zone, as the |date:'c' and
    |date:"Y-m-d H:i" pair would give, converted once: the list shows two of these on every row."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return mark_safe(  # noqa: S308 - an ISO date and digits, nothing from a user
        f'<time datetime="{local.isoformat()}">{local.strftime("%Y-%m-%d %H:%M")}</time>'
    )
