"""The update pipeline: preflight → prepare → backup + migrate → switch → verify → finish.

Each step is journaled before and after it runs; from the backup on, a failure undoes in reverse:
switch back and reload, restore the step-3 backup if the schema was touched, maintenance off, journal
"rolled back". The live release is never modified in place: the new one is prepared beside it.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings
from django.db import DatabaseError, connection

from updater import layout
from updater.backup import backups
from updater.layout import DeploymentRoot
from updater.notify import outcome
from updater.plan import planning, policy
from updater.release import git_repo, releases
from updater.run import journal, locks, maintenance

BAD_MARKER = ".helpdesk-bad"
MIGRATION_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[0-9]{4}_[A-Za-z0-9_]+$")


class UpdateRefused(Exception):
    """Preflight or policy said no; nothing was changed (exit code 2)."""


class UpdateBusy(Exception):
    """Another run holds the update lock (exit code 3)."""


class UpdateFailed(Exception):
    """The update failed; what was changed has been undone (exit code 1)."""


@dataclass(frozen=True)
class UpdatePlan:
    from_version: str | None
    to_version: str
    pending_migrations: list[str]


@dataclass(frozen=True)
class UpdateResult:
    journal: journal.Journal
    plan: UpdatePlan


def current_version(root: DeploymentRoot) -> str | None:
    release = root.current_release()
    return release.name if release else None


@dataclass(frozen=True)
class Options:
    skip_backup: bool = False
    dry_run: bool = False
    allow_breaking: bool = False
    ignore_window: bool = False
    actor: str | None = None  # who asked: a login, or "auto_update"


def update(root: DeploymentRoot, tag: str, options: Options | None = None) -> UpdateResult:
    options = options or Options()
    git_repo.validate_tag_name(tag)
    with exclusive(root.lock_file, f"update --version {tag}"):
        return _update_locked(root, tag, options)


@contextmanager
def exclusive(lock_file: Path, command: str) -> Iterator[None]:
    """The update lock shared by every run that changes the site; UpdateBusy naming its holder if taken."""
    with ExitStack() as stack:
        try:
            stack.enter_context(locks.hold(lock_file, command=command))
        except locks.LockHeld as held:
            who = held.holder.describe() if held.holder else "another process"
            raise UpdateBusy(f"another update or rollback is running ({who})") from None
        yield


def _update_locked(root: DeploymentRoot, tag: str, options: Options) -> UpdateResult:
    stuck = journal.unfinished(root.updates)
    if stuck:
        raise UpdateRefused(
            f"the run {stuck[-1].data['id']} ({stuck[-1].data['command']}) did not finish; "
            "run `manage.py rollback --recover` first"
        )
    old_version = current_version(root)
    try:
        git_repo.fetch(root.repo)
        git_repo.tag_commit(root.repo, tag)
        if getattr(settings, "UPDATER_REQUIRE_SIGNED_TAGS", False):
            git_repo.verify_tag(
                root.repo,
                tag,
                allowed_signers=settings.UPDATER_ALLOWED_SIGNERS,
                gnupghome=settings.UPDATER_GNUPGHOME,
            )
    except git_repo.InvalidVersion as error:
        raise UpdateRefused(str(error)) from error
    except git_repo.GitError as error:
        raise UpdateRefused(f"the repository could not be fetched: {error}") from error
    if tag == old_version:
        raise UpdateRefused(f"{tag} is already the current release; nothing to do")
    if (root.release(tag) / BAD_MARKER).exists():
        reason = (root.release(tag) / BAD_MARKER).read_text().strip()
        raise UpdateRefused(f"{tag} was marked bad by an earlier failed update: {reason}")
    _check_disk(root)
    try:
        connection.ensure_connection()
    except DatabaseError as error:
        raise UpdateRefused(f"the database is unreachable: {error}") from error
    try:
        release_plan = planning.plan(root, tag)
    except (git_repo.GitError, policy.PolicyError) as error:
        raise UpdateRefused(f"the update could not be planned: {error}") from error
    _check_policy(release_plan, options)

    run = journal.Journal.start(root.updates, "update", old_version, tag, actor=options.actor)
    run.record(
        update_class=release_plan.update_class,
        changelog=[_commit_summary(commit) for commit in release_plan.commits],
        dry_run=options.dry_run,
    )
    try:
        plan = _prepare(root, run, tag, old_version)
    except (releases.ReleaseError, git_repo.GitError, OSError) as error:
        mark_bad(root, tag, str(error))
        outcome.conclude(run, journal.FAILED, f"prepare failed, the live site was not touched: {error}",
                           changed=False)  # fmt: skip
        raise UpdateFailed(f"preparing {tag} failed; the live site was not touched: {error}") from error
    if options.dry_run:
        run.finish(journal.SUCCEEDED, "dry run: prepared, nothing switched")
        return UpdateResult(run, plan)
    outcome.begin(run)
    new_release = releases.Release(tag, root.release(tag), None)  # venv already linked by prepare
    try:
        _backup_and_migrate(root, run, new_release, plan, options.skip_backup)
        # The smoke checks need no live server (an in-process client in the new release), so they run
        # while the switch and reload happen: maintenance ends as soon as both are through.
        smoke = releases.start(root, new_release, "smoke_check")
        try:
            _switch(root, run, new_release)
            _verify(root, run, new_release, smoke)
        finally:
            if smoke.process.poll() is None:
                smoke.process.kill()
    except Exception as error:  # undo whatever happened, whatever went wrong
        cause = f"{type(error).__name__}: {error}" if not isinstance(error, UpdateFailed) else str(error)
        undo(root, run)
        mark_bad(root, tag, cause)
        outcome.conclude(run, journal.ROLLED_BACK, cause, changed=False)
        raise UpdateFailed(
            f"the update to {tag} failed and was rolled back to {old_version}: {cause}"
        ) from error
    maintenance_off(root, run)
    if run.fact("backup"):
        backups.unpin(Path(run.fact("backup")))  # the update no longer depends on it; rotation may take it
    _retention(root, run)
    outcome.conclude(run, journal.SUCCEEDED, changed=True)
    return UpdateResult(run, plan)


def _check_policy(release_plan: planning.Plan, options: Options) -> None:
    """BREAKING needs --allow-breaking; outside the class's window needs --ignore-window."""
    if release_plan.breaking and not options.allow_breaking:
        listed = "; ".join(commit.subject for commit in release_plan.breaking[:5])
        raise UpdateRefused(
            f"{release_plan.target} contains BREAKING changes ({listed}); "
            "read them, then pass --allow-breaking"
        )
    window = release_plan.window
    if not window.open and not options.ignore_window:
        opens = window.next_opens_at
        when = opens.astimezone(policy.zone()).strftime("%a %Y-%m-%d %H:%M %Z") if opens else "never"
        raise UpdateRefused(
            f"{release_plan.target} is classed {window.update_class}; its window ({window.window}) "
            f"is closed and next opens {when}; pass --ignore-window to update now"
        )


