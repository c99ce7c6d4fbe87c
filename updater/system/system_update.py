"""update_system: operating-system packages under the same lock, journal, policy, report and
notifications as application updates (the handbook's third procedure, without its manual steps).

1. interrupted dpkg state is repaired first (`dpkg --configure -a`);
2. what can be upgraded, with origins and versions, and what is held back and why; the update class
   (critical for security origins, important for web server / database / Python packages, routine
   otherwise) and its window;
3. /etc (tar.gz, 0600, manifest) and the database are backed up;
4. the upgrade runs non-interactively, keeping existing configuration files, with a timeout;
5. services shipped by upgraded packages are restarted, databases before web servers; release venvs
   are rebuilt when the Python minor version changed; the app server is reloaded; a pending reboot is
   reported (never performed);
6. verify: MONITORED_SERVICES active, the health URL answers, the smoke checks pass.
Packages cannot be downgraded safely, so a failure is reported (exit 1) with the /etc backup to
restore from, rather than undone.
"""

import hashlib
import json
import os
import socket
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from django.conf import settings

from updater import layout
from updater.backup import backups
from updater.errors import UpdateFailed, UpdateRefused
from updater.notify import outcome
from updater.plan import policy
from updater.release import venvs
from updater.release.reload import reload_app_server
from updater.release.smoke import run_smoke_checks
from updater.run import executor, journal, locks
from updater.run.files import fsync_directory, write_atomically
from updater.run.steps import Procedure, Step
from updater.system import apt, services
from updater.system.apt import AptError, Held, Upgrade

COMMAND = "update_system"
_CLASS_RANK = {policy.ROUTINE: 0, policy.IMPORTANT: 1, policy.CRITICAL: 2}


@dataclass(frozen=True)
class SystemOptions:
    security_only: bool = False
    packages: tuple[str, ...] = ()
    dry_run: bool = False
    ignore_window: bool = False
    refresh: bool = True


@dataclass
class SystemPlan:
    upgrades: list[Upgrade]
    held: list[Held]
    update_class: str
    window: policy.WindowState
    interrupted: str = ""


@dataclass
class SystemResult:
    plan: SystemPlan
    repaired: str = ""
    run: journal.Journal | None = None
    facts: dict = field(default_factory=dict)


def plan_system(options: SystemOptions) -> SystemPlan:
    apt.validate_names(list(options.packages))
    if options.refresh:
        apt.refresh()
    upgrades, held = apt.upgradable()
    if options.security_only:
        upgrades = [u for u in upgrades if u.security]
    if options.packages:
        upgrades = [u for u in upgrades if u.name in options.packages]
        held = [h for h in held if h.name in options.packages]
    update_class = max(
        (u.update_class for u in upgrades), key=_CLASS_RANK.__getitem__, default=policy.ROUTINE
    )
    return SystemPlan(upgrades, held, update_class, policy.window_state(update_class), apt.interrupted())


def update_system(options: SystemOptions) -> SystemResult:
    with locks.exclusive(layout.state().lock_file, "update_system"):
        return _locked(options)


def _locked(options: SystemOptions) -> SystemResult:
    updates = layout.state().updates
    journal.refuse_if_unfinished(updates)
    repaired = ""
    if not options.dry_run and apt.interrupted():
        try:
            repaired = apt.repair() or "dpkg --configure -a finished"
        except AptError as error:
            raise UpdateFailed(f"dpkg was left interrupted and could not be repaired: {error}") from error
    try:
        plan = plan_system(options)
    except AptError as error:
        raise UpdateRefused(f"the upgrade could not be planned: {error}") from error
    result = SystemResult(plan, repaired)
    if options.dry_run or not plan.upgrades:
        return result
    if not plan.window.open and not options.ignore_window:
        raise UpdateRefused(
            f"the upgrade {policy.window_closed(plan.window)}; pass --ignore-window to upgrade now"
        )
    names = [u.name for u in plan.upgrades]
    run = journal.Journal.start(updates, COMMAND, None, f"{len(names)} system package(s)")
    result.run = run
    run.record(
        update_class=plan.update_class,
        packages=[f"{u.name} {u.installed} -> {u.candidate} ({u.origins})" for u in plan.upgrades],
        package_names=names,
        held_back=[f"{h.name}: {h.reason}" for h in plan.held],
        dpkg_repaired=repaired or None,
    )
    outcome.begin(run)

    def failure(undone: executor.Undone) -> str:
        where = run.fact("etc_backup")
        hint = f"; /etc was saved to {where}" if where else ""
        return f"the system upgrade failed: {undone.cause}{hint}"

    executor.execute(run, steps(run), failure)
    result.facts = run.data["facts"]
    return result


def steps(run: journal.Journal) -> Procedure:
    """Backup, upgrade (cannot be undone: packages are not downgraded), restart, verify."""

    def backup(run: journal.Journal) -> None:
        run.record(etc_backup=backup_etc(Path(settings.SYSTEM_ETC_DIR), layout.state().backups))
        run.record(backup=backups.create_backup(reason="before update_system").path)

    def upgrade(run: journal.Journal) -> None:
        output = apt.upgrade(run.fact("package_names"))
        run.record(apt_output_tail=output.strip().splitlines()[-20:])

    def restart(run: journal.Journal) -> None:
        _restart(run, run.fact("package_names"))
        reboot = Path(settings.SYSTEM_REBOOT_FLAG)
        if reboot.exists():
            packages_file = Path(str(reboot) + ".pkgs")
            needed_by = packages_file.read_text().split() if packages_file.exists() else []
            run.record(reboot_required=needed_by or True)

    def cannot_undo(run: journal.Journal) -> str:
        where = run.fact("etc_backup")
        return f"; packages are not downgraded: /etc was saved to {where}" if where else ""

    return Procedure(
        COMMAND,
        (
            Step("backup", backup, lambda run: None, touches_live=False),
            Step("upgrade", upgrade, None),
            Step("restart", restart, None),
            Step("verify", _verify, lambda run: None, completes=True),
        ),
        cannot_undo=cannot_undo,
    )


