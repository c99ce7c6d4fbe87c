"""rollback --recover reads any command's journal and finishes or undoes it with that command's own
steps; what cannot be undone is said so, and no step is left "running"."""

import json

import pytest
from django.core.management import call_command

from updater.backup import safe_migrate
from updater.run import journal, maintenance, recovery
from updater.run.journal import Journal
from updater.system import system_update


def interrupted(state_dir, command: str, done: list[str], running: str, **facts) -> Journal:
    run = Journal.start(state_dir.updates, command, None, "something")
    run.record(**facts)
    for name in done:
        run.step_started(name)
        run.step_finished(name)
    run.step_started(running)  # ... and the process died here
    return run


def test_an_interrupted_system_upgrade_is_reported_as_impossible_to_undo_not_rolled_back(state_dir, tmp_path):
    etc_backup = tmp_path / "etc-host-20261127T000000Z.tar.gz"
    run = interrupted(
        state_dir,
        system_update.COMMAND,
        ["backup"],
        "upgrade",
        package_names=["x"],
        etc_backup=str(etc_backup),
    )
    [recovered] = recovery.recover()
    assert recovered.outcome == "failed"
    assert "cannot be undone: upgrade" in recovered.detail and str(etc_backup) in recovered.detail
    data = json.loads(run.path.read_text())
    assert data["status"] == journal.FAILED  # finished: new runs may go on, with the cause on record
    upgrade = next(step for step in data["steps"] if step["name"] == "upgrade")
    assert upgrade["status"] == journal.INTERRUPTED and upgrade["undo_note"] == "cannot be undone"
    assert journal.unfinished(state_dir.updates) == []


def test_a_run_of_an_unknown_command_is_closed_as_failed_with_its_steps_interrupted(state_dir):
    run = interrupted(state_dir, "mystery", [], "something")
    [recovered] = recovery.recover()
    assert recovered.outcome == "failed"
    data = json.loads(run.path.read_text())
    assert data["status"] == journal.FAILED
    assert [step["status"] for step in data["steps"]] == [journal.INTERRUPTED]


@pytest.mark.django_db
def test_recover_undoes_an_interrupted_safe_migrate_and_says_so(state_dir, capsys):
    maintenance.enable("safe_migrate")  # the killed run had blocked writes
    interrupted(
        state_dir, safe_migrate.COMMAND, ["integrity check"], "maintenance", pending_migrations=["a.1"]
    )
    call_command("rollback", "--recover")
    assert "(safe_migrate): rolled back." in capsys.readouterr().out
    assert not maintenance.is_on()
    call_command("rollback", "--recover")
    assert "Nothing to recover: every run finished." in capsys.readouterr().out


def test_an_interrupted_run_that_had_changed_nothing_live_is_closed_as_failed(state_dir):
    run = interrupted(state_dir, system_update.COMMAND, [], "backup", package_names=["x"])
    [recovered] = recovery.recover()
    assert recovered.outcome == journal.FAILED
    assert json.loads(run.path.read_text())["status"] == journal.FAILED


def test_a_run_that_failed_past_its_point_of_no_return_is_left_incomplete_and_completed(state_dir):
    """safe_migrate verified its migration, then could not switch maintenance off: never undone (the
    database is good), never "succeeded" with maintenance on; recovery finishes it."""
    maintenance.enable("safe_migrate")
    run = interrupted(
        state_dir,
        safe_migrate.COMMAND,
        ["integrity check", "maintenance", "backup", "migrate", "verify"],
        "maintenance off",
        pending_migrations=["a.1"],
    )
    run.step_finished("maintenance off", "failed", "OSError: read-only file system")
    run.finish(journal.INCOMPLETE, "OSError: read-only file system")
    assert journal.unfinished(state_dir.updates)  # new runs wait for it
    [recovered] = recovery.recover()
    assert recovered.outcome == "completed"
    assert not maintenance.is_on()
    data = json.loads(run.path.read_text())
    assert data["status"] == journal.SUCCEEDED
    assert [s["status"] for s in data["steps"]][-2:] == ["done", "done"]  # maintenance off, finish
