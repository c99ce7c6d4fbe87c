"""Database backups: create (streamed, compressed, checksummed, atomic), verify, restore, rotate.

A backup is two files in a backup directory: `<database>-<UTC time>.<format>.<gz|zst>`, mode 0600, and
its manifest `<that name>.manifest.json` (sha256, size, vendor, server version, database, app version,
migration state, timings). `latest.<format>.<gz|zst>` points to the newest verified one.

The dump is read in one thread and compressed, hashed and written in another, so that the dump tool
and the compressor run on both cores at once; memory stays flat (a few 1 MiB chunks in flight).
Backup and restore of one database never overlap: both hold the same flock.
"""

import hashlib
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

from helpdesk.version import app_version
from updater import layout
from updater.backup import compression, media
from updater.backup.engines import Engine, EngineError, engine_for
from updater.backup.manifest import (
    BackupBusy,
    BackupError,
    ChangedSinceVerified,
    Manifest,
    PhysicalBackup,
    read_hashing,
    verify_backup,
)
from updater.backup.rotation import list_backups, pinned, rotate_backups
from updater.run import faults, locks
from updater.run.files import fsync_directory

PARTIAL_PATTERN = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")
CHUNKS_IN_FLIGHT = 4
PROGRESS_EVERY = 0.5  # seconds

Progress = Callable[[int, int, float], None]  # raw bytes read, compressed bytes written, seconds


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)
    rotated: list[Path] = field(default_factory=list)
    new_media: frozenset[str] = frozenset()  # contents this backup added to the media store


@dataclass(frozen=True)
class RestoreResult:
    restored: Path
    safety_backup: Path
    table_counts: dict[str, int]
    integrity_problems: list[str]
    media_restore: media.Restored | None = None  # None: the media files were left as they were


def default_directory() -> Path:
    return layout.state().backups


def lock_path(engine: Engine) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", engine.database)
    return default_directory() / f".{engine.vendor}-{safe}.lock"


# --- create --------------------------------------------------------------------------------------


def create_backup(
    *,
    output: Path | None = None,
    fmt: str | None = None,
    compression_kind: str = "gzip",
    rotate: int | None = None,
    reason: str = "",
    progress: Progress | None = None,
    alias: str = "default",
    include_media: bool = True,
) -> BackupResult:
    """Dump the database and store the media files into a new verified backup set; optionally rotate
    older ones afterwards. include_media=False: the database alone."""
    engine = engine_for(alias)
    try:
        with locks.hold(lock_path(engine), command=f"backup of {engine.vendor} database {engine.database}"):
            result = _create_locked(
                engine,
                output,
                fmt,
                compression_kind,
                reason,
                progress,
                point_latest=True,
                with_media=include_media,
            )
            if rotate is not None:
                rotated = rotate_backups(result.path.parent, engine.database, keep=rotate)
                result = replace(result, rotated=rotated)
            return result
    except locks.LockHeld as held:
        raise _busy(held) from None


def _create_locked(
    engine: Engine,
    output: Path | None,
    fmt: str | None,
    compression_kind: str,
    reason: str,
    progress: Progress | None,
    point_latest: bool,
    with_media: bool = True,
) -> BackupResult:
    fmt = fmt or engine.formats[0]
    if fmt not in engine.all_formats():
        raise BackupError(f"{engine.vendor} backups come as {' or '.join(engine.all_formats())}, not {fmt!r}")
    if compression_kind not in compression.SUFFIXES:
        raise BackupError(f"unknown compression {compression_kind!r}: use gzip or zstd")
    started = datetime.now(UTC)
    directory, target = _target(output, engine, fmt, compression_kind, started)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(directory)

    try:
        warnings = engine.clear_left_overs() + [
            f"table {name} is not InnoDB: its dump is not part of the consistent snapshot"
            for name in engine.tables_outside_snapshot(fmt)
        ]
        server_version = engine.server_version()
        migrations = migration_state(engine.alias)
    except DatabaseError as error:
        raise BackupError(f"the database cannot be reached, so no backup was made: {error}") from error
    clock = time.monotonic()
    partial = directory / f".{target.name}.partial-{os.getpid()}"
    try:
        sha256, size, raw_bytes, tail = _write_compressed(
            _prefetched(engine.iter_dump(fmt)), partial, compression_kind, progress, clock
        )
    except (EngineError, OSError) as error:
        with suppress(FileNotFoundError):
            partial.unlink()
        raise BackupError(f"the backup failed and nothing was kept: {error}") from error
    except BaseException:
        with suppress(FileNotFoundError):
            partial.unlink()
        raise
    if not engine.dump_is_complete(fmt, tail):
        partial.unlink()
        raise BackupError("the dump ended without its completion marker; nothing was kept")
    os.replace(partial, target)
    fsync_directory(directory)
    dumped = time.monotonic()
    # After the dump: every row in it has its file on disk by now (an upload saves before it commits).
    taken = _take_media(target, directory) if with_media else None

    finished = datetime.now(UTC)
    manifest = Manifest(
        file=target.name,
        sha256=sha256,
        size=size,
        vendor=engine.vendor,
        server_version=server_version,
        database=engine.database,
        format=fmt,
        compression=compression_kind,
        app_version=app_version(),
        migrations=migrations,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"),
        duration_seconds=round(dumped - clock, 3),
        raw_bytes=raw_bytes,
        reason=reason,
        media_listing_sha256=taken.listing_sha256 if taken else "",
        media_files=taken.files if taken else 0,
        media_bytes=taken.bytes if taken else 0,
        media_seconds=round(time.monotonic() - dumped, 3) if taken else 0.0,
        environment=settings.ENVIRONMENT,
    )
    manifest.write(target)
    # Read back from disk before anyone relies on it; stored files that were already verified in an
    # earlier set are checked for presence and size only.
    manifest = verify_backup(target, media_reread=taken.new_objects if taken else None)
    verified = Manifest(
        **{**asdict(manifest), "verified_at": datetime.now(UTC).isoformat(timespec="seconds")}
    )
    verified.write(target)
    if point_latest:
        _point_latest(target, fmt, compression_kind)
    return BackupResult(target, verified, warnings, new_media=taken.new_objects if taken else frozenset())


