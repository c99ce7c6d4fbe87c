"""The media half of a backup set: the files under MEDIA_ROOT (customers' attachments).

Files are stored once, by content: `<backup folder>/media-objects/ab/<sha256>` (mode 0600). Each backup
gets a listing beside its dump, `<dump name>.media.json`: every file's path, size, sha256 and mtime,
and the manifest holds the listing's own sha256, so the listing cannot be altered unnoticed either.
A file whose size and mtime are those of the previous listing is not read again (as rsync and restic
do), and an object already in the store is never copied twice: the second backup of unchanged media
reads nothing but directory entries.

Consistency with the dump: the files are listed after the dump ends, and an upload writes its file
before it commits its row, so every row in the dump has its file in the listing. A file in the listing
whose row is not in the dump (an upload during the dump) is not restored: a restore puts back exactly
the files that the restored rows refer to (`referenced_files`), so a row and its file come back both
or neither. Live files that do not belong are moved to a quarantine folder, never deleted.
"""

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import FileField

from crm.storage import media_group_id
from updater.backup.errors import BackupInvalid, ChangedSinceVerified
from updater.run import faults
from updater.run.files import fsync_directory, write_atomically

LISTING_SUFFIX = ".media.json"
STORE = "media-objects"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class MediaFile:
    path: str  # relative to MEDIA_ROOT, with "/" between folders (as FileField names are)
    size: int
    sha256: str
    mtime_ns: int


@dataclass(frozen=True)
class Taken:
    """What taking the media half of a backup did."""

    listing_sha256: str
    files: int
    bytes: int
    copied_files: int  # new content written to the store in this run
    copied_bytes: int
    new_objects: frozenset[str]


@dataclass(frozen=True)
class Restored:
    restored: int = 0  # files written from the backup set
    unchanged: int = 0  # already there with the right content
    quarantined: list[str] = field(default_factory=list)  # live files moved aside, relative paths
    quarantine: Path | None = None
    missing: list[str] = field(default_factory=list)  # referred to by a row, but not in the set


def listing_path(backup: Path) -> Path:
    return backup.with_name(backup.name + LISTING_SUFFIX)


def store_of(backup: Path) -> Path:
    return backup.parent / STORE


def object_path(store: Path, sha256: str) -> Path:
    return store / sha256[:2] / sha256


# --- take ----------------------------------------------------------------------------------------


def take(media_root: Path, backup: Path, previous: Path | None = None) -> Taken:
    """Store every file under media_root that the store lacks and write the backup's listing.
    previous: an earlier backup in the same folder whose listing may vouch for unchanged files."""
    store = store_of(backup)
    store.mkdir(mode=0o700, exist_ok=True)
    known = {entry.path: entry for entry in _read_listing_unchecked(previous)} if previous else {}
    entries: list[MediaFile] = []
    copied = copied_bytes = 0
    new_objects: set[str] = set()
    with _store_lock(store, fcntl.LOCK_SH):
        for relative, path, stat in _walk(Path(media_root)):
            before = known.get(relative)
            if (
                before is not None
                and before.size == stat.st_size
                and before.mtime_ns == stat.st_mtime_ns
                and _has_object(store, before.sha256, before.size)
            ):
                entries.append(before)
                continue
            try:
                sha256, size, written = _store_file(path, store)
            except FileNotFoundError:
                continue  # deleted while we walked: its row, if any, is gone or going too
            entries.append(MediaFile(relative, size, sha256, stat.st_mtime_ns))
            if written:
                copied += 1
                copied_bytes += size
                new_objects.add(sha256)
    data = json.dumps(
        {"version": 1, "files": [[e.path, e.size, e.sha256, e.mtime_ns] for e in entries]},
        separators=(",", ":"),
    ).encode()
    write_atomically(listing_path(backup), data)
    return Taken(
        hashlib.sha256(data).hexdigest(),
        len(entries),
        sum(entry.size for entry in entries),
        copied,
        copied_bytes,
        frozenset(new_objects),
    )


