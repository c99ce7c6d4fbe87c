import imaplib
import ssl
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crm import intake

EX_DATAERR = 65  # sysexits.h: Postfix's pipe(8) bounces the message with what was printed


class Command(BaseCommand):
    help = (
        "Tickets and replies by e-mail: one message on stdin (a Postfix pipe, procmail), every new message "
        "of a Maildir (--maildir), or the unseen messages of an IMAP mailbox (--imap)."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--maildir", type=Path, help="handle new/ of this Maildir, moving each to cur/")
        source.add_argument("--imap", action="store_true", help="poll INTAKE_IMAP_HOST (settings)")

    def handle(self, *args, **options):
        if options["maildir"]:
            return self._summary(self._maildir(options["maildir"]), options)
        if options["imap"]:
            return self._summary(self._imap(), options)
        raw = sys.stdin.buffer.read(settings.INTAKE_MAX_BYTES + 1)
        if len(raw) > settings.INTAKE_MAX_BYTES:
            sys.stdin.buffer.read()  # drain the rest, so that the MTA sees the pipe read to its end
        outcome = intake.receive(raw)
        if outcome.kind == intake.REFUSED:
            self.stdout.write(f"Refused: {outcome.detail}")
            raise SystemExit(EX_DATAERR)
        if options["verbosity"] >= 1:
            self.stdout.write(f"{outcome.kind.capitalize()}: {outcome.detail}")

    def _maildir(self, folder: Path) -> list[intake.Outcome]:
        new, cur = folder / "new", folder / "cur"
        if not new.is_dir() or not cur.is_dir():
            raise CommandError(f"{folder} is not a Maildir (it needs new/ and cur/)")
        outcomes = []
        for path in sorted(new.iterdir()):
            if not path.is_file():
                continue
            outcomes.append(intake.receive(_read_limited(path)))
            path.rename(cur / f"{path.name}:2,S")  # seen: handled, whatever the outcome
        return outcomes

    def _imap(self) -> list[intake.Outcome]:
        if not settings.INTAKE_IMAP_HOST or not settings.INTAKE_IMAP_PASSWORD_FILE:
            raise CommandError(
                "--imap needs INTAKE_IMAP_HOST, INTAKE_IMAP_USER and INTAKE_IMAP_PASSWORD_FILE"
            )
        password = Path(settings.INTAKE_IMAP_PASSWORD_FILE).read_text().strip()
        host, port, timeout = settings.INTAKE_IMAP_HOST, settings.INTAKE_IMAP_PORT, settings.INTAKE_TIMEOUT
        try:
            if settings.INTAKE_IMAP_SSL:
                mailbox = imaplib.IMAP4_SSL(
                    host, port, ssl_context=ssl.create_default_context(), timeout=timeout
                )
            else:
                mailbox = imaplib.IMAP4(host, port, timeout=timeout)
            mailbox.login(settings.INTAKE_IMAP_USER, password)
        except (OSError, imaplib.IMAP4.error) as error:
            raise CommandError(f"the IMAP server {host}:{port} could not be used: {error}") from error
        outcomes = []
        try:
            mailbox.select(settings.INTAKE_IMAP_FOLDER)
            _status, found = mailbox.uid("SEARCH", None, "UNSEEN")
            for uid in found[0].split():
                _status, size = mailbox.uid("FETCH", uid, "(RFC822.SIZE)")
                if _size_of(size) > settings.INTAKE_MAX_BYTES:
                    outcomes.append(intake.Outcome(intake.REFUSED, intake.too_large(_size_of(size))))
                else:
                    _status, data = mailbox.uid("FETCH", uid, "(BODY.PEEK[])")
                    outcomes.append(intake.receive(data[0][1]))
                mailbox.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        finally:
            mailbox.logout()
        return outcomes

    def _summary(self, outcomes: list[intake.Outcome], options) -> None:
        for outcome in outcomes:
            if outcome.kind == intake.REFUSED or options["verbosity"] >= 2:
                self.stdout.write(f"{outcome.kind.capitalize()}: {outcome.detail}")
        created = sum(outcome.kind == intake.CREATED for outcome in outcomes)
        commented = sum(outcome.kind == intake.COMMENTED for outcome in outcomes)
        if options["verbosity"] >= 1 and outcomes:
            self.stdout.write(f"{len(outcomes)} messages: {created} tickets, {commented} comments.")


def _read_limited(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(settings.INTAKE_MAX_BYTES + 1)


def _size_of(answer: list) -> int:
    text = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
    digits = text.rsplit("RFC822.SIZE", 1)[-1].strip(" )")
    return int(digits) if digits.isdigit() else 0
