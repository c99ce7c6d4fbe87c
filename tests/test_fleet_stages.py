"""One server's part in a fleet update, without the fleet: which of the update's steps each server
runs, the fleet's lock, refusals, the one report mail, and the HAProxy drain script against a real
HAProxy. tests/test_fleet.py runs the whole fleet (Ansible, ssh, three servers)."""

import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from tests.support import fleet as fleet_support
from tests.support.mailbox import Mailbox
from tests.support.processes import free_port
from updater.errors import UpdateBusy, UpdateRefused
from updater.layout import DeploymentRoot
from updater.notify import outcome
from updater.release import fleet, update
from updater.run import journal
from updater.run.journal import Journal

HAPROXY_SERVER = fleet_support.PLAYBOOKS / "files" / "haproxy_server.py"


def a_run(root: DeploymentRoot, **facts) -> Journal:
    run = Journal.start(root.updates, update.COMMAND, "v1.0.0", "v2.0.0")
    run.record(
        target=str(root.release("v2.0.0")),
        pending_migrations=["crm.0010_x"],
        migration_schedule={"mode": "maintenance", "before_switch": ["crm.0010_x"], "after_switch": []},
        **facts,
    )
    return run


def steps_run(root: DeploymentRoot, run: Journal) -> list[str]:
    return [s.name for s in update.steps(root, run).steps if s.when is None or s.when(run)]


@pytest.fixture
def root(tmp_path, settings):
    settings.UPDATER_REHEARSE = True
    return DeploymentRoot(tmp_path / "srv")


def test_only_the_primary_holds_the_database_steps_and_only_every_server_verified_is_final(root):
    other = a_run(root, fleet_run="r1", fleet_primary=False)
    assert steps_run(root, other) == ["prepare", "switch", "verify", "fleet verified", "finish"]
    primary = a_run(root, fleet_run="r1", fleet_primary=True)
    assert steps_run(root, primary) == [
        "prepare",
        "rehearse",
        "maintenance",
        "backup",
        "migrate",
        "switch",
        "verify",
        "fleet verified",
        "maintenance off",
        "finish",
    ]
    final = {s.name for s in update.steps(root, primary).steps if s.completes}
    assert final == {"fleet verified"}  # one server verified is not the fleet verified


def test_a_single_server_update_has_no_fleet_step_and_verify_is_its_point_of_no_return(root):
    run = a_run(root)
    assert "fleet verified" not in steps_run(root, run)
    running = steps_run(root, run)
    assert {s.name for s in update.steps(root, run).steps if s.completes and s.name in running} == {"verify"}
    assert "maintenance off" in steps_run(root, run)


def test_every_step_of_the_update_belongs_to_one_stage(root):
    names = [s.name for s in update.steps(root, a_run(root, fleet_run="r1")).steps]
    staged = [name for stage in fleet.STAGES.values() for name in stage]
    assert sorted(staged) == sorted(names)


def test_a_paused_fleet_run_holds_the_server_naming_the_run_with_exit_code_3(root):
    run = a_run(root, fleet_run="20261128T010000-v2.0.0", fleet_primary=True)
    run.data["status"] = journal.PAUSED
    run.save()
    with pytest.raises(UpdateBusy) as refused:
        journal.refuse_if_unfinished(root.updates)
    assert "the fleet update 20261128T010000-v2.0.0 (v1.0.0 -> v2.0.0, begun" in str(refused.value)
    assert "rollback.yml -e fleet_run=20261128T010000-v2.0.0" in str(refused.value)


@pytest.mark.parametrize("fleet_run", ["", "a b", "x;rm -rf /", "-e", "a" * 65, "../up"])
def test_a_fleet_run_id_that_is_not_a_plain_name_is_refused(root, fleet_run):
    with pytest.raises(UpdateRefused, match="is not a fleet run id"):
        fleet.run_stage(root, "v2.0.0", fleet_run, "begin")
    assert not root.updates.exists()


def test_a_stage_of_a_run_that_never_began_here_is_refused_and_undo_has_nothing_to_do(root):
    with pytest.raises(UpdateRefused, match="the fleet run r1 has not begun on this server"):
        fleet.run_stage(root, "v2.0.0", "r1", "switch")
    assert fleet.run_stage(root, "v2.0.0", "r1", "undo").status == "none"
    assert fleet.run_stage(root, None, "r1", "undo").status == "none"  # undoing needs no tag
    with pytest.raises(UpdateRefused, match=r"the stage switch needs the release tag \(--version\)"):
        fleet.run_stage(root, None, "r1", "switch")


def test_a_stage_that_failed_here_leaves_only_the_undo(root):
    run = a_run(root, fleet_run="r1", fleet_primary=False, failed_stage="switch")
    run.data["status"] = journal.PAUSED
    run.save()
    with pytest.raises(UpdateRefused, match="can only be undone now"):
        fleet.run_stage(root, "v2.0.0", "r1", "finish")
    with pytest.raises(UpdateRefused, match=r"updates this server to v2\.0\.0"):
        fleet.run_stage(root, "v3.0.0", "r1", "finish")


def test_a_fleet_run_that_verified_every_server_is_completed_not_undone(root):
    run = a_run(root, fleet_run="r1", fleet_primary=False)
    for name in ("prepare", "switch", "verify", "fleet verified"):
        run.step_started(name)
        run.step_finished(name)
    run.data["status"] = journal.PAUSED
    run.save()
    with pytest.raises(UpdateRefused, match="it is completed, not undone"):
        fleet.run_stage(root, "v2.0.0", "r1", "undo")


