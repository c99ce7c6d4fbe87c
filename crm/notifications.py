"""Who hears about a ticket event, and what they read (in their own language).

Events: a ticket created, a comment (public, or an internal note), a status change, a resolution and
an assignment. The customer side (the requester and the customers of the organization who watch it)
hears about everything except internal notes; the staff side (the assignee, or every agent while the
ticket is unassigned) about everything. Nobody hears about their own action, except a requester who
gets a confirmation of the ticket they opened. People who opted out in their profile, inactive
accounts and accounts without an address get nothing.

Mails are rows of the outbox (crm.models.OutboundMail) written in the caller's transaction, so that
a mail exists exactly when the change it tells about was committed; crm/outbox.py sends them.
Each carries `[#123]` in the subject, a Reply-To address with a signed token naming the ticket and
the person (receive_mail threads a reply by it), a Message-ID under the ticket's thread and
`Auto-Submitted: auto-generated` (RFC 3834), so that well-behaved autoresponders stay quiet.

A message a mailbox poll refused is answered with a refusal notice (refusal_notice), since no MTA
bounces it.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from crm import access, reply_tokens
from crm.models import OutboundMail, Ticket, TicketComment, UserProfile

CREATED, COMMENTED, INTERNAL_NOTE, STATUS, RESOLVED, ASSIGNED = (
    "created",
    "commented",
    "internal_note",
    "status",
    "resolved",
    "assigned",
)


@dataclass(frozen=True)
class Event:
    kind: str
    ticket: Ticket
    actor: object
    comment: TicketComment | None = None
    old_status: str = ""


def ticket_created(ticket: Ticket, actor) -> None:
    _queue(Event(CREATED, ticket, actor))


def comment_added(ticket: Ticket, actor, comment: TicketComment) -> None:
    _queue(Event(INTERNAL_NOTE if comment.is_internal else COMMENTED, ticket, actor, comment))


def ticket_changed(ticket: Ticket, actor, audit: dict[str, list]) -> None:
    """After change_ticket: an assignment and a status change are events; other fields are not."""
    if "assigned_to" in audit and ticket.assigned_to_id is not None:
        _queue(Event(ASSIGNED, ticket, actor))
    if "status" in audit:
        kind = RESOLVED if ticket.status == Ticket.Status.RESOLVED else STATUS
        _queue(Event(kind, ticket, actor, old_status=audit["status"][0]))


def recipients(event: Event) -> list:
    """The people who get a mail about `event`, each once."""
    ticket = event.ticket
    people = []
    if event.kind != INTERNAL_NOTE:
        people.append(ticket.created_by)
        watchers = UserProfile.objects.filter(
            organization_id=ticket.organization_id, role=UserProfile.Role.CUSTOMER, watches_organization=True
        ).values("user_id")
        people += list(get_user_model().objects.filter(pk__in=watchers).order_by("pk"))
    if ticket.assigned_to_id is not None:
        people.append(ticket.assigned_to)
    else:
        people += list(access.assignable_users())
    chosen, seen = [], set()
    for person in people:
        own_action = person.pk == getattr(event.actor, "pk", None)
        confirmation = event.kind == CREATED and person.pk == ticket.created_by_id
        if person.pk in seen or (own_action and not confirmation) or not _wants_mail(person):
            continue
        seen.add(person.pk)
        chosen.append(person)
    return chosen


def _wants_mail(person) -> bool:
    profile = getattr(person, "profile", None)
    return bool(person.is_active and person.email and (profile is None or profile.email_notifications))


def _queue(event: Event) -> None:
    mails = [_render(event, person) for person in recipients(event)]
    if mails:
        OutboundMail.objects.bulk_create(mails)
        transaction.on_commit(_kick_sender)


def _kick_sender() -> None:
    if settings.NOTIFY_OUTBOX_THREAD:
        from crm import outbox  # a thread that drains once and ends (development servers)

        outbox.drain_in_background()


def _render(event: Event, person) -> OutboundMail:
    ticket = event.ticket
    language = _language_of(person)
    with translation.override(language):
        context = {
            "event": event,
            "ticket": ticket,
            "person": person,
            "actor": _name(event.actor),
            "what": _what(event),
            "link": settings.SITE_URL.rstrip("/") + ticket.get_absolute_url(),
            "staff": access.is_staff_member(person),
        }
        body = render_to_string("crm/email/ticket_event.txt", context)
        subject = f"[#{ticket.pk}] {ticket.title} — {context['what']}"
    domain = mail_domain()
    headers = {
        "Message-ID": f"<ticket-{ticket.pk}-{uuid.uuid4().hex}@{domain}>",
        "In-Reply-To": f"<ticket-{ticket.pk}@{domain}>",
        "References": f"<ticket-{ticket.pk}@{domain}>",
        "Reply-To": reply_address(ticket, person),
        "Auto-Submitted": "auto-generated",
        "X-Helpdesk-Ticket": str(ticket.pk),
        "Content-Language": language,
    }
    return OutboundMail(
        recipient=person.email,
        subject=subject[:255],
        body=body,
        headers=headers,
        ticket=ticket,
        event=event.kind,
    )


def _what(event: Event) -> str:
    if event.kind == CREATED:
        return _("New ticket")
    if event.kind == COMMENTED:
        return _("New comment")
    if event.kind == INTERNAL_NOTE:
        return _("New internal note")
    if event.kind == RESOLVED:
        return _("Resolved")
    if event.kind == ASSIGNED:
        return _("Assigned to %(name)s") % {"name": _name(event.ticket.assigned_to)}
    return _("Status: %(status)s") % {"status": Ticket.Status(event.ticket.status).label}


def _language_of(person) -> str:
    profile = getattr(person, "profile", None)
    chosen = profile.language if profile else ""
    return chosen if chosen in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def _name(person) -> str:
    if person is None:
        return ""
    return person.get_full_name() or person.get_username()


def mail_domain() -> str:
    """The domain of our Message-IDs: DEFAULT_FROM_EMAIL's."""
    return settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"