def _commit_summary(commit) -> dict:
    return {
        "sha": commit.sha[:12],
        "type": commit.type,
        "subject": commit.subject,
        "breaking": commit.breaking,
    }


@contextmanager
def step(run: journal.Journal, name: str) -> Iterator[None]:
    """Journal a step as started, then as done or failed (with the error), around its work."""
    run.step_started(name)
    try:
        yield
    except BaseException as error:
        run.step_finished(name, "failed", str(error)[:2000])
        raise
    run.step_finished(name)


def _prepare(root: DeploymentRoot, run: journal.Journal, tag: str, old_version: str | None) -> UpdatePlan:
    with step(run, "prepare"):
        wheelhouse = Path(settings.UPDATER_WHEELHOUSE) if settings.UPDATER_WHEELHOUSE else None
        release = releases.prepare(root, tag, wheelhouse=wheelhouse)
        releases.manage(root, release, "check", "--deploy", "--fail-level", "ERROR")
        releases.manage(root, release, "compilemessages", "--ignore=.venv", "-v", "0")
        releases.manage(root, release, "collectstatic", "--noinput", "-v", "0")
        plan_output = releases.manage(root, release, "migrate", "--plan")
        # `migrate --plan` lists each migration as "app.name" at the start of a line, operations indented.
        pending = [line.strip() for line in plan_output.splitlines() if MIGRATION_LINE.match(line)]
        run.record(pending_migrations=pending, venv=str(release.venv.path), venv_reused=release.venv.reused)
    return UpdatePlan(old_version, tag, pending)


def _backup_and_migrate(root, run, release, plan: UpdatePlan, skip_backup: bool) -> None:
    if plan.pending_migrations:
        maintenance_on(root, run, f"update to {plan.to_version}")
    if not skip_backup or plan.pending_migrations:
        with step(run, "backup"):
            result = backups.create_backup(output=root.backups, reason=f"before update to {plan.to_version}")
            backups.pin(result.path, f"update {run.data['id']} to {plan.to_version}")
            run.record(backup=result.path)
    if plan.pending_migrations:
        with step(run, "migrate"):
            run.record(migrate_started=True)
            releases.manage(root, release, "migrate", "--noinput")