def test_the_stage_option_needs_a_fleet_run_and_only_undo_goes_without_a_version(capsys):
    with pytest.raises(SystemExit) as exited:
        call_command("update", "--version", "v2.0.0", "--stage", "switch")
    assert exited.value.code == 2
    assert "--stage and --fleet-run go together" in capsys.readouterr().err
    for stage in ("switch", None):
        with pytest.raises(SystemExit) as exited:
            call_command("update", *(["--fleet-run", "r1", "--stage", stage] if stage else []))
        assert exited.value.code == 2
        assert "--version TAG is required (only --stage undo goes without)" in capsys.readouterr().err


def test_update_report_picks_a_servers_run_of_a_fleet_update(state_dir, settings, tmp_path, capsys):
    root = DeploymentRoot(tmp_path / "srv")
    root.create_layout()
    root.repo.mkdir(parents=True, exist_ok=True)
    (root.repo / "HEAD").write_text("ref: refs/heads/main\n")
    settings.UPDATER_ROOT = str(root.path)
    (root.releases / "v1.0.0").mkdir(parents=True)
    root.current_link.symlink_to(root.releases / "v1.0.0")
    a_run(root, fleet_run="r1").finish(journal.SUCCEEDED)
    a_run(root).finish(journal.FAILED, "later, alone")
    call_command("update_report", "--fleet-run", "r1", "--format", "json")
    assert '"fleet_run": "r1"' in capsys.readouterr().out
    with pytest.raises(CommandError, match="The fleet run r2 never began here"):
        call_command("update_report", "--fleet-run", "r2")


@pytest.mark.parametrize(("primary", "mails"), [(True, 1), (False, 0), (None, 1)])
def test_only_the_primary_of_a_fleet_mails_the_report(state_dir, settings, primary, mails):
    with Mailbox() as box:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", box.port, False
        settings.NOTIFY_EMAILS, settings.NOTIFY_MODE = ["ops@example.org"], "always"
        run = Journal.start(state_dir.updates, update.COMMAND, "v1.0.0", "v2.0.0")
        if primary is not None:
            run.record(fleet_run="r1", fleet_primary=primary)
        outcome.conclude(run, journal.SUCCEEDED, changed=True)
        assert len(box.received) == mails


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory):
    """A real HAProxy with two servers (nothing behind them: no checks) and its admin socket."""
    folder = tmp_path_factory.mktemp("haproxy")
    balancer = fleet_support.Balancer(folder, {"app1": free_port(), "app2": free_port()})
    balancer.start()
    yield balancer
    balancer.stop()


def haproxy_server(balancer, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(HAPROXY_SERVER), "--socket", str(balancer.socket), "--backend", "helpdesk"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)


def test_the_drain_script_drains_a_server_in_haproxy_and_puts_it_back(haproxy):
    drained = haproxy_server(haproxy, "--server", "app2", "--wait", "5", "drain")
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout.strip() == "helpdesk/app2: drain"
    assert haproxy.admin_states()["app2"] & 0x08  # SRV_ADMF_FDRAIN: drained by the runtime API
    assert haproxy.admin_states()["app1"] == 0
    shown = haproxy_server(haproxy, "show").stdout
    assert "app2 DRAIN" in shown or "app2 DOWN" in shown  # its health: nothing listens behind it
    ready = haproxy_server(haproxy, "--server", "app2", "ready")
    assert ready.returncode == 0, ready.stderr
    assert haproxy.admin_states()["app2"] == 0


def test_the_drain_script_names_an_unknown_server_and_a_dead_socket(haproxy, tmp_path):
    unknown = haproxy_server(haproxy, "--server", "app9", "drain")
    assert unknown.returncode == 1
    assert "HAProxy has no server app9 in backend helpdesk" in unknown.stderr
    dead = subprocess.run(
        [
            sys.executable,
            str(HAPROXY_SERVER),
            "--socket",
            str(tmp_path / "none.sock"),
            "--backend",
            "b",
            "show",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert dead.returncode == 1 and "none.sock" in dead.stderr


def test_rollback_recover_leaves_a_servers_part_of_a_fleet_run_to_the_fleet(state_dir, capsys):
    run = Journal.start(state_dir.updates, update.COMMAND, "v1.0.0", "v2.0.0")
    run.record(fleet_run="r7", fleet_primary=True)
    run.step_started("migrate")  # killed here: undoing it alone would restore under switched servers
    call_command("rollback", "--recover")
    assert "part of the fleet run r7: undo it with deploy/ansible/rollback.yml" in capsys.readouterr().err
    assert Journal.load(run.path).status == journal.RUNNING  # untouched


def test_a_fleet_run_id_that_ended_here_cannot_begin_again(root):
    run = a_run(root, fleet_run="r1", fleet_primary=False)
    run.finish(journal.ROLLED_BACK, "verification failed on app2")
    with pytest.raises(UpdateRefused, match="the fleet run r1 has ended on this server: rolled back"):
        fleet.run_stage(root, "v2.0.0", "r1", "begin")
    assert len(list(root.updates.glob("*.json"))) == 1  # no new journal