def _take_media(target: Path, directory: Path) -> media.Taken:
    earlier = [path for path, manifest in list_backups(directory) if manifest.has_media and path != target]
    try:
        return media.take(media.media_root(), target, earlier[0] if earlier else None)
    except OSError as error:
        target.unlink(missing_ok=True)
        media.listing_path(target).unlink(missing_ok=True)
        raise BackupError(f"storing the media files failed, so no backup was kept: {error}") from error


def _target(output, engine, fmt, compression_kind, started) -> tuple[Path, Path]:
    safe_name = re.sub(
        r"[^A-Za-z0-9_.-]", "_", Path(engine.database).stem if engine.vendor == "sqlite" else engine.database
    )
    name = (
        f"{safe_name}-{started.strftime('%Y%m%dT%H%M%S%fZ')}.{fmt}.{compression.SUFFIXES[compression_kind]}"
    )
    if output is None:
        return default_directory(), default_directory() / name
    output = Path(output)
    if output.is_dir() or str(output).endswith(os.sep):
        return output, output / name
    if output.exists():
        raise BackupError(f"{output} already exists; backups never overwrite a file")
    return output.parent, output


def _prefetched(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Read the dump in its own thread so the dump tool never waits for the compressor."""
    pipe: queue.Queue = queue.Queue(maxsize=CHUNKS_IN_FLIGHT)
    done = object()
    stop = threading.Event()

    def pump() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                pipe.put(chunk)
            pipe.put(done)
        except BaseException as error:  # handed to the consumer, raised there
            pipe.put(error)
        finally:
            if stop.is_set():
                chunks.close()

    reader = threading.Thread(target=pump, name="dump-reader", daemon=True)
    reader.start()
    try:
        while (item := pipe.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with suppress(queue.Empty):
                pipe.get(timeout=0.1)
        reader.join()


def _write_compressed(
    chunks, partial: Path, compression_kind: str, progress, clock
) -> tuple[str, int, int, bytes]:
    digest = hashlib.sha256()
    packer = compression.compressor(compression_kind)
    size = raw = 0
    tail = b""
    last_report = clock
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:

        def emit(data: bytes) -> None:
            nonlocal size
            if data:
                digest.update(data)
                handle.write(data)
                size += len(data)

        for chunk in chunks:
            raw += len(chunk)
            tail = (tail + chunk[-4096:])[-4096:]
            emit(packer.compress(chunk))
            now = time.monotonic()
            if progress and now - last_report >= PROGRESS_EVERY:
                progress(raw, size, now - clock)
                last_report = now
        emit(packer.flush())
        handle.flush()
        os.fsync(handle.fileno())
    if progress:
        progress(raw, size, time.monotonic() - clock)
    return digest.hexdigest(), size, raw, tail


def migration_state(alias: str) -> dict[str, list[str]]:
    """{app: [applied migrations]} of a database, as a backup's manifest records it."""
    recorder = MigrationRecorder(connections[alias])
    if not recorder.has_table():
        return {}
    state: dict[str, list[str]] = {}
    for app, name in sorted(recorder.applied_migrations()):
        state.setdefault(app, []).append(name)
    return state


def _point_latest(target: Path, fmt: str, compression_kind: str) -> None:
    latest = target.with_name(f"latest.{fmt}.{compression.SUFFIXES[compression_kind]}")
    temporary = latest.with_name(f".{latest.name}.new-{os.getpid()}")
    with suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target.name)
    os.replace(temporary, latest)


def _remove_stale_partials(directory: Path) -> None:
    """Temporary files of runs that were killed (kill -9 cannot clean up after itself)."""
    for path in directory.glob(".*.partial-*"):
        match = PARTIAL_PATTERN.match(path.name)
        if match and not _process_alive(int(match["pid"])):
            with suppress(FileNotFoundError):
                path.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- restore -------------------------------------------------------------------------------------


