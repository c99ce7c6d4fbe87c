from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crm import demo_data
from crm.models import Ticket


class Command(BaseCommand):
    help = "Fill the database with demo organizations, users and tickets, and print logins to try."

    def add_arguments(self, parser):
        parser.add_argument("--tickets", type=int, default=500, help="tickets to add (default 500)")
        parser.add_argument("--orgs", type=int, default=10, help="demo organizations to have (default 10)")
        parser.add_argument("--seed", type=int, default=42, help="random seed, for repeatable data")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when the database already has tickets"
        )

    def handle(self, *args, **options):
        if settings.ENVIRONMENT == "prod":
            raise CommandError(
                "seed_demo creates accounts with well-known passwords and does not run with "
                "ENVIRONMENT=prod. Use a dev, test or staging database."
            )
        if options["tickets"] < 0 or options["orgs"] < 1:
            raise CommandError("--tickets must be 0 or more and --orgs at least 1.")
        if options["if_empty"] and Ticket.objects.exists():
            self.stdout.write("The database already has tickets; leaving it as it is (--if-empty).")
            self._print_logins(demo_data.existing_logins())
            return
        result = demo_data.seed(tickets=options["tickets"], orgs=options["orgs"], random_seed=options["seed"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {result.organizations} organizations, {result.users} new users, "
                f"{result.tickets} tickets, {result.comments} comments, {result.activities} activity entries."
            )
        )
        self._print_logins(result.logins)

    def _print_logins(self, logins: list[demo_data.DemoLogin]) -> None:
        if not logins:
            return
        self.stdout.write("Demo logins (username / password):")
        for login in logins:
            where = f", {login.organization}" if login.organization else ""
            self.stdout.write(f"  {login.role:<9} {login.username} / {login.password}{where}")
        self.stdout.write(
            f"  More: agent1..agent{demo_data.AGENT_COUNT} / {demo_data.DEMO_PASSWORDS['agent']}; "
            f"customerNNNN-1 and -2 / {demo_data.DEMO_PASSWORDS['customer']} for organization NNNN."
        )
