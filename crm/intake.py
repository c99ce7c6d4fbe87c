"""Tickets and replies by e-mail (`manage.py receive_mail`): one message in, one outcome out.

- A message from a known customer opens a ticket in their organization (subject → title, text →
  description, attachments → attachments, under the same limits and name rules as uploads).
- A reply to one of our notifications (its Reply-To carries a signed token naming the ticket and the
  person, crm/reply_tokens.py) becomes a public comment — when the token verifies, has not expired,
  names the sender, and the sender may still see the ticket. A forged or expired token refuses.
- Unknown senders are refused, or become customers of INTAKE_UNKNOWN_SENDER_ORGANIZATION.
- Auto-replies and loops are ignored, never answered: `Auto-Submitted` other than `no`,
  `Precedence: bulk|junk|list|auto_reply`, `X-Autoreply`/`X-Autorespond`, and our own mail (its
  X-Helpdesk-Ticket header or a Message-ID of ours).
- The same Message-ID twice creates nothing the second time.
- A message over INTAKE_MAX_BYTES, or with an attachment the upload rules refuse, is refused with a
  text for the bounce.
"""

import contextlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext_noop

from crm import access, mail_text, notifications, reply_tokens, tickets
from crm.models import InboundMail, Organization, UserProfile

CREATED, COMMENTED, IGNORED, REFUSED = "created", "commented", "ignored", "refused"
_SUBJECT_TICKET = re.compile(r"\[#(\d+)\]")
# Any case: a server on the way may have changed it (crm/reply_tokens.py reads it back either way).
_TOKEN = re.compile(r"\+([0-9]+x[0-9]+\.[a-z0-9_-]+\.[a-z0-9_-]+)@", re.IGNORECASE)
_AUTOMATIC_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_QUOTE_START = re.compile(
    r"^(On .{0,200} wrote:|-----Original Message-----|W dniu .{0,200} pisze:)\s*$", re.M
)


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str  # in English, for the operator (and a Postfix bounce)
    ticket_id: int | None = None
    # A refusal's reason as a message id and its values: the notice to the sender is in their language.
    reason: tuple[str, dict] | None = None


def refused(message_id: str, **values) -> Outcome:
    """A refusal; `message_id` is marked for translation (gettext_noop) where it is written."""
    return Outcome(REFUSED, message_id % values, reason=(message_id, values))


def receive(raw: bytes, *, answer_refusal: bool = False) -> Outcome:
    """Handle one message (its bytes as delivered). answer_refusal: tell a known sender by mail why a
    refused message was not taken (crm/notifications.py refusal_notice); for mailboxes, where no MTA
    bounces it as Postfix does for a refused pipe."""
    if len(raw) > settings.INTAKE_MAX_BYTES:
        return too_large()
    message = message_from_bytes(raw, policy=policy.default)
    outcome = _receive(message)
    if answer_refusal and outcome.kind == REFUSED:
        notifications.refusal_notice(_known_account(_sender(message)), message, outcome.reason)
    return outcome


def _receive(message: EmailMessage) -> Outcome:
    message_id = (message.get("Message-ID") or "").strip()[:255]
    if not message_id:
        return refused(
            gettext_noop("the message has no Message-ID; it cannot be told apart from a second delivery")
        )
    if InboundMail.objects.filter(message_id=message_id).exists():
        return Outcome(IGNORED, f"{message_id} was received before")
    sender = _sender(message)
    automatic = _automatic(message)
    if automatic:
        return _remember(message_id, sender, Outcome(IGNORED, automatic))
    if notifications.answers_refusal_notice(message):  # its footer says so; and no notice loop either
        return _remember(message_id, sender, Outcome(IGNORED, "an answer to a refusal notice of ours"))
    try:
        with transaction.atomic():
            try:
                outcome = _handle(message, sender)
            except _Refused as refusal:
                outcome = refusal.outcome
            InboundMail.objects.create(
                message_id=message_id, sender=sender, ticket_id=outcome.ticket_id, outcome=outcome.kind
            )
            if outcome.kind == REFUSED:
                transaction.set_rollback(True)  # nothing of a refused message stays
    except IntegrityError:  # the same message, delivered twice at once: the other one won
        return Outcome(IGNORED, f"{message_id} was received before")
    if outcome.kind == REFUSED:
        _remember(message_id, sender, outcome)
    return outcome


def _remember(message_id: str, sender: str, outcome: Outcome) -> Outcome:
    with contextlib.suppress(IntegrityError):  # delivered twice at once: the other one wrote it
        InboundMail.objects.create(message_id=message_id, sender=sender, outcome=outcome.kind)
    return outcome


def _automatic(message: EmailMessage) -> str:
    """Why this message is an automatic one (never answered, never a ticket), or ""."""
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in _AUTOMATIC_PRECEDENCE:
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Helpdesk-Ticket"):
        if message.get(header) is not None:
            return f"{header} (an automatic message, or our own)"
    if str(message.get("Message-ID", "")).rstrip(">").endswith("@" + notifications.mail_domain()):
        return "a message we sent ourselves"
    return ""


