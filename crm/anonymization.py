"""Personal data out of a copy of production (refresh_from_backup --anonymize): staging and test get
production's shape (every row, every relation, every attachment's type and size) and none of its people.

Each replacement is one bulk UPDATE (or DELETE) built from the row's own id, so the same person maps to
the same fake everywhere (user 42 is customer-42 / customer-42@example.invalid in every table that
names them) and a 100k-ticket copy takes seconds. Free text (titles, descriptions, comments,
resolution notes, the audit log's old and new values) is replaced outright: a customer's name inside a
sentence cannot be found reliably, so no sentence is kept. Attachments become placeholders of the
same content type and size under the same random path; their uploaded names go.
"""

import mimetypes
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.db.models import Case, CharField, Q, Value, When
from django.db.models.functions import Cast, Concat

from crm.models import (
    ActivityLog,
    Organization,
    OutboundMail,
    Ticket,
    TicketAttachment,
    TicketComment,
    UserProfile,
)

NO_PASSWORD = UNUSABLE_PASSWORD_PREFIX + "anonymized"  # what set_unusable_password() stores, no random part
FAKE_DOMAIN = "example.invalid"  # RFC 2606: never delivered anywhere
KEEP, ANONYMIZE = "keep", "anonymize"
PARALLEL_WRITERS = 2  # the machine's two cores; InnoDB rewrites different tables side by side


@dataclass
class Summary:
    """What was changed, by what: printed by the command, journaled by the refresh."""

    changed: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, count: int) -> None:
        self.changed[what] = self.changed.get(what, 0) + count


def _text(*parts) -> Concat:
    return Concat(
        *(Value(part) if isinstance(part, str) else part for part in parts), output_field=CharField()
    )


def _id() -> Cast:
    return Cast("id", CharField())


def anonymize(agents: str = KEEP) -> Summary:
    """Replace every customer's personal data (and the agents' too with agents=ANONYMIZE).

    Each table is one transaction; on MariaDB the big tables are rewritten two at a time over separate
    connections (one per core), on SQLite (one writer) one after another. A failure half-way leaves a
    copy the caller must undo (refresh_from_backup puts its safety backup back; maintenance mode keeps
    everyone out meanwhile)."""
    user_model = get_user_model()
    staff_roles = (UserProfile.Role.AGENT, UserProfile.Role.ADMIN)
    agent_q = Q(is_staff=True) | Q(is_superuser=True) | Q(profile__role__in=staff_roles)
    agent_ids = list(user_model.objects.filter(agent_q).values_list("id", flat=True))
    work: list[tuple[str, Callable[[], int]]] = [  # the biggest first: they set the pace
        ("comments", lambda: TicketComment.objects.update(body=_text("Comment ", _id(), " (anonymized)."))),
        ("tickets", _tickets),
        ("audit log entries", lambda: ActivityLog.objects.exclude(changes={}).update(changes={})),
        (
            "customer accounts",
            lambda: _rename_users(user_model.objects.exclude(id__in=agent_ids), "customer"),
        ),
        ("organizations", _organizations),
        ("attachment names", _rename_attachments),
        ("sessions dropped", lambda: Session.objects.all().delete()[0]),
        ("tokens and logs of people dropped", _drop_people_traces),
    ]
    if agents == ANONYMIZE:
        work.append(
            ("agent accounts", lambda: _rename_users(user_model.objects.filter(id__in=agent_ids), "agent"))
        )
    workers = PARALLEL_WRITERS if connection.vendor == "mysql" else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        counts = list(pool.map(_one_transaction, [job for _, job in work]))
    summary = Summary()
    for (what, _), count in zip(work, counts, strict=True):
        summary.add(what, count)
    return summary


def _one_transaction(job: Callable[[], int]) -> int:
    try:
        with transaction.atomic():
            return job()
    finally:
        connection.close()  # this thread's own connection


def _tickets() -> int:
    """Title, description and (where there are any) resolution notes in one pass over the table."""
    return Ticket.objects.update(
        title=_text("Ticket ", _id()),
        description=_text("Description of ticket ", _id(), " (anonymized)."),
        resolution_notes=Case(
            When(resolution_notes="", then=Value("")),
            default=_text("Resolution of ticket ", _id(), " (anonymized)."),
        ),
    )


def _organizations() -> int:
    return Organization.objects.update(
        name=_text("Organization ", _id()), email=_text("organization-", _id(), f"@{FAKE_DOMAIN}")
    )


def _rename_users(users, kind: str) -> int:
    return users.update(
        username=_text(f"{kind}-", _id()),
        first_name=Value(kind.capitalize()),
        last_name=_id(),
        email=_text(f"{kind}-", _id(), f"@{FAKE_DOMAIN}"),
        password=Value(NO_PASSWORD),
    )


def _rename_attachments() -> int:
    """One UPDATE per content type: the name keeps an extension that fits the type, nothing else."""
    renamed = 0
    for content_type in TicketAttachment.objects.values_list("content_type", flat=True).distinct():
        extension = mimetypes.guess_extension(content_type or "") or ".bin"
        renamed += TicketAttachment.objects.filter(content_type=content_type).update(
            original_name=_text("attachment-", _id(), extension)
        )
    return renamed


def _drop_people_traces() -> int:
    """API tokens, the admin's history (it names the objects it changed), login attempts (usernames
    and addresses), the mail outbox (addresses and text): none of it belongs to a copy."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib.admin.models import LogEntry
    from rest_framework.authtoken.models import Token

    return sum(
        model.objects.all().delete()[0]
        for model in (Token, LogEntry, AccessAttempt, AccessLog, AccessFailureLog, OutboundMail)
    )


def write_placeholders(media_root: Path) -> int:
    """Every attachment's file replaced by a placeholder of its type and size; files no row refers to
    (the environment's own uploads from before the refresh) removed. Returns the files written."""
    attachments = media_root / "attachments"
    if attachments.exists():
        shutil.rmtree(attachments)
    written = 0
    rows = TicketAttachment.objects.values_list("file", "size", "content_type").order_by("id")
    for name, size, content_type in rows.iterator(chunk_size=2000):
        target = (media_root / name).resolve()
        if not target.is_relative_to(media_root.resolve()):
            continue  # a path that leaves MEDIA_ROOT was never an upload of ours
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(placeholder(content_type, size))
        os.chmod(target, 0o640)
        written += 1
    return written


_HEADERS = {
    "application/pdf": b"%PDF-1.4\n% anonymized placeholder\n",
    "image/png": bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
    ),
    "image/gif": b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
}


def placeholder(content_type: str, size: int) -> bytes:
    """`size` bytes that a program for `content_type` recognizes (a tiny valid image, a PDF header,
    text) and that hold nothing of the original."""
    if content_type.startswith("text/"):
        pattern = b"anonymized placeholder\n"
        head = b""
    else:
        pattern, head = b"\0", _HEADERS.get(content_type, b"")
    if size <= len(head):
        return head[:size]
    body = (pattern * (size // len(pattern) + 1))[: size - len(head)]
    return head + body
