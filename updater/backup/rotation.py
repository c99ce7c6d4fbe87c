"""Pins and rotation: a pinned backup is one a run depends on (an update's pre-migration backup, a
restore's safety net), which rotation never deletes; rotation keeps the newest verified backups."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from updater.backup import media
from updater.backup.manifest import NAME_PATTERN, BackupError, BackupInvalid, Manifest, manifest_path
from updater.run.files import write_atomically

PIN_SUFFIX = ".pin"


@contextmanager
def pinned(backup: Path, reason: str) -> Iterator[None]:
    """Protect a backup from rotation while something depends on it."""
    pin(backup, reason)
    try:
        yield
    finally:
        unpin(backup)


def pin(backup: Path, reason: str) -> None:
    write_atomically(
        backup.with_name(backup.name + PIN_SUFFIX),
        json.dumps({"reason": reason, "pid": os.getpid()}).encode(),
    )


def unpin(backup: Path) -> None:
    with suppress(FileNotFoundError):
        backup.with_name(backup.name + PIN_SUFFIX).unlink()


def is_pinned(backup: Path) -> bool:
    return backup.with_name(backup.name + PIN_SUFFIX).exists()


def list_backups(directory: Path, database: str | None = None) -> list[tuple[Path, Manifest]]:
    """Our backups in a directory, newest first: by our name pattern and a readable manifest only."""
    found = []
    for path in Path(directory).iterdir():
        match = NAME_PATTERN.match(path.name)
        if not match or not path.is_file() or path.is_symlink():
            continue
        try:
            manifest = Manifest.read(path)
        except BackupInvalid:
            continue
        if manifest.file != path.name or (database is not None and manifest.database != database):
            continue
        found.append((path, manifest))
    return sorted(found, key=lambda item: item[0].name, reverse=True)


def rotate_backups(directory: Path, database: str, keep: int) -> list[Path]:
    """Keep the newest `keep` verified backups of `database`; never touch pinned ones or `latest`."""
    if keep < 1:
        raise BackupError("--rotate must keep at least 1 backup")
    directory = Path(directory)
    protected = {link.resolve() for link in directory.glob("latest.*") if link.is_symlink()}
    verified = [(path, m) for path, m in list_backups(directory, database) if m.verified_at]
    removed = []
    for path, _manifest in verified[keep:]:
        if is_pinned(path) or path.resolve() in protected:
            continue
        path.unlink()
        manifest_path(path).unlink(missing_ok=True)
        media.listing_path(path).unlink(missing_ok=True)
        removed.append(path)
    if removed:
        media.collect_garbage(directory)  # stored files no remaining backup lists
    return removed
