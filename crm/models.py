"""The helpdesk domain: organizations, their people, tickets and everything attached to them.

Names follow the model contract in shared/DESIGN.md; other apps and the tests rely on them.
"""

import re
import secrets
from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Organization(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    email = models.EmailField(_("email"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")

    def __str__(self) -> str:
        return self.name


class UserProfile(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        AGENT = "agent", _("Agent")
        ADMIN = "admin", _("Administrator")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    # Agents and admins work for the helpdesk itself and may belong to no customer organization.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="members"
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.CUSTOMER)
    # Mail about tickets (crm/notifications.py). db_default: the release before keeps inserting profiles.
    language = models.CharField(
        _("language"), max_length=10, blank=True, db_default="", default="", choices=settings.LANGUAGES
    )
    email_notifications = models.BooleanField(_("e-mail about my tickets"), db_default=True, default=True)
    watches_organization = models.BooleanField(
        _("e-mail about every ticket of my organization"), db_default=False, default=False
    )

    class Meta:
        verbose_name = _("user profile")
        verbose_name_plural = _("user profiles")
        # The few agents and admins among (possibly) very many customers: crm.access.assignable_users.
        indexes = [models.Index(fields=["role", "user"], name="crm_userprofile_role_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=["customer", "agent", "admin"]), name="crm_userprofile_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


LARGEST_INTEGER = 2**63 - 1  # a BIGINT column: the widest integer SQLite and MariaDB look up
PRIORITY_ORDER = ("urgent", "high", "normal", "low")  # the list's "priority" order, most urgent first
NO_DUE_DATE = datetime(9999, 12, 31, tzinfo=UTC)


class Ticket(models.Model):
    class Status(models.TextChoices):
        NEW = "new", _("New")
        IN_PROGRESS = "in_progress", _("In progress")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")

    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"))
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(
        _("priority"), max_length=20, choices=Priority.choices, default=Priority.NORMAL
    )
    # PROTECT: deleting a person or an organization must never take tickets with it.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_tickets"
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
    )
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="tickets")
    # A default rather than auto_now_add, so imported and demo tickets can keep their real dates.
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolution_notes = models.TextField(_("resolution notes"), blank=True, default="")
    # Targets by priority (crm/due_dates.py); null for tickets from before due dates.
    response_due_at = models.DateTimeField(_("first answer due"), null=True, blank=True)
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    first_response_at = models.DateTimeField(_("first answered"), null=True, blank=True)
    # Sort keys the database computes (virtual columns: no storage, nothing for the code to keep up to
    # date) so that the list's "priority" and "due" orders read an index instead of sorting the table.
    priority_rank = models.GeneratedField(
        expression=Case(
            *(When(priority=p, then=Value(rank)) for rank, p in enumerate(PRIORITY_ORDER)),
            default=Value(len(PRIORITY_ORDER)),
        ),
        output_field=models.PositiveSmallIntegerField(),
        db_persist=False,
    )
    due_order = models.GeneratedField(
        expression=Coalesce(F("due_at"), Value(NO_DUE_DATE)),  # no due date: after every due date
        output_field=models.DateTimeField(),
        db_persist=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        indexes = [
            # The ticket list: newest first, optionally narrowed by status and/or organization.
            models.Index(fields=["-created_at", "-id"], name="crm_ticket_created_idx"),
            models.Index(fields=["status", "-created_at"], name="crm_ticket_status_created_idx"),
            models.Index(fields=["organization", "status", "-created_at"], name="crm_ticket_org_status_idx"),
            # Overdue: open tickets past due_at, soonest first (the filter, the sort, the status count).
            models.Index(fields=["status", "due_at"], name="crm_ticket_status_due_idx"),
            # Each filter of the list with its default order, and each order of the list
            # (crm/ticket_filters.py; tests/test_ticket_list_plans.py reads their EXPLAIN on MariaDB).
            models.Index(fields=["organization", "-created_at", "-id"], name="crm_ticket_org_created_idx"),
            models.Index(fields=["priority", "-created_at", "-id"], name="crm_ticket_priority_idx"),
            # Status and priority together, the list's commonest pair: its count reads the index alone.
            models.Index(
                fields=["status", "priority", "-created_at", "-id"], name="crm_ticket_status_priority_idx"
            ),
            models.Index(fields=["assigned_to", "-created_at", "-id"], name="crm_ticket_assignee_idx"),
            models.Index(fields=["-updated_at", "-id"], name="crm_ticket_updated_idx"),
            models.Index(fields=["title", "id"], name="crm_ticket_title_idx"),
            models.Index(fields=["priority_rank", "-created_at", "-id"], name="crm_ticket_priority_rank_idx"),
            models.Index(fields=["due_order", "id"], name="crm_ticket_due_order_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["new", "in_progress", "resolved", "closed"]),
                name="crm_ticket_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(priority__in=["low", "normal", "high", "urgent"]),
                name="crm_ticket_priority_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("crm:ticket_detail", args=[self.pk])


class TicketComment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ticket_comments"
    )
    body = models.TextField(_("comment"))
    # Internal notes are for agents only; customers never see them.
    is_internal = models.BooleanField(_("internal note"), default=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("comment")
        verbose_name_plural = _("comments")

    def __str__(self) -> str:
        return f"{self.author} on #{self.ticket_id}"


def attachment_path(instance: "TicketAttachment", filename: str) -> str:
    """attachments/<ticket>/<32 random hex digits>[.<extension>]: a name we generate, never the uploader's.

    Nothing a customer types reaches the file system (no length, encoding or character surprises, two
    uploads of one name never meet, nobody guesses a path); the uploader's name is kept in the row,
    for the download. A plain short extension is kept so that the files still make sense to whoever
    browses MEDIA_ROOT."""
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    suffix = f".{extension}" if _PLAIN_EXTENSION.fullmatch(extension) else ""
    return f"attachments/{instance.ticket_id}/{secrets.token_hex(16)}{suffix}"


_PLAIN_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
# Path separators and control characters: no part of a name a browser should be offered to save.
_UNSAVEABLE = re.compile(r"[\x00-\x1f\x7f/\\]")


def display_name(uploaded: str) -> str:
    """The uploader's file name as it will be offered on download: the last path component, without
    control characters, shortened (extension kept) to fit 255 bytes, the most a file system takes."""
    base = _UNSAVEABLE.sub("", uploaded.replace("\\", "/").rsplit("/", 1)[-1]).strip().strip(".")
    return fit_name(base, max_bytes=255, max_chars=255)


def fit_name(name: str, *, max_bytes: int, max_chars: int) -> str:
    """name shortened, extension kept, to at most max_bytes in UTF-8 and max_chars characters;
    "file" when nothing of the stem is left."""
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension.encode()) > 16:  # no extension worth keeping
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    room_bytes = max_bytes - len(suffix.encode())
    room_chars = max_chars - len(suffix)
    stem = stem[:room_chars]
    while len(stem.encode()) > room_bytes:
        stem = stem[:-1]
    return (stem or "file") + suffix


class TicketAttachment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="attachments")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ticket_attachments"
    )
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=255)
    # db_default: the release before this column keeps inserting attachments while it is being added.
    original_name = models.CharField(_("file name"), max_length=255, blank=True, db_default="")
    size = models.PositiveBigIntegerField(_("size in bytes"))
    content_type = models.CharField(_("content type"), max_length=100)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.file.name

    @property
    def filename(self) -> str:
        """The name the uploader gave (what a download is offered as); files stored before names were
        kept apart carry it in their path."""
        return self.original_name or self.file.name.rsplit("/", 1)[-1]


class ActivityLog(models.Model):
    # SET_NULL: the audit trail outlives the ticket and the person it talks about.
    ticket = models.ForeignKey(
        Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="activity"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=50)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("activity log entry")
        verbose_name_plural = _("activity log")
        indexes = [models.Index(fields=["ticket", "created_at"], name="crm_activity_ticket_idx")]

    def __str__(self) -> str:
        return f"{self.action} #{self.ticket_id}"


class OutboundMail(models.Model):
    """The outbox: a notification written in the same transaction as the change it tells about, sent
    after commit by `send_notifications` (crm/outbox.py) with retries; a ticket write never waits for
    (or fails with) a mail server."""

    recipient = models.EmailField(max_length=254)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    headers = models.JSONField(default=dict, blank=True)
    ticket = models.ForeignKey(Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    event = models.CharField(max_length=30)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)  # given up after the last attempt
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]
        verbose_name = _("outgoing mail")
        verbose_name_plural = _("outgoing mail")
        indexes = [
            # What is due: unsent, not given up, its next attempt reached (also the oldest's age).
            models.Index(fields=["sent_at", "dead_at", "next_attempt_at"], name="crm_outbox_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.recipient}"


class InboundMail(models.Model):
    """Each message receive_mail has handled, by Message-ID: the same message delivered twice (a retry
    of the MTA, two mailboxes) creates nothing twice. Written in the same transaction as its ticket or
    comment, so a crash in between leaves neither."""

    message_id = models.CharField(max_length=255, unique=True)
    received_at = models.DateTimeField(default=timezone.now)
    sender = models.EmailField(max_length=254, blank=True)
    ticket = models.ForeignKey(Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    outcome = models.CharField(max_length=30)  # created | commented | ignored | refused

    class Meta:
        ordering = ["-received_at"]
        verbose_name = _("incoming mail")
        verbose_name_plural = _("incoming mail")

    def __str__(self) -> str:
        return f"{self.outcome}: {self.message_id}"
