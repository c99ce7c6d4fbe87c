"""Mail about tickets, end to end: ticket writes through crm.tickets (what the pages and the API call)
put mails in the outbox; send_notifications sends them to a real SMTP server on the loopback (aiosmtpd)
— or finds it gone, and tries again later."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.management import call_command
from django.utils import timezone

from crm import outbox, reply_tokens, tickets
from crm.models import Organization, OutboundMail, Ticket, UserProfile
from monitoring import checks, metrics
from tests.support.mailbox import Mailbox
from tests.support.processes import free_port


@pytest.fixture
def smtp(settings):
    with Mailbox() as box:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", box.port, 5
        settings.DEFAULT_FROM_EMAIL = "helpdesk@support.example"
        settings.SITE_URL = "https://helpdesk.example"
        yield box


@pytest.fixture
def people(db):
    """Acme's customers alice (who reads Polish), carol (who watches Acme's tickets) and erin (who
    opted out) and frank; agents agnes and dave; admin adam."""
    acme = Organization.objects.create(name="Acme", email="office@acme.example")
    return {
        "acme": acme,
        "alice": _person("alice", "customer", acme, language="pl"),
        "carol": _person("carol", "customer", acme, watches_organization=True),
        "erin": _person("erin", "customer", acme, email_notifications=False),
        "frank": _person("frank", "customer", acme),  # hears about his own tickets only
        "agnes": _person("agnes", "agent", None),
        "dave": _person("dave", "agent", None),
        "adam": _person("adam", "admin", None, is_superuser=True),
    }


def _person(username: str, role: str, organization, is_superuser: bool = False, **profile):
    user = get_user_model().objects.create_user(
        username,
        f"{username}@mail.example",
        f"pw-{username}",
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    UserProfile.objects.create(user=user, role=role, organization=organization, **profile)
    return user


def send() -> outbox.Drained:
    return outbox.drain()


def by_recipient(box: Mailbox) -> dict[str, list]:
    found: dict[str, list] = {}
    for mail in box.received:
        for address in mail.recipients:
            found.setdefault(address.split("@")[0], []).append(mail)
    return found


def test_a_new_ticket_mails_the_requester_in_their_language_and_every_agent_while_unassigned(people, smtp):
    ticket = tickets.open_ticket(author=people["alice"], title="Drukarka", description="Nie drukuje")
    assert smtp.received == []  # nothing leaves before the outbox is sent
    assert send().sent == len(OutboundMail.objects.all())

    got = by_recipient(smtp)
    assert set(got) == {"alice", "carol", "agnes", "dave", "adam"}  # erin opted out
    (to_alice,) = got["alice"]
    assert to_alice.subject == f"[#{ticket.pk}] Drukarka — Nowe zgłoszenie"
    assert f"Zgłoszenie #{ticket.pk} zostało utworzone przez: alice." in to_alice.body
    assert f"https://helpdesk.example/tickets/{ticket.pk}/" in to_alice.body
    (to_agnes,) = got["agnes"]
    assert to_agnes.subject == f"[#{ticket.pk}] Drukarka — New ticket"
    assert to_agnes.message["Auto-Submitted"] == "auto-generated"
    assert to_agnes.message["References"] == f"<ticket-{ticket.pk}@support.example>"
    token = to_agnes.message["Reply-To"].split("+", 1)[1].split("@")[0]
    assert reply_tokens.read(token) == (ticket.pk, people["agnes"].pk)


def test_a_public_comment_reaches_the_customers_and_the_assignee_but_not_its_author(people, smtp):
    ticket = tickets.open_ticket(author=people["alice"], title="VPN", description="-")
    tickets.change_ticket(ticket, people["agnes"], {"assigned_to": people["agnes"]})
    OutboundMail.objects.all().delete()
    tickets.add_comment(ticket, people["agnes"], "Proszę zrestartować router")
    send()
    got = by_recipient(smtp)
    assert set(got) == {"alice", "carol"}  # agnes wrote it; dave is not the assignee
    assert "Proszę zrestartować router" in got["alice"][0].body
    assert got["alice"][0].subject.endswith("— Nowy komentarz")


def test_an_internal_note_mails_no_customer(people, smtp):
    ticket = tickets.open_ticket(author=people["alice"], title="VPN", description="-")
    tickets.change_ticket(ticket, people["agnes"], {"assigned_to": people["dave"]})
    OutboundMail.objects.all().delete()
    tickets.add_comment(
        ticket, people["agnes"], "the customer's password is on a sticky note", is_internal=True
    )
    send()
    got = by_recipient(smtp)
    assert set(got) == {"dave"}
    assert got["dave"][0].subject.endswith("— New internal note")


def test_assignment_and_resolution_each_send_their_own_mail(people, smtp):
    ticket = tickets.open_ticket(author=people["alice"], title="VPN", description="-")
    OutboundMail.objects.all().delete()
    tickets.change_ticket(ticket, people["agnes"], {"assigned_to": people["dave"]})
    send()
    got = by_recipient(smtp)
    assert set(got) == {"alice", "carol", "dave"}
    assert got["dave"][0].subject.endswith("— Assigned to dave")
    smtp.received.clear()
    tickets.change_ticket(
        ticket, people["dave"], {"status": "resolved", "resolution_notes": "router restarted"}
    )
    send()
    got = by_recipient(smtp)
    assert set(got) == {"alice", "carol"}  # dave resolved it himself
    assert got["alice"][0].subject == f"[#{ticket.pk}] VPN — Rozwiązane"
    assert "router restarted" in got["alice"][0].body


def test_a_change_of_title_or_priority_mails_nobody(people, smtp):
    ticket = tickets.open_ticket(author=people["alice"], title="VPN", description="-")
    OutboundMail.objects.all().delete()
    tickets.change_ticket(ticket, people["agnes"], {"priority": "high", "title": "VPN down"})
    assert not OutboundMail.objects.exists()


def test_an_opted_out_user_gets_nothing_whatever_happens(people, smtp):
    erin = people["erin"]
    ticket = tickets.open_ticket(author=erin, title="Mine", description="-")
    tickets.add_comment(ticket, people["agnes"], "answer")
    tickets.change_ticket(ticket, people["agnes"], {"status": "resolved", "resolution_notes": "done"})
    send()
    assert "erin" not in by_recipient(smtp)
    assert by_recipient(smtp)["carol"]  # the watcher still hears about it


def test_with_smtp_down_every_write_succeeds_and_each_mail_goes_once_when_it_is_back(people, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    opened = [tickets.open_ticket(author=people["alice"], title=f"T{i}", description="-") for i in range(3)]
    tickets.add_comment(opened[0], people["agnes"], "on it")
    assert Ticket.objects.filter(pk__in=[t.pk for t in opened]).count() == 3
    queued = OutboundMail.objects.count()
    down = send()
    assert (down.sent, down.deferred) == (0, queued)
    assert outbox.pending().count() == queued
    with Mailbox() as box:
        settings.EMAIL_PORT = box.port
        assert send().sent == 0  # each waits its minute first
        later = timezone.now() + timedelta(minutes=2)
        assert outbox.drain(now=later).sent == queued
        assert outbox.drain(now=later + timedelta(hours=2)).sent == 0
        assert len(box.received) == queued
        assert len({mail.message["Message-ID"] for mail in box.received}) == queued


def test_a_mail_is_given_up_after_the_last_attempt_and_the_waits_double(people, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    settings.NOTIFY_OUTBOX_MAX_ATTEMPTS = 4
    ticket = tickets.open_ticket(
        author=people["agnes"], title="T", description="-", organization=people["acme"]
    )
    OutboundMail.objects.exclude(recipient="carol@mail.example").delete()  # the watcher's
    now = timezone.now()
    waits = []
    for _ in range(4):
        outbox.drain(now=now)
        mail = OutboundMail.objects.get()
        if mail.dead_at is None:
            waits.append((mail.next_attempt_at - now).total_seconds())
            now = mail.next_attempt_at
    assert waits == [60, 120, 240]
    assert mail.dead_at is not None and mail.attempts == 4 and "could not be reached" in mail.last_error
    assert ticket.pk == mail.ticket_id


def test_a_forged_or_expired_reply_token_is_refused(settings):
    token = reply_tokens.make(12, 34)
    assert reply_tokens.read(token) == (12, 34)
    for forged in (token.replace("12x34", "13x34"), token[:-1] + ("a" if token[-1] != "a" else "b")):
        with pytest.raises(signing.BadSignature):
            reply_tokens.read(forged)
    settings.REPLY_TOKEN_MAX_AGE_DAYS = 0
    with pytest.raises(signing.SignatureExpired):
        reply_tokens.read(token)


def test_a_reply_token_is_read_in_any_case_and_fits_an_address_local_part():
    token = reply_tokens.make(1_234_567, 7_654_321)
    assert re.fullmatch(r"[a-z0-9.]+", token), token  # nothing a server could change the case of
    assert len(f"support+{token}") <= 64  # RFC 5321's limit for the part before the @
    assert reply_tokens.read(token.upper()) == reply_tokens.read(token) == (1_234_567, 7_654_321)


def test_a_reply_token_expires_exactly_after_its_days(settings, monkeypatch):
    now, days = 1_800_000_000, settings.REPLY_TOKEN_MAX_AGE_DAYS
    monkeypatch.setattr(reply_tokens.time, "time", lambda: now)
    assert reply_tokens.read(reply_tokens.make(12, 34, now=now - days * 86400)) == (12, 34)
    with pytest.raises(signing.SignatureExpired):
        reply_tokens.read(reply_tokens.make(12, 34, now=now - days * 86400 - 1))


def test_a_reply_token_outlives_a_secret_key_rotation_while_the_old_key_is_a_fallback(settings):
    token = reply_tokens.make(12, 34)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "n" * 60, [settings.SECRET_KEY]
    assert reply_tokens.read(token) == (12, 34)
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(signing.BadSignature):
        reply_tokens.read(token)


def test_a_reply_token_of_the_previous_release_is_read_until_it_expires(settings):
    """Notifications sent before the update carry Django TimestampSigner tokens; replies keep coming."""
    previous = signing.TimestampSigner(salt="crm.notifications.reply", sep=".").sign("12x34")
    assert reply_tokens.read(previous) == (12, 34)
    settings.REPLY_TOKEN_MAX_AGE_DAYS = 0
    with pytest.raises(signing.SignatureExpired):
        reply_tokens.read(previous)


def test_the_outbox_check_warns_at_its_threshold_and_counts_dead_letters(people, settings):
    settings.OUTBOX_WARN_MINUTES, settings.OUTBOX_CRIT_MINUTES = 15, 60
    tickets.open_ticket(author=people["alice"], title="T", description="-")
    assert checks.outbox().status == checks.PASS
    OutboundMail.objects.update(created_at=timezone.now() - timedelta(minutes=15))
    checks.clear_cache()
    assert checks.outbox().status == checks.WARN  # exactly at the threshold
    OutboundMail.objects.update(created_at=timezone.now() - timedelta(minutes=61))
    checks.clear_cache()
    assert checks.outbox().status == checks.FAIL
    OutboundMail.objects.update(created_at=timezone.now(), dead_at=timezone.now())
    checks.clear_cache()
    dead = checks.outbox()
    assert dead.status == checks.WARN and "dead letters" in dead.detail
    exposition = metrics.exposition().decode()
    assert (
        "helpdesk_outbox_dead_letters " in exposition and "helpdesk_outbox_oldest_age_seconds" in exposition
    )


def test_send_notifications_is_quiet_when_all_went_and_says_what_waits(people, smtp):
    tickets.open_ticket(author=people["alice"], title="T", description="-")
    out = StringIO()
    call_command("send_notifications", stdout=out)
    assert out.getvalue() == ""
    assert outbox.pending().count() == 0


def test_the_profile_page_turns_mail_off_and_picks_the_language(people, client):
    client.force_login(people["alice"])
    page = client.get("/profile/")
    assert page.status_code == 200 and "watches_organization" in page.content.decode()
    saved = client.post("/profile/", {"language": "en", "watches_organization": "on"})
    assert saved.status_code == 302
    profile = UserProfile.objects.get(user=people["alice"])
    assert (profile.language, profile.email_notifications, profile.watches_organization) == (
        "en",
        False,
        True,
    )
    client.force_login(people["agnes"])
    assert "watches_organization" not in client.get("/profile/").content.decode()  # agents do not watch


@pytest.mark.django_db(transaction=True)
def test_in_development_a_thread_sends_right_after_the_write_commits(people, smtp, settings):
    settings.NOTIFY_OUTBOX_THREAD = True
    started = []
    original = outbox.drain_in_background
    outbox.drain_in_background = lambda: started.append(original()) or started[-1]
    try:
        ticket = tickets.open_ticket(author=people["alice"], title="Now", description="-")
    finally:
        outbox.drain_in_background = original
    (thread,) = started  # one thread per committed write, started after the commit
    thread.join(timeout=30)
    assert {mail.subject for mail in smtp.received} >= {f"[#{ticket.pk}] Now — New ticket"}
    assert outbox.pending().count() == 0
