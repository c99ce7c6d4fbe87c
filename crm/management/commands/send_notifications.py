from django.core.management.base import BaseCommand

from crm import outbox


class Command(BaseCommand):
    help = (
        "Send the mail outbox (for a systemd timer or cron, every minute): what is due, over one SMTP "
        "connection; refused mails wait longer each time and become dead letters after the last attempt."
    )

    def handle(self, *args, **options):
        done = outbox.drain()
        if done.busy:
            self.stdout.write("Another send_notifications is sending; nothing to do.")
            return
        if options["verbosity"] >= 2 or done.deferred or done.dead:
            self.stdout.write(
                f"Sent {done.sent}, waiting to be tried again {done.deferred}, given up {done.dead}."
            )
