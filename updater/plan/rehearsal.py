"""Rehearsing a release's migrations on a scratch copy of the live database, before anything live
changes (the handbook's "Testowanie Migracji": copy, migrate the copy, check it).

The copy is loaded from the newest verified backup when it is recent (UPDATER_REHEARSAL_BACKUP_AGE)
and holds the schema the live database has now, sparing the live server a dump; otherwise it is
streamed fresh from the live database by the same engines that make backups (SQLite's online backup
API; mariadb-dump). On MariaDB it is a database `<name>_rehearsal` on the same server, which the
account must be allowed to create. The target release's own code migrates the copy, pointed at it
by DATABASE_NAME, and checks it refuses to start on anything else first; then `migrate --check` and
the engine's integrity check run on the copy, which is dropped whatever happened (a killed run's copy
is dropped by the next rehearsal, or by `rollback --recover` undoing this step).

What it measured is kept per target (shared/rehearsals/<tag>.json) for the plan's downtime estimate.
"""

import json
import re
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, connections

from updater.backup import backups, rotation
from updater.backup.engines import engine_for
from updater.backup.engines.base import EngineError
from updater.backup.manifest import BackupError, BackupInvalid, verify_backup
from updater.layout import DeploymentRoot
from updater.release import releases
from updater.run import faults
from updater.run.files import write_atomically

ALIAS = "rehearsal"
SUFFIX = "_rehearsal"
# Run by the target release: migrate the copy (verbosity 2 prints each migration's time), then check.
SCRIPT = """
import sys
from django.conf import settings
from django.core.management import call_command
if str(settings.DATABASES["default"]["NAME"]) != {scratch!r}:
    sys.exit("this release does not honour DATABASE_NAME: refusing to migrate anything")
call_command("migrate", interactive=False, verbosity=2)
call_command("migrate", check_unapplied=True, verbosity=0)
"""
APPLYING = re.compile(r"^\s*Applying (\S+)\.\.\.(?: OK \(([\d.]+)s\))?", re.M)


class RehearsalError(Exception):
    """The rehearsal could not be held (no privilege to create the copy, no space): nothing is known."""


class RehearsalFailed(Exception):
    """A migration failed on the copy: it would fail on the live database too."""

    def __init__(self, migration: str | None, error: str) -> None:
        self.migration, self.error = migration, error
        where = f"migration {migration}" if migration else "the migrations"
        super().__init__(f"{where} failed when rehearsed on a copy of the live database: {error}")


@dataclass(frozen=True)
class Rehearsal:
    target: str
    current: str | None
    migrations: dict[str, float]  # name -> seconds, as applied on the copy
    copied_bytes: int
    at: str  # ISO 8601, UTC
    copied_from: str = "the live database"  # or "backup <file>, taken <when>"

    @property
    def seconds(self) -> float:
        return sum(self.migrations.values())

    def source(self) -> str:
        """'rehearsed 2026-11-27 on a copy of 1.2 GB', for the plan."""
        return f"rehearsed {self.at[:10]} on a copy of {_size(self.copied_bytes)} from {self.copied_from}"


