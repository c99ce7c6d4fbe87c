"""Tickets and replies by e-mail (receive_mail): messages built as mail clients send them, handed over
on stdin (as Postfix's pipe does) or left in a real Maildir."""

import imaplib
import io
import poplib
import sys
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone

from crm import intake, reply_tokens
from crm.models import InboundMail, Organization, OutboundMail, Ticket, TicketAttachment, TicketComment
from tests.support.dovecot import Dovecot

pytestmark = pytest.mark.django_db


def mail(
    sender: str = "alice@example.com",
    subject: str = "Printer jammed",
    body: str = "Paper everywhere.",
    to: str = "support@helpdesk.example",
    attachments: tuple[tuple[str, bytes], ...] = (),
    **headers: str,
) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = make_msgid(domain="client.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    for name, content in attachments:
        message.add_attachment(content, maintype="application", subtype="pdf", filename=name)
    return message.as_bytes()


def receive_on_stdin(raw: bytes, monkeypatch) -> tuple[int, str]:
    """receive_mail as Postfix runs it: the message on stdin; (exit code, what it printed)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = io.StringIO()
    try:
        call_command("receive_mail", stdout=out)
    except SystemExit as exit_code:
        return int(exit_code.code), out.getvalue()
    return 0, out.getvalue()


def test_a_known_customer_opens_a_ticket_with_its_attachment(helpdesk, monkeypatch):
    raw = mail(attachments=(("faktura.pdf", b"%PDF-1.4 " + b"x" * 5000),))
    code, output = receive_on_stdin(raw, monkeypatch)
    assert code == 0, output
    ticket = Ticket.objects.get(title="Printer jammed", created_by=helpdesk.alice)
    assert ticket.organization == helpdesk.acme and ticket.description == "Paper everywhere."
    (attachment,) = TicketAttachment.objects.filter(ticket=ticket)
    assert (attachment.original_name, attachment.size) == ("faktura.pdf", 5009)
    assert f"Created: ticket #{ticket.pk} opened by alice" in output


def test_the_same_message_delivered_twice_creates_one_ticket(helpdesk):
    raw = mail()
    assert intake.receive(raw).kind == intake.CREATED
    again = intake.receive(raw)
    assert again.kind == intake.IGNORED and "received before" in again.detail
    assert Ticket.objects.filter(title="Printer jammed").count() == 1


def _reply_to(
    ticket: Ticket, person, body: str = "It works again, thanks.\n\nOn Mon, agnes wrote:\n> restart it"
) -> bytes:
    token = reply_tokens.make(ticket.pk, person.pk)
    return mail(
        sender=person.email,
        subject=f"Re: [#{ticket.pk}] {ticket.title}",
        body=body,
        to=f"support+{token}@helpdesk.example",
    )


def test_a_reply_with_a_valid_token_becomes_a_comment_without_the_quote(helpdesk):
    outcome = intake.receive(_reply_to(helpdesk.acme_ticket, helpdesk.alice))
    assert outcome.kind == intake.COMMENTED, outcome.detail
    (comment,) = TicketComment.objects.filter(ticket=helpdesk.acme_ticket)
    assert (comment.author, comment.body, comment.is_internal) == (
        helpdesk.alice,
        "It works again, thanks.",
        False,
    )


def _html_only(raw: bytes, html: str) -> bytes:
    """The same message as a client that sends HTML alone (Gmail's or Outlook's, without a text part)."""
    message = message_from_bytes(raw, policy=policy.default)
    message.set_content(html, subtype="html")
    return message.as_bytes()


GMAIL_REPLY = (
    '<div dir="ltr">It works again,&nbsp;thanks.<br><br>Restarted &amp; fine.</div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, agnes wrote:<br></div>'
    '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex">restart it</blockquote></div>'
)
OUTLOOK_TICKET = (
    "<html><head><style>p.MsoNormal {margin:0cm; font-family:Calibri}</style></head><body>"
    '<p class="MsoNormal">The printer on floor 2 is jammed.</p>'
    '<p class="MsoNormal">Model: HP&nbsp;4250 &lt;old&gt;</p>'
    '<div id="divRplyFwdMsg"><b>From:</b> IT &lt;it@acme.example&gt;</div><div>older thread</div>'
    "</body></html>"
)


def test_a_reply_whose_address_a_server_changed_to_capitals_still_becomes_a_comment(helpdesk):
    token = reply_tokens.make(helpdesk.acme_ticket.pk, helpdesk.alice.pk)
    raw = mail(
        sender=helpdesk.alice.email,
        subject=f"Re: [#{helpdesk.acme_ticket.pk}]",
        body="Fixed.",
        to=f"SUPPORT+{token.upper()}@HELPDESK.EXAMPLE",
    )
    outcome = intake.receive(raw)
    assert outcome.kind == intake.COMMENTED, outcome.detail
    assert TicketComment.objects.get(ticket=helpdesk.acme_ticket).body == "Fixed."


def test_an_html_only_reply_becomes_the_text_its_writer_typed_without_the_quote(helpdesk):
    raw = _html_only(_reply_to(helpdesk.acme_ticket, helpdesk.alice), GMAIL_REPLY)

    assert intake.receive(raw).kind == intake.COMMENTED
    (comment,) = TicketComment.objects.filter(ticket=helpdesk.acme_ticket)
    assert comment.body == "It works again, thanks.\n\nRestarted & fine."


def test_an_html_only_ticket_keeps_its_paragraphs_and_drops_styles_and_the_forwarded_thread(helpdesk):
    raw = _html_only(mail(subject="Printer"), OUTLOOK_TICKET)

    assert intake.receive(raw).kind == intake.CREATED
    ticket = Ticket.objects.get(title="Printer")
    assert ticket.description == "The printer on floor 2 is jammed.\n\nModel: HP 4250 <old>"


def test_a_forged_expired_or_borrowed_token_does_not_thread(helpdesk, settings, monkeypatch):
    ticket, alice, bob = helpdesk.acme_ticket, helpdesk.alice, helpdesk.bob
    token = reply_tokens.make(ticket.pk, alice.pk)
    forged = mail(
        sender=alice.email, subject=f"Re: [#{ticket.pk}]", to=f"support+{token[:-2]}xx@helpdesk.example"
    )
    assert "could not be matched" in intake.receive(forged).detail
    borrowed = mail(sender=bob.email, subject=f"Re: [#{ticket.pk}]", to=f"support+{token}@helpdesk.example")
    assert "belongs to someone else" in intake.receive(borrowed).detail  # bob may not see Acme's ticket
    subject_only = mail(sender=alice.email, subject=f"Re: [#{ticket.pk}] Acme printer jammed")
    code, output = receive_on_stdin(subject_only, monkeypatch)
    assert code == 65 and "Refused: the reply could not be matched" in output  # bounced with a reason
    assert not OutboundMail.objects.filter(event="refused").exists()  # Postfix bounces it, not us
    settings.REPLY_TOKEN_MAX_AGE_DAYS = 0
    assert "expired" in intake.receive(_reply_to(ticket, alice)).detail
    assert not TicketComment.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"X_Autoreply": "yes"},
        {"X_Helpdesk_Ticket": "12"},  # a notification of ours, come back
    ],
    ids=["auto-submitted", "precedence", "x-autoreply", "our own"],
)
def test_auto_replies_and_loops_are_ignored_and_never_answered(helpdesk, headers):
    outcome = intake.receive(mail(subject="Out of office", **headers))
    assert outcome.kind == intake.IGNORED
    assert not Ticket.objects.filter(title="Out of office").exists()
    assert not OutboundMail.objects.exists()


def test_a_30_mb_message_is_refused_with_a_bounce_text_not_a_crash(helpdesk, monkeypatch):
    big = mail(attachments=(("scan.pdf", b"0" * (30 * 2**20)),))
    code, output = receive_on_stdin(big, monkeypatch)
    assert code == 65
    assert "Refused: the message is larger than 25 MB, the most the helpdesk takes" in output
    assert not Ticket.objects.filter(title="Printer jammed").exists()


def test_an_attachment_over_the_upload_limit_refuses_the_whole_message(helpdesk, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    outcome = intake.receive(mail(attachments=(("big.pdf", b"1" * 2000),)))
    assert outcome.kind == intake.REFUSED and "big.pdf is too large" in outcome.detail
    assert not Ticket.objects.filter(title="Printer jammed").exists()


def test_unknown_senders_are_refused_or_join_the_configured_organization(helpdesk, settings):
    assert "is not known to the helpdesk" in intake.receive(mail(sender="stranger@else.example")).detail
    Organization.objects.create(name="Walk-ins")
    settings.INTAKE_UNKNOWN_SENDER_ORGANIZATION = "Walk-ins"
    outcome = intake.receive(mail(sender="Stranger <stranger@else.example>"))
    assert outcome.kind == intake.CREATED
    ticket = Ticket.objects.get(pk=outcome.ticket_id)
    assert ticket.organization.name == "Walk-ins" and ticket.created_by.email == "stranger@else.example"
    assert not ticket.created_by.has_usable_password()


def test_a_maildir_is_read_once_and_each_message_moves_to_cur(helpdesk, tmp_path):
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(mail(subject="First"))
    (maildir / "new" / "2.host").write_bytes(_reply_to(helpdesk.acme_ticket, helpdesk.alice))
    out = io.StringIO()
    call_command("receive_mail", "--maildir", str(maildir), stdout=out)
    assert "2 messages: 1 tickets, 1 comments." in out.getvalue()
    assert sorted(path.name for path in (maildir / "cur").iterdir()) == ["1.host:2,S", "2.host:2,S"]
    call_command("receive_mail", "--maildir", str(maildir), stdout=io.StringIO())  # nothing new
    assert Ticket.objects.filter(title="First").count() == 1
    assert InboundMail.objects.count() == 2


def _maildir_with(tmp_path, *messages: bytes):
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for raw in messages:
        (maildir / "new" / f"{make_msgid(domain='host').strip('<>')}").write_bytes(raw)
    return maildir


def refusal_notices(recipient: str) -> list[OutboundMail]:
    return list(OutboundMail.objects.filter(event="refused", recipient=recipient))


def test_a_reply_a_mailbox_refused_is_answered_in_the_senders_language(helpdesk, settings, tmp_path):
    """No MTA bounces what a mailbox poll refuses: the sender hears why, or the reply is lost unseen."""
    profile = helpdesk.alice.profile
    profile.language = "pl"
    profile.save()
    settings.REPLY_TOKEN_MAX_AGE_DAYS = 0  # the reply address has expired
    reply = _reply_to(helpdesk.acme_ticket, helpdesk.alice)
    call_command("receive_mail", "--maildir", str(_maildir_with(tmp_path, reply)), stdout=io.StringIO())

    (notice,) = refusal_notices(helpdesk.alice.email)
    ticket = helpdesk.acme_ticket
    assert notice.subject == f"Nie przyjęto: Re: [#{ticket.pk}] {ticket.title}"
    assert "adres odpowiedzi wygasł; odpowiedz na nowszą wiadomość o zgłoszeniu" in notice.body
    original = message_from_bytes(reply, policy=policy.default)
    assert notice.headers["In-Reply-To"] == notice.headers["References"] == original["Message-ID"]
    assert notice.headers["Auto-Submitted"] == "auto-replied"  # autoresponders stay quiet (RFC 3834)
    assert not TicketComment.objects.exists()
    # The notice, come back (an autoresponder, or the sender answering it), is never answered again.
    returned = mail(
        sender=helpdesk.alice.email, subject=f"Re: {notice.subject}", In_Reply_To=notice.headers["Message-ID"]
    )
    assert intake.receive(returned, answer_refusal=True).kind == intake.IGNORED
    assert len(refusal_notices(helpdesk.alice.email)) == 1


def test_refusals_are_answered_to_known_senders_only_and_at_most_five_a_day(helpdesk, tmp_path):
    unmatched = [mail(subject=f"Re: [#{helpdesk.acme_ticket.pk}] try {n}") for n in range(6)]  # no token
    stranger = mail(sender="forged@spam.example", subject="Re: [#1] invoice")
    call_command(
        "receive_mail", "--maildir", str(_maildir_with(tmp_path, *unmatched, stranger)), stdout=io.StringIO()
    )

    notices = refusal_notices(helpdesk.alice.email)
    assert len(notices) == 5  # the sixth refusal is not answered
    assert "could not be matched to a ticket" in notices[0].body  # alice's language: the default
    assert not OutboundMail.objects.filter(recipient="forged@spam.example").exists()  # no backscatter
    OutboundMail.objects.filter(pk=notices[0].pk).update(
        created_at=timezone.now() - timedelta(days=1, seconds=1)
    )
    intake.receive(mail(subject=f"Re: [#{helpdesk.acme_ticket.pk}] again"), answer_refusal=True)
    assert len(refusal_notices(helpdesk.alice.email)) == 6  # one of the five is older than a day


def test_a_ticket_by_mail_is_announced_like_any_other(helpdesk):
    outcome = intake.receive(mail(subject="By mail"))
    recipients = set(
        OutboundMail.objects.filter(ticket_id=outcome.ticket_id).values_list("recipient", flat=True)
    )
    assert helpdesk.alice.email in recipients and helpdesk.agent.email in recipients


needs_dovecot = pytest.mark.skipif(
    not Dovecot.available(), reason="dovecot is installed by scripts/bootstrap.sh --test"
)
needs_pop3 = pytest.mark.skipif(
    not Dovecot.has_pop3(), reason="dovecot-pop3d is installed by scripts/bootstrap.sh --test"
)


@pytest.fixture
def dovecot():
    server = Dovecot().start()
    yield server
    server.stop()


def deliver(server: Dovecot, *messages: bytes) -> None:
    """Put messages in the mailbox's INBOX, as the MTA would have."""
    mailbox = imaplib.IMAP4("127.0.0.1", server.port)
    mailbox.login(server.user, server.password)
    for message in messages:
        mailbox.append("INBOX", None, None, message)
    mailbox.logout()


def use_mailbox(settings, server: Dovecot, tmp_path, password: str | None = None) -> None:
    """Point receive_mail --imap and --pop3 at the test's dovecot, the password in a 0600 file."""
    password_file = tmp_path / "mailbox-password"
    password_file.write_text((password or server.password) + "\n")
    password_file.chmod(0o600)
    settings.INTAKE_IMAP_HOST = settings.INTAKE_POP3_HOST = "127.0.0.1"
    settings.INTAKE_IMAP_PORT, settings.INTAKE_POP3_PORT = server.port, server.pop3_port
    settings.INTAKE_IMAP_SSL = settings.INTAKE_POP3_SSL = False
    settings.INTAKE_IMAP_USER = settings.INTAKE_POP3_USER = server.user
    settings.INTAKE_IMAP_PASSWORD_FILE = settings.INTAKE_POP3_PASSWORD_FILE = str(password_file)


def pop3_count(server: Dovecot) -> int:
    mailbox = poplib.POP3("127.0.0.1", server.pop3_port)
    mailbox.user(server.user)
    mailbox.pass_(server.password)
    count = mailbox.stat()[0]
    mailbox.quit()
    return count


@needs_dovecot
def test_an_imap_mailbox_is_polled_and_each_message_handled_once(helpdesk, settings, tmp_path, dovecot):
    deliver(
        dovecot,
        mail(subject="Sent to the mailbox"),
        _reply_to(helpdesk.acme_ticket, helpdesk.alice),
        mail(subject="Away", Auto_Submitted="auto-replied"),
    )
    use_mailbox(settings, dovecot, tmp_path)
    out = io.StringIO()
    call_command("receive_mail", "--imap", stdout=out)
    assert "3 messages: 1 tickets, 1 comments." in out.getvalue()
    assert Ticket.objects.filter(title="Sent to the mailbox", created_by=helpdesk.alice).exists()
    assert TicketComment.objects.filter(ticket=helpdesk.acme_ticket, author=helpdesk.alice).exists()
    mailbox = imaplib.IMAP4("127.0.0.1", dovecot.port)
    mailbox.login(dovecot.user, dovecot.password)
    mailbox.select("INBOX")
    assert mailbox.uid("SEARCH", None, "UNSEEN")[1] == [b""]  # every one marked seen
    assert len(mailbox.uid("SEARCH", None, "ALL")[1][0].split()) == 3  # and kept
    mailbox.logout()
    call_command("receive_mail", "--imap", stdout=io.StringIO())
    assert Ticket.objects.filter(title="Sent to the mailbox").count() == 1


@needs_pop3
def test_a_pop3_mailbox_is_polled_and_each_handled_message_deleted(helpdesk, settings, tmp_path, dovecot):
    big = mail(subject="Scans", body="x" * 4000)
    deliver(
        dovecot,
        mail(subject="Sent by POP3"),
        _reply_to(helpdesk.acme_ticket, helpdesk.alice),
        mail(subject="Away", Auto_Submitted="auto-replied"),
        big,
    )
    settings.INTAKE_MAX_BYTES = len(big) - 100  # refused from the size POP3 lists
    use_mailbox(settings, dovecot, tmp_path)
    out = io.StringIO()
    call_command("receive_mail", "--pop3", stdout=out)
    assert "4 messages: 1 tickets, 1 comments." in out.getvalue()
    assert "Refused: the message is 0.0 MB; the helpdesk takes messages up to" in out.getvalue()
    assert Ticket.objects.filter(title="Sent by POP3", created_by=helpdesk.alice).count() == 1
    assert TicketComment.objects.filter(ticket=helpdesk.acme_ticket, author=helpdesk.alice).exists()
    assert not Ticket.objects.filter(title="Scans").exists()
    assert pop3_count(dovecot) == 0
    deliver(dovecot, mail(subject="The next one"))
    out = io.StringIO()
    call_command("receive_mail", "--pop3", stdout=out)
    assert "1 messages: 1 tickets, 0 comments." in out.getvalue()
    assert Ticket.objects.filter(title="Sent by POP3").count() == 1


@needs_pop3
def test_a_pop3_poll_that_fails_half_way_deletes_nothing_and_the_next_makes_nothing_twice(
    helpdesk, settings, tmp_path, dovecot, monkeypatch
):
    deliver(dovecot, mail(subject="First"), mail(subject="Second"))
    use_mailbox(settings, dovecot, tmp_path)
    real_receive, seen = intake.receive, []

    def receive_then_fail(raw: bytes, **options) -> intake.Outcome:
        seen.append(raw)
        if len(seen) == 2:
            raise OperationalError(2006, "MySQL server has gone away")
        return real_receive(raw, **options)

    monkeypatch.setattr(intake, "receive", receive_then_fail)
    with pytest.raises(OperationalError, match="gone away"):
        call_command("receive_mail", "--pop3", stdout=io.StringIO())
    assert Ticket.objects.filter(title="First").count() == 1
    assert pop3_count(dovecot) == 2  # no QUIT, so the server deleted nothing
    monkeypatch.setattr(intake, "receive", real_receive)
    out = io.StringIO()
    call_command("receive_mail", "--pop3", stdout=out)
    assert "2 messages: 1 tickets, 0 comments." in out.getvalue()
    assert [Ticket.objects.filter(title=title).count() for title in ("First", "Second")] == [1, 1]
    assert pop3_count(dovecot) == 0


@needs_dovecot
@pytest.mark.parametrize("protocol", ["imap", pytest.param("pop3", marks=needs_pop3)])
def test_a_wrong_mailbox_password_is_a_clear_error(helpdesk, settings, tmp_path, dovecot, protocol):
    deliver(dovecot, mail(subject="Waiting"))
    use_mailbox(settings, dovecot, tmp_path, password="not the password")
    port = dovecot.port if protocol == "imap" else dovecot.pop3_port
    expected = f"the {protocol.upper()} server 127.0.0.1:{port} could not be used"
    with pytest.raises(CommandError, match=expected):
        call_command("receive_mail", f"--{protocol}", stdout=io.StringIO())
    assert not Ticket.objects.filter(title="Waiting").exists()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_polling_an_unconfigured_mailbox_names_the_settings_it_needs(helpdesk, settings, protocol):
    prefix = f"INTAKE_{protocol.upper()}"
    setattr(settings, f"{prefix}_HOST", "")
    with pytest.raises(CommandError, match=f"--{protocol} needs {prefix}_HOST, {prefix}_USER and"):
        call_command("receive_mail", f"--{protocol}", stdout=io.StringIO())
