"""FULLTEXT indexes for the ticket search on MariaDB (crm/search.py): the ticket's title and description,
and comment bodies. Other databases get none (the search falls back to a scan there).

Blocking: InnoDB builds a table's first FULLTEXT index with writes locked (LOCK=SHARED, a rebuild that
adds FTS_DOC_ID), so the update runs it under maintenance.
"""

from django.db import migrations

INDEXES = [
    ("crm_ticket", "crm_ticket_search_ft", "title, description"),
    ("crm_ticketcomment", "crm_ticketcomment_search_ft", "body"),
]


def add_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for table, name, columns in INDEXES:
        schema_editor.execute(f"ALTER TABLE {table} ADD FULLTEXT INDEX {name} ({columns})")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "mysql":
        return
    for table, name, _columns in INDEXES:
        schema_editor.execute(f"ALTER TABLE {table} DROP INDEX {name}")


class Migration(migrations.Migration):
    update_kind = "blocking"
    atomic = False

    dependencies = [
        ("crm", "0007_inbound_mail"),
    ]

    operations = [
        migrations.RunPython(add_indexes, drop_indexes, elidable=False),
    ]
