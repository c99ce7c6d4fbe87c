"""What can happen to a ticket: opening, changing, commenting, attaching — each one audited.

The web pages and the JSON API both call these functions, so the rules (who may change which field,
which status may follow which, resolving needs notes) and the ActivityLog rows are the same whichever
way a change arrives. Rule violations raise django.core.exceptions.ValidationError keyed by field.
"""

import logging
import mimetypes
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import access, due_dates, notifications
from crm.models import ActivityLog, Organization, Ticket, TicketAttachment, TicketComment, display_name
from crm.retries import retrying

logger = logging.getLogger(__name__)

Status = Ticket.Status

# Which status may follow which. Reopening (back to in progress) is allowed from resolved and closed.
TRANSITIONS: dict[str, set[str]] = {
    Status.NEW: {Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED},
    Status.IN_PROGRESS: {Status.NEW, Status.RESOLVED, Status.CLOSED},
    Status.RESOLVED: {Status.IN_PROGRESS, Status.CLOSED},
    Status.CLOSED: {Status.IN_PROGRESS},
}
CUSTOMER_FIELDS = {"title", "description", "priority"}
STAFF_FIELDS = CUSTOMER_FIELDS | {"status", "assigned_to", "resolution_notes"}


def editable_fields(user) -> set[str]:
    return STAFF_FIELDS if access.is_staff_member(user) else CUSTOMER_FIELDS


def open_ticket(
    *,
    author,
    title: str,
    description: str,
    priority: str = Ticket.Priority.NORMAL,
    organization: Organization | None = None,
    assigned_to=None,
) -> Ticket:
    """Create a ticket. Customers always open it for their own organization."""
    if access.is_staff_member(author):
        if organization is None:
            raise ValidationError({"organization": _("Choose the organization this ticket is for.")})
    else:
        if access.organization_id_of(author) is None:
            raise PermissionDenied("Only members of an organization can open tickets.")
        if assigned_to is not None:
            raise PermissionDenied("Only agents can assign tickets.")
        organization = Organization.objects.get(pk=access.organization_id_of(author))
    if assigned_to is not None:
        _check_assignee(assigned_to)
    return _create_ticket(
        title=title,
        description=description,
        priority=priority,
        organization=organization,
        created_by=author,
        assigned_to=assigned_to,
    )


@retrying
def _create_ticket(**fields) -> Ticket:
    created = timezone.now()
    response_due, due = due_dates.due_dates(created, fields["priority"])
    ticket = Ticket.objects.create(**fields, created_at=created, response_due_at=response_due, due_at=due)
    _log(
        ticket,
        fields["created_by"],
        "created",
        {"title": [None, ticket.title], "priority": [None, ticket.priority]},
    )
    notifications.ticket_created(ticket, fields["created_by"])  # the outbox, in this transaction
    return ticket


def change_ticket(ticket: Ticket, actor, changes: dict[str, Any]) -> dict[str, list]:
    """Apply field changes as actor; return {field: [old, new]} of what really changed."""
    forbidden = set(changes) - editable_fields(actor)
    if forbidden:
        raise PermissionDenied(f"Not allowed to change: {', '.join(sorted(forbidden))}.")
    audit = _apply_changes(ticket.pk, actor, changes)
    ticket.refresh_from_db()
    return audit


@retrying
def _apply_changes(pk: int, actor, changes: dict[str, Any]) -> dict[str, list]:
    # The row locked first, so that the "old" values in the audit are the ones really replaced.
    current = _locked(pk)
    diff = {
        field: [getattr(current, field), value]
        for field, value in changes.items()
        if getattr(current, field) != value
    }
    if not diff:
        return {}
    _validate(current, changes, diff)
    for field, (_old, new) in diff.items():
        setattr(current, field, new)
    if "status" in diff:
        _stamp_resolution(current, diff["status"][1])
    if "priority" in diff:  # the targets follow the priority, counted from the ticket's creation
        current.response_due_at, current.due_at = due_dates.due_dates(current.created_at, current.priority)
    current.save()
    audit = {field: [_audit_value(old), _audit_value(new)] for field, (old, new) in diff.items()}
    _log(current, actor, "updated", audit)
    notifications.ticket_changed(current, actor, audit)
    return audit


def add_comment(ticket: Ticket, author, body: str, is_internal: bool = False) -> TicketComment:
    if is_internal and not access.is_staff_member(author):
        raise PermissionDenied("Only agents can write internal notes.")
    if not body.strip():
        raise ValidationError({"body": _("A comment cannot be empty.")})
    comment = _insert_comment(ticket, author, body, is_internal)
    _touch(ticket.pk, first_response=not is_internal and access.is_staff_member(author))
    return comment


@retrying
def _insert_comment(ticket: Ticket, author, body: str, is_internal: bool) -> TicketComment:
    # Only rows added: the foreign keys take shared locks on the ticket, so comments on a busy ticket
    # go in side by side. Taking the ticket's exclusive lock here as well (for updated_at) is what
    # deadlocked two comments: each held a shared lock and waited for the other's to go.
    comment = TicketComment.objects.create(ticket=ticket, author=author, body=body, is_internal=is_internal)
    _log(ticket, author, "commented", {"internal": is_internal})
    notifications.comment_added(ticket, author, comment)
    return comment


