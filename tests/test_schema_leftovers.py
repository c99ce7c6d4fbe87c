"""Undoing online migrations exactly: whatever the live schema gained since the snapshot taken before
they ran (a column, an index, a table left by a migration that failed half-way on MariaDB, whose DDL
is not transactional) is found and dropped, and the schema equals the snapshot again."""

import pytest
from django.db import connection

from updater.plan import schema


@pytest.mark.django_db(transaction=True)
def test_what_a_half_done_migration_added_is_dropped_and_nothing_else():
    before = schema.snapshot()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE crm_ticket ADD COLUMN {quote('reference')} varchar(40) NULL")
        cursor.execute(
            f"CREATE INDEX {quote('crm_ticket_reference_idx')} ON crm_ticket ({quote('reference')})"
        )
        cursor.execute(f"CREATE TABLE {quote('crm_tag')} (id integer PRIMARY KEY, ticket_id bigint NULL)")
    added = schema.added_since(before, schema.snapshot())
    assert schema.describe(added) == [
        "index crm_ticket.crm_ticket_reference_idx",
        "column crm_ticket.reference",
        "table crm_tag",
    ]
    schema.drop(added)
    assert schema.snapshot() == before
    assert schema.added_since(before, schema.snapshot()) == []


@pytest.mark.django_db(transaction=True)
def test_a_foreign_key_added_with_its_column_goes_before_the_column():
    if connection.vendor != "mysql":
        pytest.skip("SQLite keeps a foreign key inside its column's definition")
    before = schema.snapshot()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE crm_ticket ADD COLUMN merged_into_id bigint NULL")
        cursor.execute(
            "ALTER TABLE crm_ticket ADD CONSTRAINT crm_ticket_merged_fk "
            "FOREIGN KEY (merged_into_id) REFERENCES crm_ticket (id)"
        )
    added = schema.added_since(before, schema.snapshot())
    assert added[0][0] == "foreign_keys"
    schema.drop(added)
    assert schema.snapshot() == before