def _restart(run: journal.Journal, names: list[str]) -> None:
    units = apt.units_of(names)
    if units and services.systemd_running():
        for unit in units:
            services.restart(unit)
        run.record(restarted=units)
    elif units:
        run.record(not_restarted=units, restart_note="systemd is not running here")
    rebuilt = rebuild_venv_if_python_changed()
    if rebuilt:
        run.record(venv_rebuilt=rebuilt)
    reload_app_server()  # the app server picks up upgraded libraries (and a rebuilt venv)


def _verify(run: journal.Journal) -> None:
    if settings.MONITORED_SERVICES and services.systemd_running():
        states = services.probe_services(settings.MONITORED_SERVICES)
        down = {name: state for name, state in states.items() if state != "active"}
        if down:
            raise RuntimeError(f"services not active after the upgrade: {down}")
        run.record(services=states)
    if settings.UPDATER_HEALTH_URL:
        response = requests.get(settings.UPDATER_HEALTH_URL, timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"{settings.UPDATER_HEALTH_URL} answered HTTP {response.status_code}")
    run.record(smoke_checks=run_smoke_checks())


def backup_etc(source: Path, directory: Path) -> Path:
    """source as tar.gz (tmp + fsync + rename, 0600) and a manifest; unreadable files are skipped, listed."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = directory / f"etc-{socket.gethostname()}-{stamp}.tar.gz"
    temporary = target.with_name(f".{target.name}.tmp")
    skipped: list[str] = []

    def readable(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        path = source.parent / info.name
        if info.isfile() and not os.access(path, os.R_OK):
            skipped.append(info.name)
            return None
        return None if not (info.isfile() or info.isdir() or info.issym()) else info

    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as archive:
            archive.add(source, arcname=source.name, filter=readable)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(temporary, target)
    fsync_directory(directory)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    manifest = {
        "file": target.name,
        "source": str(source),
        "sha256": digest,
        "size": target.stat().st_size,
        "created_at": stamp,
        "skipped": skipped,
    }
    write_atomically(
        target.with_name(target.name + ".manifest.json"), json.dumps(manifest, indent=2).encode()
    )
    return target


def rebuild_venv_if_python_changed() -> list[str]:
    """When the system Python's minor version moved under the release venvs, build them again for the
    new one (venvs are keyed by requirements and Python version) and link them, before the app server
    reloads — the current release, and the previous one so that a rollback still has a working venv."""
    try:
        root = layout.find_root()
    except layout.NotADeployment:
        return []
    wheelhouse = Path(settings.UPDATER_WHEELHOUSE) if settings.UPDATER_WHEELHOUSE else None
    rebuilt = []
    for release in filter(None, (root.current_release(), root.previous_release())):
        venv_config = release / ".venv" / "pyvenv.cfg"
        changed = python_changed(venv_config) if venv_config.exists() else None
        if not changed:
            continue
        base_python, old, new = changed
        venv = venvs.ensure_venv(
            root.venvs, release / "requirements.txt", python=base_python, wheelhouse=wheelhouse
        )
        venvs.link(release, venv)
        rebuilt.append(f"{release.name}: Python {old} -> {new}, {venv.path}")
    return rebuilt


def python_changed(venv_config: Path) -> tuple[str, str, str] | None:
    """(base interpreter, old minor, new minor) when the venv was made for another minor version."""
    values = dict(line.split("=", 1) for line in venv_config.read_text().splitlines() if "=" in line)
    values = {key.strip(): value.strip() for key, value in values.items()}
    home, version = values.get("home", ""), values.get("version", values.get("version_info", ""))
    base = Path(home) / "python3"
    if not version or not base.exists():
        return None
    old = ".".join(version.split(".")[:2])
    now = venvs.python_minor(str(base))
    return (str(base), old, now) if now != old else None


def describe(plan: SystemPlan, *, dry_run: bool = True) -> str:
    """The plan as text for update_system and update_plan --system."""
    lines = []
    if plan.interrupted:
        lines.append(
            "dpkg was interrupted; update_system repairs it (dpkg --configure -a) before anything else:"
        )
        lines.append("  " + plan.interrupted.splitlines()[0])
    if plan.upgrades:
        verb = "Would upgrade" if dry_run else "Upgrading"
        window = f"window {plan.window.window}: {'open' if plan.window.open else 'closed'}"
        lines.append(f"{verb} {len(plan.upgrades)} package(s), class {plan.update_class} ({window}):")
        lines += [
            f"  {u.name} {u.installed} -> {u.candidate}  [{u.update_class}; {u.origins}]"
            for u in plan.upgrades
        ]
    else:
        lines.append("No package to upgrade.")
    for held in plan.held:
        lines.append(f"Held back: {held.name}: {held.reason}")
    return "\n".join(lines)
