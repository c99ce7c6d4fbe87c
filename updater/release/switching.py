"""The steps that update and rollback share: switch `current` (and reload), verify the release served."""

from pathlib import Path

from django.conf import settings

from updater import layout
from updater.layout import DeploymentRoot
from updater.release import releases
from updater.release.reload import reload_app_server, wait_for_version
from updater.run import faults
from updater.run.journal import Journal
from updater.run.steps import Step


def switch_step(root: DeploymentRoot) -> Step:
    """`current` <- the run's target (fact "target"); undone by switching back and reloading."""

    def do(run: Journal) -> None:
        target = releases.Release(Path(run.fact("target")).name, Path(run.fact("target")), None)
        # The smoke checks need no live server (an in-process client in the target release), so they
        # run while the switch and reload happen: maintenance ends as soon as both are through.
        run.scratch["smoke"] = releases.start(root, target, *smoke_command(run))
        if run.fact("switched_from") is None:
            run.record(switched_from=root.current_release())  # before the switch: a kill after it is undone
        layout.switch(root, target.path)
        faults.point("switch:during")
        reload_app_server()

    def undo(run: Journal) -> None:
        _stop_smoke(run)
        previous = run.fact("switched_from")
        if previous and root.current_release() != Path(previous):
            layout.switch(root, Path(previous))
        try:
            reload_app_server()
        except Exception as error:  # the code is back; a failed reload is reported, not fatal
            run.record(reload_after_undo_failed=str(error))

    return Step("switch", do, undo)


def verify_step(root: DeploymentRoot, completes: bool = True) -> Step:
    """The target answers the health URL with its version and passes its smoke checks. Done, it is
    the point of no return (unless `completes` is False: a fleet's is every server verified): an
    interrupted run is completed from here on, never undone."""

    def do(run: Journal) -> None:
        target = Path(run.fact("target"))
        try:
            if settings.UPDATER_HEALTH_URL:
                wait_for_version(settings.UPDATER_HEALTH_URL, target.name, settings.UPDATER_HEALTH_TIMEOUT)
            smoke = run.scratch.get("smoke") or releases.start(
                root, releases.Release(target.name, target, None), *smoke_command(run)
            )
            run.record(smoke_checks=smoke.result(timeout=releases.COMMAND_TIMEOUT).strip().splitlines())
        finally:
            _stop_smoke(run)
        run.record(verified=True)

    return Step("verify", do, lambda run: None, completes=completes)


def smoke_command(run: Journal) -> tuple[str, ...]:
    """smoke_check, allowing the run's contract migrations to be pending (they follow verify)."""
    later = (run.fact("migration_schedule") or {}).get("after_switch", [])
    return ("smoke_check", *(f"--allow-pending={name}" for name in later))


def _stop_smoke(run: Journal) -> None:
    smoke = run.scratch.pop("smoke", None)
    if smoke is not None and smoke.process.poll() is None:
        smoke.process.kill()
        smoke.process.communicate()
