import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crm import intake, mailboxes

EX_DATAERR = 65  # sysexits.h: Postfix's pipe(8) bounces the message with what was printed


class Command(BaseCommand):
    help = (
        "Tickets and replies by e-mail: one message on stdin (a Postfix pipe, procmail), every new message "
        "of a Maildir (--maildir), the unseen messages of an IMAP mailbox (--imap), or every message of a "
        "POP3 mailbox, deleted once handled (--pop3)."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--maildir", type=Path, help="handle new/ of this Maildir, moving each to cur/")
        source.add_argument("--imap", action="store_true", help="poll INTAKE_IMAP_HOST (settings)")
        source.add_argument("--pop3", action="store_true", help="poll INTAKE_POP3_HOST (settings)")

    def handle(self, *args, **options):
        try:
            if options["maildir"]:
                return self._summary(mailboxes.from_maildir(options["maildir"]), options)
            if options["imap"]:
                return self._summary(mailboxes.from_imap(mailboxes.imap_server()), options)
            if options["pop3"]:
                return self._summary(mailboxes.from_pop3(mailboxes.pop3_server()), options)
        except mailboxes.MailboxError as error:
            raise CommandError(str(error)) from error
        raw = sys.stdin.buffer.read(settings.INTAKE_MAX_BYTES + 1)
        if len(raw) > settings.INTAKE_MAX_BYTES:
            sys.stdin.buffer.read()  # drain the rest, so that the MTA sees the pipe read to its end
        outcome = intake.receive(raw)
        if outcome.kind == intake.REFUSED:
            self.stdout.write(f"Refused: {outcome.detail}")
            raise SystemExit(EX_DATAERR)
        if options["verbosity"] >= 1:
            self.stdout.write(f"{outcome.kind.capitalize()}: {outcome.detail}")

    def _summary(self, outcomes: list[intake.Outcome], options) -> None:
        for outcome in outcomes:
            if outcome.kind == intake.REFUSED or options["verbosity"] >= 2:
                self.stdout.write(f"{outcome.kind.capitalize()}: {outcome.detail}")
        created = sum(outcome.kind == intake.CREATED for outcome in outcomes)
        commented = sum(outcome.kind == intake.COMMENTED for outcome in outcomes)
        if options["verbosity"] >= 1 and outcomes:
            self.stdout.write(f"{len(outcomes)} messages: {created} tickets, {commented} comments.")
