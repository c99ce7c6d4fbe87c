"""refresh_from_backup --anonymize: a production backup set (taken with ENVIRONMENT=prod) restored into
staging and anonymized in the same run, on the database of the test run (SQLite or MariaDB). A scan of
every text column of every table and of every media file looks for each production person's name,
e-mail address, username and phone number."""

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from crm import demo_data
from crm.anonymization import placeholder
from crm.models import ActivityLog, Organization, Ticket, TicketAttachment, TicketComment, UserProfile
from tests.support.tampering import flip_byte
from tests.test_backup_sets import manage_py
from updater.backup import backups
from updater.run import maintenance

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = {"username": "janusz.przybyszewski", "first_name": "Janusz", "last_name": "Przybyszewski"}
CUSTOMER_EMAIL = "janusz.przybyszewski@firma-klienta.pl"
PHONE = "+48 601 234 567"
ORGANIZATION = "Firma Klienta Wąchock"
ORGANIZATION_EMAIL = "biuro@firma-klienta.pl"
AGENT = {"username": "agnieszka.wsparcie", "first_name": "Agnieszka", "last_name": "Wsparcie"}
AGENT_PASSWORD = "agent-password-123"
PERSONAL = [*CUSTOMER.values(), CUSTOMER_EMAIL, PHONE, ORGANIZATION, ORGANIZATION_EMAIL, "Przybyszewsk"]


@pytest.fixture
def production(state_dir, settings):
    """A production database with demo data and one customer whose data is everywhere, backed up."""
    demo_data.seed(tickets=30, orgs=3)
    users = get_user_model()
    organization = Organization.objects.create(name=ORGANIZATION, email=ORGANIZATION_EMAIL)
    customer = users.objects.create_user(email=CUSTOMER_EMAIL, password="customer-pw-1", **CUSTOMER)
    UserProfile.objects.create(user=customer, organization=organization)
    agent = users.objects.create_user(email="agnieszka@helpdesk.example", password=AGENT_PASSWORD, **AGENT)
    UserProfile.objects.create(user=agent, role=UserProfile.Role.AGENT)
    ticket = Ticket.objects.create(
        title=f"{CUSTOMER['first_name']} {CUSTOMER['last_name']}: drukarka nie drukuje",
        description=f"Proszę o telefon: {PHONE}, albo mail {CUSTOMER_EMAIL}",
        created_by=customer,
        organization=organization,
        resolution_notes=f"Oddzwoniono do {CUSTOMER['last_name']}",
    )
    TicketComment.objects.create(ticket=ticket, author=customer, body=f"Pozdrawiam, {CUSTOMER['first_name']}")
    TicketComment.objects.create(ticket=ticket, author=agent, body=f"{PHONE} nie odbiera", is_internal=True)
    content = f"%PDF-1.4 umowa {CUSTOMER_EMAIL} {PHONE}".encode() * 50
    TicketAttachment.objects.create(
        ticket=ticket,
        uploaded_by=customer,
        file=SimpleUploadedFile("umowa-przybyszewski.pdf", content),
        original_name="umowa-przybyszewski.pdf",
        size=len(content),
        content_type="application/pdf",
    )
    ActivityLog.objects.create(
        ticket=ticket, actor=customer, action="updated", changes={"title": ["x", CUSTOMER_EMAIL]}
    )
    Token.objects.create(user=customer)
    LogEntry.objects.create(
        user=agent, object_id=str(customer.pk), object_repr=CUSTOMER["username"], action_flag=ADDITION
    )
    assert logs_in(CUSTOMER["username"], "customer-pw-1")  # a session row
    settings.ENVIRONMENT = "prod"
    taken = backups.create_backup(reason="nightly")
    settings.ENVIRONMENT = "staging"
    return taken


def logs_in(username: str, password: str) -> bool:
    """Through the login page, as a person would (a session row when it works)."""
    return Client().post("/login/", {"username": username, "password": password}).status_code == 302


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Ticket, TicketComment, TicketAttachment, ActivityLog, Organization, UserProfile)
    }


def refresh(*args: str) -> str:
    out = StringIO()
    call_command("refresh_from_backup", *args, stdout=out, stderr=out)
    return out.getvalue()