@retrying
def _touch(pk: int, first_response: bool = False) -> None:
    """The ticket's updated_at, in a statement of its own: an exclusive lock for one row, briefly;
    with an agent's public comment, also the first answer's time (once)."""
    now = timezone.now()
    Ticket.objects.filter(pk=pk).update(updated_at=now)
    if first_response:
        Ticket.objects.filter(pk=pk, first_response_at=None).update(first_response_at=now)


def check_upload(upload: UploadedFile) -> None:
    """The rules every uploaded file meets, checked before anything is stored."""
    limit = settings.ATTACHMENT_MAX_BYTES
    if upload.size > limit:
        raise ValidationError(
            {
                "file": _("%(name)s is too large (%(size)s); the limit is %(limit)s.")
                % {
                    "name": display_name(upload.name),
                    "size": filesizeformat(upload.size),
                    "limit": filesizeformat(limit),
                }
            }
        )
    if upload.size == 0:
        raise ValidationError({"file": _("%(name)s is empty.") % {"name": display_name(upload.name)}})


def add_attachment(ticket: Ticket, uploader, upload: UploadedFile) -> TicketAttachment:
    check_upload(upload)
    # The browser's claim about the type is only a hint; downloads are always sent as attachments.
    content_type = mimetypes.guess_type(upload.name)[0] or "application/octet-stream"
    attachment = TicketAttachment(
        ticket=ticket,
        uploaded_by=uploader,
        original_name=display_name(upload.name),
        size=upload.size,
        content_type=content_type,
    )
    attachment.file.save(upload.name, upload, save=False)  # once, outside the retried transaction
    try:
        _record_attachment(attachment)
    except BaseException:
        attachment.file.delete(save=False)  # no row points at it
        raise
    return attachment


def attach_all(ticket: Ticket, uploader, uploads: list[UploadedFile]) -> list[str]:
    """Files sent with a new ticket (already checked by check_upload). The ticket is kept whatever
    happens to them: the names of files that could not be stored are returned, to be said."""
    lost = []
    for upload in uploads:
        try:
            add_attachment(ticket, uploader, upload)
        except (OSError, DatabaseError):
            logger.exception("attachment %s of ticket #%s could not be stored", upload.name, ticket.pk)
            lost.append(display_name(upload.name))
    return lost


@retrying
def _record_attachment(attachment: TicketAttachment) -> None:
    attachment.pk = None  # a retried attempt inserts anew
    attachment.save()
    details = {"file": [None, attachment.filename], "size": [None, attachment.size]}
    _log(attachment.ticket, attachment.uploaded_by, "attachment_added", details)


def _locked(pk: int) -> Ticket:
    """The ticket's row, locked for this transaction before anything else: a write that changes the
    ticket takes its exclusive lock first, never after the shared locks of rows it adds (that order
    deadlocks against another writer doing the same)."""
    return Ticket.objects.select_for_update().get(pk=pk)


def visible_activity(user, ticket: Ticket):
    entries = ticket.activity.select_related("actor").order_by("created_at", "id")
    if not access.is_staff_member(user):
        entries = entries.exclude(action="commented", changes__internal=True)
    return entries


def _validate(current: Ticket, changes: dict[str, Any], diff: dict[str, list]) -> None:
    errors: dict[str, str] = {}
    if "status" in diff:
        old, new = diff["status"]
        if new not in Status.values:
            errors["status"] = _("Unknown status.")
        elif new not in TRANSITIONS[old]:
            errors["status"] = _("A ticket cannot go from %(old)s to %(new)s.") % {
                "old": Status(old).label,
                "new": Status(new).label,
            }
        elif new == Status.RESOLVED and not changes.get("resolution_notes", current.resolution_notes).strip():
            errors["resolution_notes"] = _("Describe how the ticket was resolved.")
    if "priority" in diff and diff["priority"][1] not in Ticket.Priority.values:
        errors["priority"] = _("Unknown priority.")
    if "title" in diff and not str(diff["title"][1]).strip():
        errors["title"] = _("A ticket needs a title.")
    if errors:
        raise ValidationError(errors)
    if diff.get("assigned_to", [None, None])[1] is not None:
        _check_assignee(diff["assigned_to"][1])


def _check_assignee(user) -> None:
    if not access.assignable_users().filter(pk=user.pk).exists():
        raise ValidationError({"assigned_to": _("Tickets can only be assigned to agents.")})


def _stamp_resolution(ticket: Ticket, new_status: str) -> None:
    if new_status in (Status.RESOLVED, Status.CLOSED):
        ticket.resolved_at = ticket.resolved_at or timezone.now()
    else:
        ticket.resolved_at = None


def _audit_value(value: Any) -> Any:
    """Store people by username, so the history reads well even after the account is gone."""
    if hasattr(value, "get_username"):
        return value.get_username()
    return value


def _log(ticket: Ticket, actor, action: str, changes: dict) -> None:
    ActivityLog.objects.create(ticket=ticket, actor=actor, action=action, changes=changes)
