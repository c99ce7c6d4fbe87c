"""Reading a release before running it: irreversible migrations, error-log tails, report modes."""

import json

import pytest
from django.db import migrations as django_migrations
from django.db import models

from tests.support.mailbox import Mailbox
from updater.notify import outcome, reports
from updater.plan import migrations
from updater.run import journal

SOURCES = (
    ("source", "reasons"),
    [
        ("migrations.RunPython(forward)", ["RunPython without reverse_code"]),
        ("migrations.RunPython(forward, migrations.RunPython.noop)", []),
        ("migrations.RunPython(code=forward, reverse_code=None)", ["RunPython without reverse_code"]),
        ("migrations.RunSQL('UPDATE x SET y = 1')", ["RunSQL without reverse_sql"]),
        ("migrations.RunSQL('CREATE INDEX i ON t (c)', reverse_sql='DROP INDEX i')", []),
        ("migrations.RemoveField('ticket', 'legacy')", ["removes a field"]),
        ("migrations.DeleteModel('Legacy')", ["deletes a model"]),
        ("migrations.AddField('ticket', 'x', models.IntegerField(default=0))", []),
    ],
)


@pytest.mark.parametrize(*SOURCES)
def test_irreversible_operations_are_named(source, reasons):
    migration = f"from django.db import migrations, models\n\noperations = [{source}]\n"
    assert migrations.irreversible_operations(migration) == reasons


@pytest.mark.parametrize(*SOURCES)
def test_update_plan_and_rollback_judge_a_migration_the_same_way(source, reasons):
    """update_plan reads the source; rollback asks the loaded operations (in the newer release)."""
    operation = eval(source, {"migrations": django_migrations, "models": models, "forward": print})  # noqa: S307
    reason = migrations.irreversible_reason(type(operation).__name__, operation.reversible)
    assert ([reason] if reason else []) == reasons


def test_a_migration_that_does_not_parse_counts_as_irreversible():
    assert migrations.irreversible_operations("def broken(:\n")[0].startswith("unreadable")


def test_error_log_tail_keeps_only_errors_written_since_the_run_began(settings, tmp_path):
    log = tmp_path / "helpdesk.log"
    lines = [
        {
            "time": "2026-11-26T10:00:00.000+00:00",
            "level": "ERROR",
            "logger": "django",
            "message": "old error",
        },
        {"time": "2026-11-26T12:00:01.000+00:00", "level": "INFO", "logger": "django", "message": "fine"},
        {"time": "2026-11-26T12:00:02.000+00:00", "level": "ERROR", "logger": "crm", "message": "new error"},
    ]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json but an ERROR line\n")
    settings.LOG_FILE = str(log)
    tail = reports.error_log_tail("2026-11-26T12:00:00+00:00")
    assert tail == ["2026-11-26T12:00:02.000+00:00 crm: new error", "not json but an ERROR line"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "status", "emails"),
    [("only-on-error", "succeeded", 0), ("only-on-error", "rolled back", 1), ("on-change", "succeeded", 1)],
)
def test_a_finished_run_is_emailed_only_when_the_mode_says_so(settings, tmp_path, mode, status, emails):
    with Mailbox() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.NOTIFY_EMAILS, settings.NOTIFY_MODE = ["ops@example.org"], mode
        run = journal.Journal.start(tmp_path, "update", "v1.0.0", "v2.0.0")
        report = outcome.conclude(run, status, None if status == "succeeded" else "it broke", changed=True)
    assert len(smtp.received) == emails
    assert report.read_text().startswith(f"# [{reports.FLAGS[status]}] helpdesk update v1.0.0 -> v2.0.0")


@pytest.mark.django_db
def test_update_report_renders_a_kept_run_and_emails_it(settings, tmp_path, capsys):
    from django.core.management import call_command

    root = tmp_path / "srv"
    for folder in ("releases", "shared/updates", "repo.git"):
        (root / folder).mkdir(parents=True)
    (root / "repo.git" / "HEAD").write_text("ref: refs/heads/main\n")
    settings.UPDATER_ROOT = str(root)
    run = journal.Journal.start(root / "shared" / "updates", "update", "v1.0.0", "v1.1.0", actor="marta")
    run.record(
        changelog=[{"sha": "abc", "type": "fix", "subject": "fix: date in the list", "breaking": False}]
    )
    run.step_started("prepare")
    run.step_finished("prepare")
    run.finish(journal.SUCCEEDED)
    call_command("update_report", "--last", "--format", "markdown")
    text = capsys.readouterr().out
    assert text.startswith("# [OK] helpdesk update v1.0.0 -> v1.1.0")
    assert "- run " in text and "by marta" in text and "- fix: date in the list" in text
    with Mailbox() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.NOTIFY_EMAILS = ["ops@example.org"]
        call_command("update_report", "--run", run.data["id"][:12], "--email")
    assert smtp.received[0].subject.startswith("[OK] helpdesk update v1.0.0 -> v1.1.0")


@pytest.mark.parametrize(
    ("schedule", "line"),
    [
        (
            {"mode": "online", "before_switch": ["crm.0005_a"], "after_switch": ["crm.0006_b"], "why": "-"},
            "migrated online, the site up: crm.0005_a before the switch; crm.0006_b after verify",
        ),
        (
            {
                "mode": "maintenance",
                "before_switch": ["crm.0005_a", "crm.0006_b"],
                "after_switch": [],
                "why": "crm.0006_b is blocking: x",
            },
            "migrated under maintenance: crm.0006_b is blocking: x",
        ),
    ],
)
def test_the_report_says_how_the_migrations_ran_and_what_the_rehearsal_predicted(tmp_path, schedule, line):
    run = journal.Journal.start(tmp_path, "update", "v1.0.0", "v1.1.0", actor="marta")
    run.record(
        pending_migrations=["crm.0005_a", "crm.0006_b"],
        migration_schedule=schedule,
        rehearsal={
            "source": "rehearsed 2026-11-27 on a copy of 1.2 GB",
            "migrations": {"crm.0005_a": 1.5, "crm.0006_b": 2.0},
        },
        migrated_seconds={"crm.0005_a": 1.25, "crm.0006_b": 2.5, "crm.0007_not_rehearsed": 9.0},
    )
    run.finish(journal.SUCCEEDED)
    text = reports.render(reports.build(run))
    assert line in text
    # only migrations both measured are compared: 3.5 s rehearsed against 3.75 s live
    assert (
        "migrations took 3.75 s; the rehearsal measured 3.5 s (rehearsed 2026-11-27 on a copy of 1.2 GB)"
        in text
    )
