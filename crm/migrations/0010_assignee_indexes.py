"""Indexes for the people a ticket can be assigned to (crm.access.assignable_users): the profiles'
role, and the users' is_superuser. The second is on Django's user table, which this app does not
own, so it is added by the schema editor rather than declared on a model; both build online."""

from django.conf import settings
from django.db import migrations, models

SUPERUSER_INDEX = models.Index(fields=["is_superuser"], name="crm_user_superuser_idx")


def add_superuser_index(apps, schema_editor):
    schema_editor.add_index(apps.get_model(settings.AUTH_USER_MODEL), SUPERUSER_INDEX)


def remove_superuser_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model(settings.AUTH_USER_MODEL), SUPERUSER_INDEX)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0009_list_sort_keys_and_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="userprofile",
            index=models.Index(fields=["role", "user"], name="crm_userprofile_role_idx"),
        ),
        # Not atomic: MariaDB cannot hold DDL in a transaction, and Django refuses to try.
        migrations.RunPython(add_superuser_index, remove_superuser_index, atomic=False, elidable=False),
    ]
