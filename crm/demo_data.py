"""Demo data for trying the helpdesk and for benchmarks: organizations, people, tickets, history.

Everything is written in multi-row INSERTs in batches inside one transaction, and password hashes are
computed once per role, so a million tickets load in minutes on MariaDB. Running it again
reuses the organizations and people it created before and adds more tickets.
"""

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction
from django.db.models import Max
from django.utils import timezone

from crm.models import ActivityLog, Organization, Ticket, TicketComment, UserProfile

AGENT_COUNT = 5
CUSTOMERS_PER_ORGANIZATION = 2
DEMO_PASSWORDS = {"admin": "admin", "agent": "agent", "customer": "customer"}

_SUBJECTS = [
    "VPN",
    "printer",
    "email",
    "laptop",
    "invoice",
    "password",
    "Wi-Fi",
    "monitor",
    "ERP",
    "backup",
    "phone",
    "calendar",
    "website",
    "database",
    "report",
    "license",
    "drukarka",
    "faktura",
    "konto",
]
_PROBLEMS = [
    "does not work",
    "is very slow",
    "shows an error",
    "cannot connect",
    "needs to be replaced",
    "keeps crashing",
    "lost data",
    "access denied",
    "nie działa",
    "wymaga aktualizacji",
]
_DETAILS = [
    "Since this morning nobody in the office can use it.",
    "The error appears after the last update.",
    "Restarting did not help.",
    "It happens only on Mondays, around 9 a.m.",
    "Please call me back, this blocks our month-end closing.",
    "Użytkownicy zgłaszają problem od wczoraj.",
    "Screenshot available on request.",
]
_COMMENTS = [
    "Thanks, we are looking into it.",
    "Could you send the exact error message?",
    "Restarted the service, please check again.",
    "Works now, thank you!",
    "Escalated to the second line.",
    "Sprawdzamy, odezwiemy się wkrótce.",
]
_STATUS_WEIGHTS = {"new": 25, "in_progress": 30, "resolved": 30, "closed": 15}
_PRIORITY_WEIGHTS = {"low": 20, "normal": 50, "high": 22, "urgent": 8}


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str
    organization: str


@dataclass(frozen=True)
class SeedResult:
    organizations: int
    users: int
    tickets: int
    comments: int
    activities: int
    logins: list[DemoLogin]


def seed(*, tickets: int, orgs: int, random_seed: int = 42, batch_size: int = 5000) -> SeedResult:
    """Create demo data and return what was created, with a few logins to try."""
    if tickets < 0 or orgs < 1:
        raise ValueError("tickets must be >= 0 and orgs >= 1")
    rng = random.Random(random_seed)
    with transaction.atomic():
        organizations = _ensure_organizations(orgs)
        agents, customers_by_org, users_created = _ensure_people(organizations)
        ticket_count, comment_count, activity_count = _create_tickets(
            rng, tickets, organizations, agents, customers_by_org, batch_size
        )
    return SeedResult(
        len(organizations), users_created, ticket_count, comment_count, activity_count, existing_logins()
    )


def existing_logins() -> list[DemoLogin]:
    """The demo logins worth trying, as far as they exist in this database."""
    first_customer = (
        UserProfile.objects.filter(role="customer", user__username__startswith="customer")
        .select_related("user", "organization")
        .order_by("user__username")
        .first()
    )
    candidates = [
        ("admin", "admin", ""),
        ("agent1", "agent", ""),
    ]
    if first_customer:
        candidates.append((first_customer.user.username, "customer", first_customer.organization.name))
    present = set(
        get_user_model()
        .objects.filter(username__in=[c[0] for c in candidates])
        .values_list("username", flat=True)
    )
    return [
        DemoLogin(username, DEMO_PASSWORDS[role], role, org)
        for username, role, org in candidates
        if username in present
    ]


def organization_name(index: int) -> str:
    return f"Demo Organization {index:04d}"


def _ensure_organizations(count: int) -> list[Organization]:
    names = [organization_name(i) for i in range(1, count + 1)]
    existing = set(Organization.objects.filter(name__in=names).values_list("name", flat=True))
    Organization.objects.bulk_create(
        [
            Organization(name=name, email=f"contact@org{name[-4:]}.example")
            for name in names
            if name not in existing
        ]
    )
    return list(Organization.objects.filter(name__in=names).order_by("name"))


