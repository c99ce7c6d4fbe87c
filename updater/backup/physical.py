"""A MariaDB data directory prepared from a physical backup set (`backup_database --format mariabackup`).

A physical backup is never loaded into the running server: it becomes a data directory that the
server is started on. Here the set is verified, its stream unpacked (`mbstream -x`) into an empty
directory and made consistent (`mariadb-backup --prepare`, which applies the redo log copied during
the backup). Putting that directory in place needs the server stopped and root on the database
host, so it is left to the operator, with the steps spelled out (`next_steps`). Any failure removes
what was unpacked: the directory is either ready or absent (or empty, when it was given empty).
"""

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from updater.backup import backups, compression
from updater.backup.engines import ENGINES, EngineError, mariabackup
from updater.backup.engines.base import tool_environment
from updater.backup.manifest import BackupError, ChangedSinceVerified, Manifest, verify_backup


@dataclass(frozen=True)
class PreparedDatadir:
    directory: Path
    backup: Path
    manifest: Manifest
    bytes: int
    seconds: float


def is_physical(manifest: Manifest) -> bool:
    return manifest.vendor in ENGINES and manifest.format in ENGINES[manifest.vendor].physical_formats


def prepare_datadir(path: Path, target: Path, *, verified: Manifest | None = None) -> PreparedDatadir:
    """verified: the caller has just verified the set (its database half is read and checked again
    while it is unpacked)."""
    path = Path(path).resolve()
    target = Path(target).absolute()
    manifest = verified or verify_backup(path, dump_only=True)  # its media files are not needed here
    if not is_physical(manifest):
        raise BackupError(
            f"{path.name} is a logical dump ({manifest.format}), not a physical backup: restore it with "
            f"restore_database {path.name}"
        )
    try:
        _refuse_other_version(manifest)
    except EngineError as error:
        raise BackupError(str(error)) from error
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not an empty directory; nothing was written to it")
    created = not target.exists()
    clock = time.monotonic()
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        _unpack(path, manifest, target)
        _prepare(target)
    except BaseException as error:
        _clear(target, remove=created)
        if isinstance(error, EngineError | OSError | ChangedSinceVerified | compression.TruncatedStream):
            cleared = f"preparing {target} from {path.name} failed and it was cleared"
            raise BackupError(f"{cleared}: {error}") from error
        raise
    size = sum(file.stat().st_size for file in target.rglob("*") if file.is_file())
    return PreparedDatadir(target, path, manifest, size, round(time.monotonic() - clock, 3))


def next_steps(prepared: PreparedDatadir, datadir: str = "/var/lib/mysql") -> list[str]:
    """What the operator runs on the database host to start the server on the prepared directory."""
    return [
        "systemctl stop mariadb",
        f"mv {datadir} {datadir}.before-restore",
        f"mariadb-backup --move-back --target-dir={prepared.directory}",
        f"chown -R mysql:mysql {datadir}",
        "systemctl start mariadb",
        f"manage.py restore_database {prepared.backup} --media-only --no-input",
    ]


def _refuse_other_version(manifest: Manifest) -> None:
    """mariadb-backup prepares only what its own release series wrote (the redo log format changes)."""
    wanted = _series(manifest.server_version)
    have = mariabackup.tool_version()
    if _series(have) != wanted:
        raise BackupError(
            f"the backup was taken from MariaDB {manifest.server_version}; this {mariabackup.TOOL} is "
            f"{have}: prepare it with {mariabackup.TOOL} {wanted}.x"
        )


def _series(version: str) -> str:
    return ".".join(version.split("-")[0].split(".")[:2])


def _unpack(path: Path, manifest: Manifest, target: Path) -> None:
    """The stream is decompressed into mbstream as it is read; the bytes read are checked against the
    manifest again at the end (a file swapped after verification fails here, not silently)."""
    unpacker = mariabackup.tool("mbstream")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [unpacker, "-x", "-C", str(target)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=tool_environment(),
        )
        try:
            for chunk in backups.dump_of(backups.BackupResult(path, manifest)):
                process.stdin.write(chunk)
            process.stdin.close()
            returncode = process.wait()
        except BrokenPipeError:
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if returncode != 0:
            raise EngineError(f"mbstream failed (exit {returncode}): {mariabackup.failure_lines(log)}")


def _prepare(target: Path) -> None:
    with tempfile.TemporaryFile() as log:
        result = subprocess.run(
            [mariabackup.tool(), "--prepare", f"--target-dir={target}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=tool_environment(),
            check=False,
        )
        if result.returncode != 0:
            raise EngineError(
                f"{mariabackup.TOOL} --prepare failed (exit {result.returncode}): "
                f"{mariabackup.failure_lines(log)}"
            )


def _clear(target: Path, *, remove: bool) -> None:
    if remove:
        shutil.rmtree(target, ignore_errors=True)
        return
    for entry in target.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
