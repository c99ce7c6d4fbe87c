"""Attachments keep the uploader's file name in a column; new files are stored under generated names.

The column has a database default, so the release before this one (which does not know it) keeps
inserting attachments while the column is added and after. Files already stored keep their paths;
their name is copied from the path, where it used to live."""

from django.db import migrations, models


def copy_names_from_paths(apps, schema_editor):
    attachments = apps.get_model("crm", "TicketAttachment").objects.filter(original_name="")
    for attachment in attachments.only("pk", "file").iterator(chunk_size=1000):
        name = attachment.file.name.rsplit("/", 1)[-1]
        attachments.filter(pk=attachment.pk).update(original_name=name)


class Migration(migrations.Migration):
    dependencies = [("crm", "0003_fill_resolution_notes")]

    operations = [
        migrations.AddField(
            model_name="ticketattachment",
            name="original_name",
            field=models.CharField(blank=True, db_default="", max_length=255, verbose_name="file name"),
        ),
        # Going back drops the column; the paths still hold the names the older code shows.
        migrations.RunPython(copy_names_from_paths, migrations.RunPython.noop),
    ]