def reply_address(ticket: Ticket, person) -> str:
    """support+<token>@domain: a reply to it comes back to this ticket, from this person."""
    local, _at, domain = (settings.HELPDESK_REPLY_ADDRESS or settings.DEFAULT_FROM_EMAIL).rpartition("@")
    return f"{local}+{reply_tokens.make(ticket.pk, person.pk)}@{domain}"


REFUSAL_EVENT = "refused"
REFUSAL_NOTICES_PER_DAY = 5  # to one address: a loop with an autoresponder that does not say so ends


_REFUSAL_ID_PREFIX = "refused-"


def answers_refusal_notice(message: EmailMessage) -> bool:
    """The message answers one of our refusal notices (by In-Reply-To or References)."""
    suffix = f"@{mail_domain()}>"
    ids = " ".join(str(message.get(header, "")) for header in ("In-Reply-To", "References")).split()
    return any(found.startswith(f"<{_REFUSAL_ID_PREFIX}") and found.endswith(suffix) for found in ids)


def refusal_notice(person, message: EmailMessage, reason: tuple[str, dict] | None) -> bool:
    """Tell the sender of a refused message why, in their language (reason: crm/intake.py's message
    id and values). `person`: the sender's active account, or None for a stranger, who gets nothing:
    spam forges senders, and a notice would be backscatter. At most REFUSAL_NOTICES_PER_DAY to one
    address. Returns whether one was queued."""
    if person is None or reason is None:
        return False
    since = timezone.now() - timedelta(days=1)
    sent = OutboundMail.objects.filter(
        event=REFUSAL_EVENT, recipient__iexact=person.email, created_at__gte=since
    )
    if sent.count() >= REFUSAL_NOTICES_PER_DAY:
        return False
    language = _language_of(person)
    text, values = reason
    # One line: an encoded subject may decode to a line break, which no header may hold.
    original = " ".join(str(message.get("Subject", "")).split())[:200]
    with translation.override(language):
        original = original or _("(no subject)")
        body = render_to_string(
            "crm/email/refused.txt", {"name": _name(person), "subject": original, "reason": _(text) % values}
        )
        subject = _("Not accepted: %(subject)s") % {"subject": original}
    headers = {
        "Message-ID": f"<{_REFUSAL_ID_PREFIX}{uuid.uuid4().hex}@{mail_domain()}>",
        "Auto-Submitted": "auto-replied",
        "Content-Language": language,
    }
    original_id = " ".join(str(message.get("Message-ID", "")).split())
    if original_id:
        headers["In-Reply-To"] = headers["References"] = original_id
    OutboundMail.objects.create(
        recipient=person.email, subject=subject[:255], body=body, headers=headers, event=REFUSAL_EVENT
    )
    transaction.on_commit(_kick_sender)
    return True


DIGEST_TICKETS = 50  # listed in a digest; the count says how many more there are


def overdue_digest(now=None) -> int:
    """Once a day (send_overdue_digest): every agent who takes mail gets the list of open tickets past
    their due date, soonest due first, in their language. Returns the mails queued (none when no
    ticket is overdue)."""
    from crm import due_dates

    overdue = Ticket.objects.filter(due_dates.overdue_q(now)).order_by("due_at", "pk")
    total = overdue.count()
    if not total:
        return 0
    listed = list(overdue.select_related("organization", "assigned_to")[:DIGEST_TICKETS])
    mails = []
    for person in access.assignable_users():
        if not _wants_mail(person):
            continue
        with translation.override(_language_of(person)):
            body = render_to_string(
                "crm/email/overdue_digest.txt",
                {
                    "person": person,
                    "tickets": listed,
                    "total": total,
                    "more": total - len(listed),
                    "site": settings.SITE_URL.rstrip("/"),
                },
            )
            subject = translation.ngettext("%(count)d overdue ticket", "%(count)d overdue tickets", total) % {
                "count": total
            }
        mails.append(
            OutboundMail(
                recipient=person.email,
                subject=f"[helpdesk] {subject}",
                body=body,
                headers={"Auto-Submitted": "auto-generated", "Content-Language": _language_of(person)},
                event="overdue_digest",
            )
        )
    OutboundMail.objects.bulk_create(mails)
    return len(mails)
