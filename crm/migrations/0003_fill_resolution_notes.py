"""The handbook's data migration: give already-resolved tickets a resolution note.

Runs as one UPDATE per direction so it stays fast on large tables. Reversing empties exactly the
notes this migration wrote; notes that people typed by hand are left alone both ways.
"""

from django.db import migrations

AUTOMATIC_NOTE = "Zgłoszenie rozwiązane automatycznie"


def fill_resolution_notes(apps, schema_editor):
    Ticket = apps.get_model("crm", "Ticket")
    Ticket.objects.filter(status="resolved", resolution_notes="").update(resolution_notes=AUTOMATIC_NOTE)


def empty_resolution_notes(apps, schema_editor):
    Ticket = apps.get_model("crm", "Ticket")
    Ticket.objects.filter(resolution_notes=AUTOMATIC_NOTE).update(resolution_notes="")


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0002_ticket_resolution_notes"),
    ]

    operations = [
        migrations.RunPython(fill_resolution_notes, empty_resolution_notes, elidable=False),
    ]