def restore_backup(
    path: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    alias: str = "default",
    safety: Path | None = None,
    database: bool = True,
    media_files: bool = True,
    media_verified: bool = False,
) -> RestoreResult:
    """Verify, take a safety backup (or use `safety`, a verified backup the caller just took), replace
    the database with the backup and make the media files those its rows refer to (live files that do
    not belong are moved to a quarantine folder); put the safety backup back on any error.
    database / media_files: False leaves that half as it is."""
    path = Path(path).resolve()  # `latest` may be repointed while we work; hold on to its target
    # Again, right before use. The content of the stored media files is hashed here unless the caller
    # has just done so (media_verified); it is checked once more as each file is copied back.
    manifest = verify_backup(path, media_reread=() if media_verified else None, dump_only=not media_files)
    engine = engine_for(alias)
    if manifest.vendor != engine.vendor:
        raise BackupError(f"{path.name} is a {manifest.vendor} backup; this database is {engine.vendor}")
    if database and manifest.format in engine.physical_formats:
        raise PhysicalBackup(path.name)
    if manifest.database != engine.database and not force:
        raise BackupError(
            f"{path.name} is a backup of database {manifest.database!r}, not {engine.database!r}; "
            "pass --force to restore it here anyway"
        )
    try:
        with locks.hold(lock_path(engine), command=f"restore of {engine.vendor} database {engine.database}"):
            if safety is not None:
                safety_result = BackupResult(safety, Manifest.read(safety))  # verified when it was taken
            else:
                safety_result = _create_locked(
                    engine,
                    path.parent if path.parent != default_directory() else None,
                    manifest.format if manifest.format in engine.formats else None,
                    "gzip",
                    f"safety net before restoring {path.name}",
                    None,
                    point_latest=False,
                )
            # A safety backup the caller took stays pinned as the caller says; ours only while we work.
            with nullcontext() if safety else pinned(safety_result.path, f"safety net of {path.name}"):
                try:
                    if database:
                        engine.load(
                            _halfway_failpoint(_decompressed(path, manifest, progress)), manifest.format
                        )
                    restored = (
                        _restore_media(path, manifest, alias) if media_files and manifest.has_media else None
                    )
                except (EngineError, OSError, compression.TruncatedStream, ChangedSinceVerified) as error:
                    _put_back(engine, safety_result)
                    raise BackupError(
                        f"restoring {path.name} failed and the database was put back from the safety backup "
                        f"{safety_result.path}: {error}"
                    ) from error
            counts, problems = engine.table_row_counts(), engine.integrity_problems()
            return RestoreResult(path, safety_result.path, counts, problems, restored)
    except locks.LockHeld as held:
        raise _busy(held) from None


def _halfway_failpoint(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`restore:during` fires once the first chunk has been loaded: the database is half replaced."""
    for index, chunk in enumerate(chunks):
        yield chunk
        if index == 0:
            faults.point("restore:during")


def _restore_media(backup: Path, manifest: Manifest, alias: str) -> media.Restored:
    entries = media.read_listing(backup, manifest.media_listing_sha256)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    quarantine = layout.state().quarantine / f"{stamp}-before-{backup.name}"
    return media.restore(backup, entries, media.media_root(), quarantine, media.referenced_files(alias))


def _put_back(engine: Engine, safety: BackupResult) -> None:
    try:
        engine.load(_decompressed(safety.path, safety.manifest, None), safety.manifest.format)
        if safety.manifest.has_media:
            _restore_media(safety.path, safety.manifest, engine.alias)
    except (EngineError, OSError) as error:
        raise BackupError(
            f"the restore failed AND putting back the safety backup {safety.path} failed too: {error}. "
            f"Restore it by hand: manage.py restore_database {safety.path}"
        ) from error


def dump_of(backup: BackupResult) -> Iterator[bytes]:
    """The backup's dump, decompressed as it is read (and checked against its manifest at the end)."""
    return _decompressed(backup.path, backup.manifest, None)


def _decompressed(path: Path, manifest: Manifest, progress: Progress | None) -> Iterator[bytes]:
    """The dump, decompressed while read. The file is read again after its verification (and after the
    safety backup); a file swapped in between is caught here: the digest of the bytes read is compared
    before the stream ends, so the load fails and the caller puts back the safety backup."""
    clock = time.monotonic()
    last = clock
    done = 0
    digest = hashlib.sha256()
    for chunk in compression.decompress(manifest.compression, read_hashing(path, digest)):
        done += len(chunk)
        now = time.monotonic()
        if progress and now - last >= PROGRESS_EVERY:
            progress(done, 0, now - clock)
            last = now
        yield chunk
    if digest.hexdigest() != manifest.sha256:
        raise ChangedSinceVerified(
            f"{path.name} changed after it was verified: it no longer matches its manifest"
        )


def _busy(held: locks.LockHeld) -> BackupBusy:
    who = held.holder.describe() if held.holder else "another process"
    return BackupBusy(
        f"another backup or restore of this database is running ({who}); try again when it ends"
    )