def rehearse(root: DeploymentRoot, release: releases.Release, current: str | None) -> Rehearsal:
    """Copy the live database, migrate the copy with `release`'s code, check it, drop it."""
    recent = recent_backup(root.backups, settings.UPDATER_REHEARSAL_BACKUP_AGE)
    with scratch_copy(recent) as (scratch, copied):
        running = releases.start(
            root,
            release,
            "shell",
            "--no-imports",
            "-c",
            SCRIPT.format(scratch=scratch),
            environment={"DATABASE_NAME": scratch},
        )
        try:
            output, errors = running.process.communicate(timeout=releases.COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.communicate()
            raise RehearsalError(f"the rehearsal took longer than {releases.COMMAND_TIMEOUT} s") from None
        finally:
            if running.process.poll() is None:  # interrupted: the copy is about to be dropped under it
                running.process.kill()
                running.process.communicate()
        if running.process.returncode != 0:
            raise RehearsalFailed(_failing_migration(output), _last_line(errors or output))
        problems = engine_for(ALIAS).integrity_problems()
        if problems:
            raise RehearsalFailed(None, "integrity check of the migrated copy: " + "; ".join(problems[:5]))
    timings = migration_timings(output)
    copied_from = (
        f"backup {recent.path.name}, taken {recent.manifest.finished_at}" if recent else "the live database"
    )
    at = datetime.now(UTC).isoformat(timespec="seconds")
    result = Rehearsal(release.tag, current, timings, copied, at, copied_from)
    save(root, result)
    return result


def recent_backup(
    directory: Path, max_age_seconds: float, alias: str = "default"
) -> backups.BackupResult | None:
    """The backup a rehearsal may copy instead of the live database: the newest of this database taken
    less than max_age_seconds ago at the schema it has now (the same applied migrations), verified
    against its manifest; None when there is none."""
    engine = engine_for(alias)
    if max_age_seconds <= 0 or not Path(directory).is_dir():
        return None
    state = backups.migration_state(alias)
    now = datetime.now(UTC)
    for path, manifest in rotation.list_backups(directory, engine.database):
        age = (now - datetime.fromisoformat(manifest.finished_at)).total_seconds()
        if age > max_age_seconds:
            return None  # newest first: every other one is older still
        if (
            manifest.vendor == engine.vendor
            and manifest.migrations == state
            and manifest.format in engine.formats
        ):
            try:
                return backups.BackupResult(path, verify_backup(path, dump_only=True))
            except BackupInvalid:
                continue
    return None


@contextmanager
def scratch_copy(backup: backups.BackupResult | None = None):
    """(scratch database name, bytes copied): the live database (or `backup` of it) streamed into a
    scratch database, reachable here as the `rehearsal` alias, dropped afterwards (and before, when a
    killed run left one)."""
    name = scratch_name()
    drop_scratch()
    try:
        _create(name)
        connections.settings[ALIAS] = dict(connection.settings_dict, NAME=name)
        if backup is not None:
            fmt, dump = backup.manifest.format, backups.dump_of(backup)
        else:
            live = engine_for("default")
            fmt = live.formats[0]
            dump = live.iter_dump(fmt)
        copied = 0

        def counted(chunks):
            nonlocal copied
            for chunk in chunks:
                copied += len(chunk)
                yield chunk

        try:
            engine_for(ALIAS).load(counted(dump), fmt)
        except (EngineError, OSError, BackupError) as error:
            raise RehearsalError(f"the live database could not be copied for a rehearsal: {error}") from error
        faults.point("rehearse:during")  # the copy made, not yet migrated
        yield name, copied
    finally:
        drop_scratch()


def check_possible() -> None:
    """Before a run starts: can a scratch copy be made here at all? (RehearsalError if not.)"""
    name = scratch_name()
    if connection.vendor != "sqlite":
        _create(name)
    drop_scratch()


def scratch_name() -> str:
    live = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite":
        path = Path(live)
        return str(path.with_name(f"{path.stem}{SUFFIX}{path.suffix}"))
    if not re.fullmatch(r"[A-Za-z0-9_$]{1,54}", live):
        raise RehearsalError(f"the database name {live!r} cannot be given a rehearsal copy beside it")
    return live + SUFFIX


def scratch_exists() -> bool:
    name = scratch_name()
    if connection.vendor == "sqlite":
        return Path(name).exists()
    with connection.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE %s", [name.replace("_", "\\_")])
        return cursor.fetchone() is not None


def drop_scratch() -> None:
    """Idempotent: no scratch copy left behind, whatever state an earlier run stopped in."""
    if ALIAS in connections.settings:
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]
    name = scratch_name()
    if connection.vendor == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(name + suffix).unlink(missing_ok=True)
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _create(name: str) -> None:
    if connection.vendor == "sqlite":
        return  # the engine's load creates the file
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    except DatabaseError as error:
        user = connection.settings_dict.get("USER") or "the helpdesk's account"
        raise RehearsalError(
            f"cannot create the rehearsal database {name} ({error}); grant it with "
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'<host>', or set UPDATER_REHEARSE=False"
        ) from error


def save(root: DeploymentRoot, result: Rehearsal) -> None:
    root.rehearsals.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(result), indent=2) + "\n"
    write_atomically(root.rehearsals / f"{result.target}.json", text.encode(), mode=0o640)


def load(root: DeploymentRoot, target: str, current: str | None) -> Rehearsal | None:
    """The rehearsal of `target` made from the release now current (one from elsewhere says nothing)."""
    path = root.rehearsals / f"{target}.json"
    try:
        result = Rehearsal(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return result if result.current == current else None


def migration_timings(output: str) -> dict[str, float]:
    """{migration: seconds} from the output of `migrate --verbosity 2`."""
    return {name: float(seconds) for name, seconds in APPLYING.findall(output) if seconds}


def _failing_migration(output: str) -> str | None:
    started = [name for name, seconds in APPLYING.findall(output) if not seconds]
    return started[-1] if started else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