def _switch(root, run, release) -> None:
    with step(run, "switch"):
        run.record(switched_from=root.current_release())  # before the switch: a kill right after it is undone
        layout.switch(root, release.path)
        run.record(switched=True)
        reload_app_server()


def _verify(root, run, release, smoke: releases.Running) -> None:
    with step(run, "verify"):
        if settings.UPDATER_HEALTH_URL:
            wait_for_version(settings.UPDATER_HEALTH_URL, release.tag, settings.UPDATER_HEALTH_TIMEOUT)
        run.record(smoke_checks=smoke.result(timeout=releases.COMMAND_TIMEOUT).strip().splitlines())
    run.record(verified=True)


def reload_app_server() -> None:
    """UPDATER_RELOAD_COMMAND (an argument list, never a shell), or SIGHUP to UPDATER_RELOAD_PIDFILE."""
    if settings.UPDATER_RELOAD_COMMAND:
        result = subprocess.run(shlex.split(settings.UPDATER_RELOAD_COMMAND), capture_output=True, text=True,
                                timeout=120, check=False)  # fmt: skip
        if result.returncode != 0:
            raise UpdateFailed(f"the reload command failed: {(result.stderr or result.stdout).strip()}")
    elif settings.UPDATER_RELOAD_PIDFILE:
        pid = int(Path(settings.UPDATER_RELOAD_PIDFILE).read_text().strip())
        os.kill(pid, signal.SIGHUP)


def wait_for_version(url: str, version: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5)
            seen = response.json().get("version", "?") if response.ok else f"HTTP {response.status_code}"
            if seen == version:
                return
        except (requests.RequestException, ValueError) as error:
            seen = str(error)
        time.sleep(0.5)
    raise UpdateFailed(f"{url} did not report {version} within {timeout:.0f}s (last: {seen})")


def undo(root: DeploymentRoot, run: journal.Journal) -> None:
    """Reverse what the journal says happened: switch back, restore the backup, maintenance off."""
    if run.started("switch"):
        previous = run.fact("switched_from")
        if previous and root.current_release() != Path(previous):
            layout.switch(root, Path(previous))
            try:
                reload_app_server()
            except Exception as error:  # the code is back; a failed reload is reported, not fatal
                run.record(reload_after_undo_failed=str(error))
    if run.started("migrate") and run.fact("backup"):
        backup = Path(run.fact("backup"))
        backups.restore_backup(backup)
        run.record(database_restored_from=backup)
    if run.fact("backup"):
        backups.unpin(Path(run.fact("backup")))
    maintenance_off(root, run)


def maintenance_on(root: DeploymentRoot, run: journal.Journal, reason: str) -> None:
    maintenance.enable(reason, root.maintenance_flag)
    run.record(maintenance_on=True, maintenance_since=time.time())


def maintenance_off(root: DeploymentRoot, run: journal.Journal) -> None:
    """Maintenance off, and how long it lasted (epoch seconds, for reports and the downtime bench)."""
    maintenance.disable(root.maintenance_flag)
    since = run.fact("maintenance_since")
    if since and not run.fact("maintenance_until"):
        now = time.time()
        run.record(maintenance_until=now, maintenance_seconds=round(now - since, 2))


def mark_bad(root: DeploymentRoot, tag: str, reason: str) -> None:
    release = root.release(tag)
    if release.is_dir():
        (release / BAD_MARKER).write_text(reason[:2000] + "\n")


def _check_disk(root: DeploymentRoot) -> None:
    free = shutil.disk_usage(root.path).free
    needed = settings.UPDATER_MIN_FREE_BYTES
    if free < needed:
        raise UpdateRefused(
            f"only {free // 2**20} MB free under {root.path}; an update needs {needed // 2**20} MB"
        )


def _retention(root: DeploymentRoot, run: journal.Journal) -> None:
    """Keep UPDATER_KEEP_RELEASES good releases; never current, previous, or bad ones' evidence."""
    keep = settings.UPDATER_KEEP_RELEASES
    protected = {p for p in (root.current_release(), root.previous_release()) if p}
    candidates = sorted(
        (p for p in root.releases.iterdir() if p.is_dir() and not (p / BAD_MARKER).exists()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = []
    for release in candidates[keep:]:
        if release.resolve() in protected:
            continue
        git_repo.remove_worktree(root.repo, release)
        removed.append(release.name)
    if removed:
        run.record(removed_releases=removed)
