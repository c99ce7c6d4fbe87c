"""Where receive_mail finds messages besides stdin: a Maildir, an IMAP mailbox or a POP3 mailbox. Each
source hands every message to crm/intake.py once and returns the outcomes; none prints.

- Maildir: every file in new/ is handled and moved to cur/ marked seen, whatever its outcome.
- IMAP: the unseen messages of INTAKE_IMAP_FOLDER, each marked seen once handled (the mailbox keeps
  them, as a mail client would).
- POP3 has no "seen": each handled message is deleted, as fetchmail does by default. POP3 commits
  deletions only at QUIT, so a poll that fails half-way deletes nothing; the messages it had already
  handled come again next time and the Message-ID record (InboundMail) makes nothing twice.

Messages over INTAKE_MAX_BYTES are refused from the size the server lists, without downloading them.
No MTA bounces what a mailbox source refuses, so a known sender is told by mail why
(notifications.refusal_notice); stdin's refusals are bounced by Postfix from the exit code.
Passwords come from 0600 files named in settings, never from the environment or argv.
"""

import imaplib
import poplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from crm import intake


class MailboxError(Exception):
    """The mailbox could not be read: not configured, unreachable, or the login was refused."""


@dataclass(frozen=True)
class Server:
    protocol: str  # "IMAP" or "POP3", as the messages name it
    host: str
    port: int
    ssl: bool
    user: str
    password_file: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def password(self) -> str:
        try:
            return Path(self.password_file).read_text().strip()
        except OSError as error:
            raise MailboxError(
                f"the {self.protocol} password file {self.password_file} cannot be read: {error.strerror}"
            ) from error


def imap_server() -> Server:
    return _configured(
        "IMAP",
        settings.INTAKE_IMAP_HOST,
        settings.INTAKE_IMAP_PORT,
        settings.INTAKE_IMAP_SSL,
        settings.INTAKE_IMAP_USER,
        settings.INTAKE_IMAP_PASSWORD_FILE,
    )


def pop3_server() -> Server:
    return _configured(
        "POP3",
        settings.INTAKE_POP3_HOST,
        settings.INTAKE_POP3_PORT,
        settings.INTAKE_POP3_SSL,
        settings.INTAKE_POP3_USER,
        settings.INTAKE_POP3_PASSWORD_FILE,
    )


def _configured(protocol: str, host: str, port: int, use_ssl: bool, user: str, password_file: str) -> Server:
    if not host or not user or not password_file:
        prefix = f"INTAKE_{protocol}"
        raise MailboxError(
            f"--{protocol.lower()} needs {prefix}_HOST, {prefix}_USER and {prefix}_PASSWORD_FILE"
        )
    return Server(protocol, host, port, use_ssl, user, password_file)


def from_maildir(folder: Path) -> list[intake.Outcome]:
    new, cur = folder / "new", folder / "cur"
    if not new.is_dir() or not cur.is_dir():
        raise MailboxError(f"{folder} is not a Maildir (it needs new/ and cur/)")
    outcomes = []
    for path in sorted(new.iterdir()):
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            outcomes.append(intake.receive(handle.read(settings.INTAKE_MAX_BYTES + 1), answer_refusal=True))
        path.rename(cur / f"{path.name}:2,S")  # seen: handled, whatever the outcome
    return outcomes


def from_imap(server: Server) -> list[intake.Outcome]:
    password = server.password()
    try:
        if server.ssl:
            mailbox = imaplib.IMAP4_SSL(
                server.host,
                server.port,
                ssl_context=ssl.create_default_context(),
                timeout=settings.INTAKE_TIMEOUT,
            )
        else:
            mailbox = imaplib.IMAP4(server.host, server.port, timeout=settings.INTAKE_TIMEOUT)
        mailbox.login(server.user, password)
    except (OSError, imaplib.IMAP4.error) as error:
        raise MailboxError(f"the IMAP server {server.address} could not be used: {error}") from error
    outcomes = []
    try:
        mailbox.select(settings.INTAKE_IMAP_FOLDER)
        _status, found = mailbox.uid("SEARCH", None, "UNSEEN")
        for uid in found[0].split():
            _status, answer = mailbox.uid("FETCH", uid, "(RFC822.SIZE)")
            outcomes.append(_receive_listed(_imap_size(answer), lambda uid=uid: _imap_body(mailbox, uid)))
            mailbox.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    finally:
        mailbox.logout()
    return outcomes


def from_pop3(server: Server) -> list[intake.Outcome]:
    password = server.password()
    try:
        if server.ssl:
            mailbox = poplib.POP3_SSL(
                server.host,
                server.port,
                context=ssl.create_default_context(),
                timeout=settings.INTAKE_TIMEOUT,
            )
        else:
            mailbox = poplib.POP3(server.host, server.port, timeout=settings.INTAKE_TIMEOUT)
        mailbox.user(server.user)
        mailbox.pass_(password)
    except (OSError, poplib.error_proto) as error:
        raise MailboxError(f"the POP3 server {server.address} could not be used: {error}") from error
    outcomes = []
    try:
        _response, listing, _octets = mailbox.list()
        for entry in listing:
            number, size = (int(field) for field in entry.split()[:2])
            outcomes.append(_receive_listed(size, lambda number=number: _pop3_body(mailbox, number)))
            mailbox.dele(number)
        mailbox.quit()  # the deletions take effect here, and only here
    except (OSError, poplib.error_proto) as error:
        mailbox.close()  # without QUIT: the server deletes nothing
        raise MailboxError(f"the POP3 server {server.address} failed during the poll: {error}") from error
    except BaseException:
        mailbox.close()
        raise
    return outcomes


def _receive_listed(size: int, fetch: Callable[[], bytes]) -> intake.Outcome:
    """A message the server lists at `size` bytes: refused unread when over INTAKE_MAX_BYTES."""
    if size > settings.INTAKE_MAX_BYTES:
        return intake.too_large(size)
    return intake.receive(fetch(), answer_refusal=True)


def _imap_body(mailbox: imaplib.IMAP4, uid: bytes) -> bytes:
    _status, data = mailbox.uid("FETCH", uid, "(BODY.PEEK[])")
    return data[0][1]


def _pop3_body(mailbox: poplib.POP3, number: int) -> bytes:
    _response, lines, _octets = mailbox.retr(number)
    return b"\r\n".join(lines) + b"\r\n"


def _imap_size(answer: list) -> int:
    text = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
    digits = text.rsplit("RFC822.SIZE", 1)[-1].strip(" )")
    return int(digits) if digits.isdigit() else 0