def _handle(message: EmailMessage, sender: str) -> Outcome:
    token = _reply_token(message)
    if token is not None:
        return _reply(message, sender, token)
    if _SUBJECT_TICKET.search(str(message.get("Subject", ""))):
        return _reply_unmatched()
    author = _sender_account(sender)
    if author is None:
        return refused(
            gettext_noop("%(sender)s is not known to the helpdesk; ask us for an account"),
            sender=sender or "the sender",
        )
    if access.organization_id_of(author) is None:
        return refused(gettext_noop("agents open tickets in the helpdesk itself, not by e-mail"))
    uploads = _checked_attachments(message)
    title = (str(message.get("Subject", "")).strip() or "(no subject)")[:200]
    ticket = tickets.open_ticket(author=author, title=title, description=_text(message) or "-")
    for upload in uploads:
        tickets.add_attachment(ticket, author, upload)
    return Outcome(CREATED, f"ticket #{ticket.pk} opened by {author.get_username()}", ticket.pk)


def _reply(message: EmailMessage, sender: str, token: str) -> Outcome:
    try:
        ticket_id, user_id = reply_tokens.read(token)
    except signing.SignatureExpired:
        return refused(
            gettext_noop("the reply address has expired; reply to a newer message about the ticket")
        )
    except signing.BadSignature:
        return _reply_unmatched()
    author = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if author is None or author.email.strip().lower() != sender:
        return refused(
            gettext_noop("this reply address belongs to someone else; reply from your own mailbox")
        )
    try:
        ticket = access.get_visible_ticket(author, ticket_id)
    except Http404:
        return refused(gettext_noop("ticket #%(ticket)s is no longer yours to answer"), ticket=ticket_id)
    body = _without_quote(_text(message))
    if not body:
        return refused(gettext_noop("the reply was empty"))
    uploads = _checked_attachments(message)
    try:
        tickets.add_comment(ticket, author, body)
    except (PermissionDenied, ValidationError) as error:
        return refused(gettext_noop("the comment was refused: %(why)s"), why=" ".join(_messages(error)))
    for upload in uploads:
        tickets.add_attachment(ticket, author, upload)
    return Outcome(COMMENTED, f"comment on ticket #{ticket.pk} by {author.get_username()}", ticket.pk)


def _reply_token(message: EmailMessage) -> str | None:
    """The token in any address the message was sent to (To, Cc, or the MTA's delivery headers)."""
    headers = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
    for _name, address in getaddresses(
        [str(value) for header in headers for value in message.get_all(header, [])]
    ):
        found = _TOKEN.search(address)
        if found:
            return found.group(1)
    return None


def _sender(message: EmailMessage) -> str:
    """The From address, lowercased: what accounts and reply tokens are matched against."""
    return parseaddr(str(message.get("From", "")))[1].strip().lower()


def _known_account(sender: str):
    """The active account with this address (the oldest, if several share it), or None."""
    if not sender:
        return None
    return get_user_model().objects.filter(email__iexact=sender, is_active=True).order_by("pk").first()


def _sender_account(sender: str):
    found = _known_account(sender)
    if found is not None:
        return found
    users = get_user_model().objects
    name = settings.INTAKE_UNKNOWN_SENDER_ORGANIZATION
    if not name or not sender:
        return None
    organization = Organization.objects.filter(name=name).first()
    if organization is None:
        return None
    username = _free_username(sender.split("@", 1)[0])
    person = users.create_user(username=username, email=sender)  # no password: it may not log in
    UserProfile.objects.create(user=person, organization=organization, role=UserProfile.Role.CUSTOMER)
    return person


def _free_username(wanted: str) -> str:
    base = re.sub(r"[^\w.@+-]", "", wanted)[:140] or "customer"
    users, name, number = get_user_model().objects, base, 1
    while users.filter(username=name).exists():
        number += 1
        name = f"{base}{number}"
    return name


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if part.get_content_subtype() == "html":
        content = mail_text.html_to_text(content)
    return content.strip()


def _without_quote(text: str) -> str:
    """The reply itself: what comes before the quoted message."""
    found = _QUOTE_START.search(text)
    kept = text[: found.start()] if found else text
    lines = [line for line in kept.splitlines() if not line.startswith(">")]
    return "\n".join(lines).strip()


class _Refused(Exception):
    """A reason found deep inside to refuse the whole message."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


def _messages(error: Exception) -> list[str]:
    return getattr(error, "messages", None) or [str(error)]


def _checked_attachments(message: EmailMessage) -> list[SimpleUploadedFile]:
    """The message's attachments as uploads, each passing the upload rules (or _Refused naming it)."""
    found = []
    for part in message.iter_attachments():
        name = part.get_filename() or "attachment"
        upload = SimpleUploadedFile(
            name, part.get_payload(decode=True) or b"", content_type=part.get_content_type()
        )
        try:
            tickets.check_upload(upload)
        except ValidationError as error:
            why = " ".join(error.message_dict.get("file", error.messages))
            raise _Refused(refused("%(why)s", why=why)) from error  # Django's text, already translated
        found.append(upload)
    return found


def too_large(size: int | None = None) -> Outcome:
    """The refusal of a message over INTAKE_MAX_BYTES (size: when known; a pipe is not read past the
    limit)."""
    limit = f"{settings.INTAKE_MAX_BYTES / 2**20:.0f} MB"
    if size is None:
        return refused(
            gettext_noop("the message is larger than %(limit)s, the most the helpdesk takes"), limit=limit
        )
    return refused(
        gettext_noop("the message is %(size)s; the helpdesk takes messages up to %(limit)s"),
        size=f"{size / 2**20:.1f} MB",
        limit=limit,
    )


def _reply_unmatched() -> Outcome:
    return refused(
        gettext_noop(
            "the reply could not be matched to a ticket (its reply address is not one the helpdesk made); "
            "reply to a message about the ticket, or write without [#number] in the subject for a new ticket"
        )
    )