def every_text_value() -> str:
    """Every value of every column of every table, as text."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 (introspected names)
            found += [str(value) for row in cursor.fetchall() for value in row]
    return "\n".join(found)


def every_media_file() -> bytes:
    return b"\n".join(path.read_bytes() for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file())


def test_a_production_set_refreshed_into_staging_holds_none_of_its_people(production):
    before = counts()
    owners = dict(Ticket.objects.values_list("id", "created_by_id"))
    assert all(text in every_text_value() for text in PERSONAL)  # the scan finds them when they are there

    leftover = Path(settings.MEDIA_ROOT, "attachments", "staging-upload.txt")  # staging's own, from before
    leftover.write_text(f"uploaded on staging by {CUSTOMER_EMAIL}")

    output = refresh(str(production.path), "--anonymize")

    database, files = every_text_value().lower(), every_media_file().lower()
    for text in PERSONAL:
        assert text.lower() not in database, f"{text!r} is still in the database"
        assert text.lower().encode() not in files, f"{text!r} is still in a media file"
    assert counts() == before  # every row, and every relation, is still there
    assert dict(Ticket.objects.values_list("id", "created_by_id")) == owners
    on_disk = {
        p.relative_to(settings.MEDIA_ROOT).as_posix()
        for p in Path(settings.MEDIA_ROOT).rglob("*")
        if p.is_file()
    }
    assert on_disk == set(
        TicketAttachment.objects.values_list("file", flat=True)
    )  # placeholders, nothing else
    for attachment in TicketAttachment.objects.all():
        on_disk = Path(settings.MEDIA_ROOT, attachment.file.name).read_bytes()
        assert len(on_disk) == attachment.size and on_disk.startswith(b"%PDF-")
        assert attachment.original_name == f"attachment-{attachment.id}.pdf"
    customer = get_user_model().objects.get(
        profile__organization__tickets__isnull=False, email__contains="customer-", pk=owners[max(owners)]
    )
    assert customer.username == f"customer-{customer.pk}" and not customer.has_usable_password()
    assert not Token.objects.exists() and not LogEntry.objects.exists() and not Session.objects.exists()
    assert "Refreshed staging from " in output and "customer accounts: " in output
    run = json.loads(
        sorted(Path(settings.UPDATER_STATE_DIR, "updates").glob("*-refresh_from_backup.json"))[-1].read_text()
    )
    assert run["status"] == "succeeded" and any(
        "ticket list" in line for line in run["facts"]["smoke_checks"]
    )
    assert logs_in(AGENT["username"], AGENT_PASSWORD)  # agents are kept


def test_agents_are_anonymized_too_when_asked_and_cannot_log_in(production):
    refresh(str(production.path), "--anonymize", "--agents", "anonymize")
    assert AGENT["username"] not in every_text_value()
    assert not logs_in(AGENT["username"], AGENT_PASSWORD)


def test_it_refuses_prod_a_non_prod_set_and_a_prod_set_without_anonymizing(production, settings, tmp_path):
    before = counts()
    settings.ENVIRONMENT = "prod"
    with pytest.raises(CommandError, match="never runs in prod") as refused:
        refresh(str(production.path), "--anonymize")
    assert refused.value.returncode == 2
    settings.ENVIRONMENT = "staging"
    with pytest.raises(CommandError, match="pass --anonymize"):
        refresh(str(production.path))
    staging_set = backups.create_backup(reason="staging's own")
    with pytest.raises(CommandError, match="taken in staging, not prod; pass --allow-non-prod-source"):
        refresh(str(staging_set.path), "--anonymize")
    assert counts() == before
    assert CUSTOMER_EMAIL in every_text_value()  # nothing was touched


def test_a_corrupt_set_is_refused_before_anything_changes(production):
    flip_byte(production.path)
    with pytest.raises(CommandError, match="refused, nothing was changed") as refused:
        refresh(str(production.path), "--anonymize")
    assert refused.value.returncode == 2
    assert CUSTOMER_EMAIL in every_text_value()


def test_a_refresh_whose_smoke_checks_fail_puts_staging_back_as_it_was(production, monkeypatch, state_dir):
    from updater.release import smoke

    marker = Ticket.objects.create(
        title="staging's own ticket",
        description="-",
        created_by_id=Ticket.objects.first().created_by_id,
        organization=Organization.objects.first(),
    )

    def broken(*args, **kwargs):
        raise smoke.SmokeFailed("ticket list answered 500")

    monkeypatch.setattr(smoke, "run_smoke_checks", broken)
    with pytest.raises(CommandError, match="ticket list answered 500") as failed:
        refresh(str(production.path), "--anonymize")
    assert failed.value.returncode == 1
    connection.close()
    assert Ticket.objects.filter(pk=marker.pk, title="staging's own ticket").exists()
    journal = json.loads(sorted((state_dir.updates).glob("*-refresh_from_backup.json"))[-1].read_text())
    assert journal["status"] == "rolled back"


def test_placeholders_keep_the_size_and_are_recognizable_by_type():
    assert (
        placeholder("image/png", 5000)[:8] == b"\x89PNG\r\n\x1a\n"
        and len(placeholder("image/png", 5000)) == 5000
    )
    assert placeholder("text/plain", 7) == b"anonymi"
    assert placeholder("application/pdf", 3) == b"%PD"
    assert placeholder("application/zip", 0) == b""


def test_a_refresh_killed_before_anonymizing_is_undone_by_recover_and_no_copy_is_left(production, tmp_path):
    """Killed (a power loss) with production's rows restored and not yet anonymized: maintenance mode
    stays on, and `rollback --recover` puts staging's own database back."""
    marker = Ticket.objects.create(
        title="staging's own ticket",
        description="-",
        created_by_id=Ticket.objects.first().created_by_id,
        organization=Organization.objects.first(),
    )
    killed = manage_py(
        tmp_path,
        "refresh_from_backup",
        str(production.path),
        "--anonymize",
        failpoints="anonymize:before=kill",
    )
    assert killed.returncode == -9
    assert maintenance.is_on()
    assert not Ticket.objects.filter(pk=marker.pk).exists()  # production's rows, behind maintenance
    recovered = manage_py(tmp_path, "rollback", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    assert Ticket.objects.filter(pk=marker.pk, title="staging's own ticket").exists()
    assert not maintenance.is_on()


@pytest.mark.skipif(
    shutil.which("restic") is None, reason="restic is installed by scripts/bootstrap.sh --test"
)
def test_a_set_from_the_offsite_repository_refreshes_staging_with_no_local_backup_left(
    production, settings, tmp_path
):
    password = tmp_path / "restic-password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    settings.BACKUP_OFFSITE_REPOSITORY, settings.BACKUP_OFFSITE_PASSWORD_FILE = (
        str(tmp_path / "repo"),
        str(password),
    )
    settings.ENVIRONMENT = "prod"
    call_command("backup_database", stdout=StringIO())  # verified, then shipped
    settings.ENVIRONMENT = "staging"
    shutil.rmtree(backups.default_directory())

    output = refresh("--from-offsite", "latest", "--anonymize")

    assert "Refreshed staging from " in output and "(prod, " in output
    assert CUSTOMER_EMAIL not in every_text_value()
    assert Ticket.objects.filter(title__startswith="Ticket ").count() == Ticket.objects.count()