def _walk(media_root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Regular files under media_root, sorted; symlinks are not followed (they point outside)."""
    if not media_root.is_dir():
        return
    for folder, directories, files in os.walk(media_root):
        directories.sort()
        for name in sorted(files):
            path = Path(folder) / name
            try:
                stat = path.lstat()
            except FileNotFoundError:
                continue
            if not path.is_symlink() and stat.st_mode & 0o170000 == 0o100000:
                yield path.relative_to(media_root).as_posix(), path, stat


def _store_file(path: Path, store: Path) -> tuple[str, int, bool]:
    """Copy a file into the store under its sha256; (sha256, size, whether new content was written)."""
    digest = hashlib.sha256()
    size = 0
    temporary = store / f".incoming-{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with path.open("rb") as source, os.fdopen(fd, "wb") as target:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                target.write(chunk)
                size += len(chunk)
            target.flush()
            os.fsync(target.fileno())
        sha256 = digest.hexdigest()
        final = object_path(store, sha256)
        if _has_object(store, sha256, size):
            temporary.unlink()
            return sha256, size, False
        final.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(temporary, final)
        fsync_directory(final.parent)
        return sha256, size, True
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _has_object(store: Path, sha256: str, size: int) -> bool:
    try:
        return object_path(store, sha256).stat().st_size == size
    except FileNotFoundError:
        return False


@contextmanager
def _store_lock(store: Path, kind: int) -> Iterator[None]:
    """Backups (shared) against garbage collection (exclusive): an object a running backup has just
    vouched for is never removed under it, whichever database that backup is of."""
    fd = os.open(store / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, kind)
        yield
    finally:
        os.close(fd)


# --- read and verify ----------------------------------------------------------------------------


def read_listing(backup: Path, sha256: str) -> list[MediaFile]:
    """The backup's listing, checked against the digest its manifest holds; or BackupInvalid."""
    path = listing_path(backup)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BackupInvalid(f"{backup.name} has no media listing ({path.name})") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BackupInvalid(f"the media listing of {backup.name} does not match its manifest: it was altered")
    return _parse(data, backup)


def _read_listing_unchecked(backup: Path) -> list[MediaFile]:
    try:
        return _parse(listing_path(backup).read_bytes(), backup)
    except (FileNotFoundError, BackupInvalid):
        return []


def _parse(data: bytes, backup: Path) -> list[MediaFile]:
    try:
        entries = [MediaFile(str(p), int(s), str(h), int(m)) for p, s, h, m in json.loads(data)["files"]]
    except (ValueError, TypeError, KeyError) as error:
        raise BackupInvalid(f"the media listing of {backup.name} is unreadable: {error}") from None
    for entry in entries:
        if not _safe_relative(entry.path):
            raise BackupInvalid(
                f"the media listing of {backup.name} names a path outside MEDIA_ROOT: {entry.path!r}"
            )
    return entries


def _safe_relative(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts and "\\" not in path


def verify(backup: Path, listing_sha256: str, reread: Collection[str] | None = None) -> list[MediaFile]:
    """Every listed file is in the store with its size; its content is hashed again for the objects in
    `reread` (None: all of them). A missing, truncated or altered file is BackupInvalid."""
    entries = read_listing(backup, listing_sha256)
    store = store_of(backup)
    checked: set[str] = set()
    for entry in entries:
        path = object_path(store, entry.sha256)
        where = f"media file {entry.path} of {backup.name}"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise BackupInvalid(f"{where} is missing from {STORE}/") from None
        if size != entry.size:
            raise BackupInvalid(f"{where} is {size} bytes, listed as {entry.size}: truncated or altered")
        if entry.sha256 in checked or (reread is not None and entry.sha256 not in reread):
            continue
        if _sha256_of(path) != entry.sha256:
            raise BackupInvalid(f"{where} does not match its checksum: it was altered")
        checked.add(entry.sha256)
    return entries


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- restore -------------------------------------------------------------------------------------


def referenced_files(alias: str = "default") -> set[str] | None:
    """The names every FileField of every model holds in the database, or None when the database
    cannot say (a schema this code does not match): then the whole listing is restored."""
    connection = connections[alias]
    connection.close()  # the database was just replaced: no connection may keep an old view
    names: set[str] = set()
    try:
        for model in apps.get_models():
            for model_field in model._meta.concrete_fields:
                if isinstance(model_field, FileField):
                    values = model._base_manager.using(alias).values_list(model_field.attname, flat=True)
                    names.update(name for name in values.distinct() if name)
    except DatabaseError:
        return None
    return names


def restore(
    backup: Path,
    entries: list[MediaFile],
    media_root: Path,
    quarantine: Path,
    wanted: set[str] | None,
) -> Restored:
    """Make media_root hold exactly the listed files that `wanted` names (all listed when None), from
    the store; live files that do not belong, or differ, are moved under `quarantine` first."""
    store = store_of(backup)
    media_root = Path(media_root)
    chosen = {entry.path: entry for entry in entries if wanted is None or entry.path in wanted}
    missing = sorted(wanted - {entry.path for entry in entries}) if wanted is not None else []
    quarantined: list[str] = []
    unchanged: set[str] = set()
    for relative, path, stat in list(_walk(media_root)):
        entry = chosen.get(relative)
        if entry is not None and entry.size == stat.st_size and _sha256_of(path) == entry.sha256:
            unchanged.add(relative)
            continue
        _move_aside(path, quarantine / relative)
        quarantined.append(relative)
    restored = 0
    for relative, entry in sorted(chosen.items()):
        if relative not in unchanged:
            _copy_out(object_path(store, entry.sha256), entry.sha256, media_root, relative)
            restored += 1
            if restored == 1:
                faults.point("restore files:during")  # files moved aside, some written back
    return Restored(restored, len(unchanged), quarantined, quarantine if quarantined else None, missing)


def _move_aside(path: Path, destination: Path) -> None:
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.move(path, destination)


def _copy_out(source: Path, sha256: str, media_root: Path, relative: str) -> None:
    """Write one file back as an upload would have (its modes, FILE_UPLOAD_*, and MEDIA_GROUP), checking
    its content on the way: a stored file altered after the set was verified is not put in place."""
    target = media_root / relative
    gid = media_group_id()
    _make_folders(media_root, target.parent, settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS or 0o750, gid)
    temporary = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, settings.FILE_UPLOAD_PERMISSIONS or 0o640
        )
        with source.open("rb") as reader, os.fdopen(fd, "wb") as writer:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
        if digest.hexdigest() != sha256:
            raise ChangedSinceVerified(
                f"the stored copy of media file {relative} changed after it was verified"
            )
        os.chmod(temporary, settings.FILE_UPLOAD_PERMISSIONS or 0o640)
        if gid is not None:
            os.chown(temporary, -1, gid)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _make_folders(media_root: Path, folder: Path, mode: int, gid: int | None) -> None:
    media_root.mkdir(parents=True, exist_ok=True)
    missing = []
    while folder != media_root and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)


def would_set_aside(backup: Path, listing_sha256: str, media_root: Path) -> list[str]:
    """Live files the backup does not hold (added or changed since): what restoring it moves aside."""
    listed = {(entry.path, entry.size) for entry in read_listing(backup, listing_sha256)}
    return [
        relative
        for relative, _path, stat in _walk(Path(media_root))
        if (relative, stat.st_size) not in listed
    ]


# --- garbage -------------------------------------------------------------------------------------


def collect_garbage(directory: Path) -> int:
    """Remove stored objects that no listing in the folder refers to any more; how many went."""
    store = Path(directory) / STORE
    if not store.is_dir():
        return 0
    removed = 0
    with _store_lock(store, fcntl.LOCK_EX):
        referenced = {
            entry.sha256
            for listing in Path(directory).glob(f"*{LISTING_SUFFIX}")
            for entry in _read_listing_unchecked(listing.with_name(listing.name.removesuffix(LISTING_SUFFIX)))
        }
        for folder in store.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name not in referenced:
                    with suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
    return removed


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)