def _ensure_people(organizations: list[Organization]):
    User = get_user_model()
    hashes = {role: make_password(password) for role, password in DEMO_PASSWORDS.items()}
    wanted: list[tuple[str, str, Organization | None]] = [("admin", "admin", None)]
    wanted += [(f"agent{i}", "agent", None) for i in range(1, AGENT_COUNT + 1)]
    for org in organizations:
        suffix = org.name[-4:]
        wanted += [
            (f"customer{suffix}-{n}", "customer", org) for n in range(1, CUSTOMERS_PER_ORGANIZATION + 1)
        ]

    usernames = [username for username, _, _ in wanted]
    existing = set(User.objects.filter(username__in=usernames).values_list("username", flat=True))
    missing = [entry for entry in wanted if entry[0] not in existing]
    User.objects.bulk_create(
        [
            User(
                username=username,
                email=f"{username}@demo.example",
                password=hashes[role],
                is_staff=role == "admin",
                is_superuser=role == "admin",
            )
            for username, role, _ in missing
        ]
    )
    users = {user.username: user for user in User.objects.filter(username__in=usernames)}
    UserProfile.objects.bulk_create(
        [UserProfile(user=users[username], role=role, organization=org) for username, role, org in missing]
    )

    agents = [users[f"agent{i}"] for i in range(1, AGENT_COUNT + 1)]
    customers_by_org = {
        org.pk: [users[f"customer{org.name[-4:]}-{n}"] for n in range(1, CUSTOMERS_PER_ORGANIZATION + 1)]
        for org in organizations
    }
    return agents, customers_by_org, len(missing)


def _create_tickets(rng, count, organizations, agents, customers_by_org, batch_size) -> tuple[int, int, int]:
    """Tickets with their comments and history, as rows: building a model instance and letting
    bulk_create prepare each of its values cost four times the database's own time. Ids are given
    (after the highest one), so that comments and history can point at their tickets in the same batch;
    the seed runs in one transaction, and refuses production databases."""
    first_id = (Ticket.objects.aggregate(highest=Max("id"))["highest"] or 0) + 1
    comments = activities = 0
    for batch in _batches(range(count), batch_size):
        tickets = [_random_ticket(rng, first_id + n, organizations, agents, customers_by_org) for n in batch]
        new_comments, new_activities = [], []
        for ticket in tickets:
            new_comments += _random_comments(rng, ticket, agents)
            new_activities += _history(ticket)
        _insert(Ticket, tickets)
        _insert(TicketComment, new_comments)
        _insert(ActivityLog, new_activities)
        comments += len(new_comments)
        activities += len(new_activities)
    return count, comments, activities


def _insert(model, rows: list[dict]) -> None:
    """INSERT rows (dicts keyed by column) in multi-row statements; datetimes and JSON adapted as Django
    would, the other values are already what the database stores."""
    if not rows:
        return
    fields = [field for field in model._meta.concrete_fields if field.attname in rows[0]]
    adapt = [_adapter(field) for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(model._meta.db_table)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 (names from the model)
    values = [
        tuple(convert(row[field.attname]) for field, convert in zip(fields, adapt, strict=True))
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)


def _adapter(field):
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, models.JSONField):
        return json.dumps
    return lambda value: value


def _random_ticket(rng, ticket_id: int | None, organizations, agents, customers_by_org) -> dict:
    org = rng.choice(organizations)
    status = rng.choices(list(_STATUS_WEIGHTS), weights=list(_STATUS_WEIGHTS.values()))[0]
    now = timezone.now()
    created_at = now - timedelta(seconds=rng.randint(0, 365 * 24 * 3600))
    done = status in ("resolved", "closed")
    resolved_at = min(created_at + timedelta(minutes=rng.randint(5, 7 * 24 * 60)), now) if done else None
    subject, problem = rng.choice(_SUBJECTS), rng.choice(_PROBLEMS)
    return {
        "id": ticket_id,
        "title": f"{subject.capitalize()} {problem}",
        "description": f"Our {subject} {problem}. {rng.choice(_DETAILS)}",
        "status": status,
        "priority": rng.choices(list(_PRIORITY_WEIGHTS), weights=list(_PRIORITY_WEIGHTS.values()))[0],
        "created_by_id": rng.choice(customers_by_org[org.pk]).pk,
        "assigned_to_id": rng.choice(agents).pk if status != "new" else None,
        "organization_id": org.pk,
        "created_at": created_at,
        "updated_at": resolved_at or created_at,
        "resolved_at": resolved_at,
        "resolution_notes": "Fixed by the demo agent." if done and rng.random() < 0.7 else "",
    }


def _random_comments(rng, ticket: dict, agents) -> list[dict]:
    return [
        {
            "ticket_id": ticket["id"],
            "author_id": ticket["assigned_to_id"] or rng.choice(agents).pk,
            "body": rng.choice(_COMMENTS),
            "is_internal": rng.random() < 0.2,
            "created_at": ticket["created_at"] + timedelta(minutes=10 * (n + 1)),
        }
        for n in range(rng.randint(0, 3))
    ]


def _history(ticket: dict) -> list[dict]:
    entries = [
        {
            "ticket_id": ticket["id"],
            "actor_id": ticket["created_by_id"],
            "action": "created",
            "changes": {},
            "created_at": ticket["created_at"],
        }
    ]
    if ticket["status"] != "new":
        entries.append(
            {
                "ticket_id": ticket["id"],
                "actor_id": ticket["assigned_to_id"],
                "action": "updated",
                "changes": {"status": ["new", ticket["status"]]},
                "created_at": ticket["resolved_at"] or ticket["created_at"] + timedelta(minutes=5),
            }
        )
    return entries


def _batches(items: range, size: int) -> Iterator[range]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