@pytest.mark.slow
def test_a_100k_ticket_production_copy_keeps_no_person_and_every_relation(state_dir, settings):
    """The issue's scale: seed_demo's 100,000 tickets (with their comments and audit log) and their
    customers, organizations and agents; every customer's and organization's name, username and
    e-mail address is looked for in every text column of every table and in every media file."""
    demo_data.seed(tickets=100_000, orgs=20)
    users = get_user_model().objects
    kept_agents = set(users.filter(profile__role__in=["agent", "admin"]).values_list("username", flat=True))
    customers = users.exclude(username__in=kept_agents)
    personal = {
        value
        for row in customers.values_list("username", "email", "first_name", "last_name")
        for value in row
    }
    personal |= {value for row in Organization.objects.values_list("name", "email") for value in row}
    personal -= {""} | {
        value
        for row in users.filter(username__in=kept_agents).values_list("first_name", "last_name")
        for value in row
    }
    assert len(personal) > 100
    relations = {
        "tickets": sorted(
            Ticket.objects.values_list("id", "created_by_id", "assigned_to_id", "organization_id")
        ),
        "comments": sorted(TicketComment.objects.values_list("id", "ticket_id", "author_id", "is_internal")),
    }
    before = counts()
    settings.ENVIRONMENT = "prod"
    taken = backups.create_backup(reason="nightly")
    settings.ENVIRONMENT = "staging"

    refresh(str(taken.path), "--anonymize")

    database = every_text_value()
    leaked = sorted(value for value in personal if value in database)
    assert leaked == []
    assert counts() == before
    assert relations["tickets"] == sorted(
        Ticket.objects.values_list("id", "created_by_id", "assigned_to_id", "organization_id")
    )
    assert relations["comments"] == sorted(
        TicketComment.objects.values_list("id", "ticket_id", "author_id", "is_internal")
    )
    assert set(users.filter(username__in=kept_agents).values_list("username", flat=True)) == kept_agents
