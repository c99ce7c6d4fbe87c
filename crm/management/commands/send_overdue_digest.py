from django.core.management.base import BaseCommand

from crm import notifications


class Command(BaseCommand):
    help = (
        "Once a day (timer or cron): mail every agent the open tickets past their due date (queued in the "
        "outbox; send_notifications sends it). Nothing when no ticket is overdue."
    )

    def handle(self, *args, **options):
        queued = notifications.overdue_digest()
        if options["verbosity"] >= 2:
            self.stdout.write(f"Queued {queued} digest mails.")
