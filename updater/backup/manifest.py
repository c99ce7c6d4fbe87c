"""What a backup is: its file name, its manifest (sha256, size, vendor, database, app version,
migration state, timings) beside it, its verification against that manifest, and the errors of
backups and restores."""

import hashlib
import json
import re
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from updater.backup import compression, media
from updater.backup.engines import ENGINES, Engine
from updater.backup.errors import BackupBusy, BackupError, BackupInvalid, ChangedSinceVerified, PhysicalBackup
from updater.run.files import write_atomically

__all__ = [
    "BackupBusy",
    "BackupError",
    "BackupInvalid",
    "ChangedSinceVerified",
    "Manifest",
    "PhysicalBackup",
    "verify_backup",
]

MANIFEST_SUFFIX = ".manifest.json"
NAME_PATTERN = re.compile(
    r"^(?P<database>[A-Za-z0-9_.-]+?)-(?P<stamp>\d{8}T\d{6}\d{6}Z)\.(?P<format>sql|sqlite3|mariabackup)\.(?P<ext>gz|zst)$"
)


@dataclass(frozen=True)
class Manifest:
    file: str
    sha256: str
    size: int
    vendor: str
    server_version: str
    database: str
    format: str
    compression: str
    app_version: str
    migrations: dict[str, list[str]]
    started_at: str
    finished_at: str
    duration_seconds: float
    raw_bytes: int
    reason: str = ""
    verified_at: str = ""
    # The media half (updater/backup/media.py); an empty digest: a database-only backup.
    media_listing_sha256: str = ""
    media_files: int = 0
    media_bytes: int = 0
    media_seconds: float = 0.0
    environment: str = ""  # ENVIRONMENT where it was taken: refresh_from_backup wants prod's ("": older sets)

    @property
    def has_media(self) -> bool:
        return bool(self.media_listing_sha256)

    @classmethod
    def read(cls, backup: Path) -> "Manifest":
        path = manifest_path(backup)
        try:
            data = json.loads(path.read_text())
            manifest = cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
        except FileNotFoundError:
            raise BackupInvalid(f"{backup.name} has no manifest ({path.name})") from None
        except (ValueError, TypeError, AttributeError) as error:
            raise BackupInvalid(f"the manifest of {backup.name} is unreadable: {error}") from None
        problem = manifest.defect()
        if problem:
            raise BackupInvalid(f"the manifest of {backup.name} is not valid: {problem}")
        return manifest

    def defect(self) -> str:
        """What is wrong with the manifest's values (a hand-edited or forged manifest), or ""."""
        for name, field in self.__dataclass_fields__.items():
            value = getattr(self, name)
            expected = {str: (str, "text"), int: (int, "whole number"), float: ((int, float), "number")}
            if field.type in expected:
                kind, described = expected[field.type]
                if isinstance(value, bool) or not isinstance(value, kind):
                    return f"{name} is {value!r}, not a {described}"
        if not isinstance(self.migrations, dict):
            return f"migrations is {self.migrations!r}, not a mapping"
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            return f"sha256 is {self.sha256!r}, not a SHA-256 digest"
        if self.media_listing_sha256 and not re.fullmatch(r"[0-9a-f]{64}", self.media_listing_sha256):
            return f"media_listing_sha256 is {self.media_listing_sha256!r}, not a SHA-256 digest"
        if self.size < 0 or self.raw_bytes < 0 or self.media_files < 0 or self.media_bytes < 0:
            return "a size is negative"
        if self.compression not in compression.SUFFIXES:
            return f"unknown compression {self.compression!r} (known: {', '.join(compression.SUFFIXES)})"
        if self.vendor not in ENGINES:
            return f"unknown vendor {self.vendor!r}"
        if self.format not in ENGINES[self.vendor].all_formats():
            return f"format {self.format!r} is not one of {self.vendor}'s"
        return ""

    def write(self, backup: Path) -> None:
        write_atomically(manifest_path(backup), json.dumps(asdict(self), indent=2).encode() + b"\n")


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def verify_backup(
    path: Path, *, media_reread: Collection[str] | None = None, dump_only: bool = False
) -> Manifest:
    """Checksum, size, a complete compressed stream and the dump's completion marker, then the media
    files' listing and store (hashing again only `media_reread` objects when given); or BackupInvalid.
    dump_only: the caller reads the dump alone (a rehearsal's scratch copy)."""
    path = Path(path).resolve() if Path(path).is_symlink() else Path(path)
    if not path.is_file():
        raise BackupInvalid(f"{path} does not exist")
    manifest = Manifest.read(path)
    actual_size = path.stat().st_size
    if actual_size != manifest.size:
        raise BackupInvalid(
            f"{path.name} is {actual_size} bytes, its manifest says {manifest.size}: truncated or altered"
        )
    digest = hashlib.sha256()
    tail = b""
    try:
        for chunk in compression.decompress(manifest.compression, read_hashing(path, digest)):
            tail = (tail + chunk[-4096:])[-4096:]
    except compression.TruncatedStream as error:
        raise BackupInvalid(f"{path.name}: {error}") from None
    if digest.hexdigest() != manifest.sha256:
        raise BackupInvalid(f"{path.name} does not match the checksum in its manifest: it was altered")
    engine_class = _engine_class(manifest.vendor)
    if not engine_class.dump_is_complete(manifest.format, tail):
        raise BackupInvalid(f"{path.name} lacks the dump's completion marker: the dump was cut short")
    if manifest.has_media and not dump_only:
        media.verify(path, manifest.media_listing_sha256, media_reread)
    return manifest


def read_hashing(path: Path, digest) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            yield chunk


def _engine_class(vendor: str) -> type[Engine]:
    if vendor not in ENGINES:
        raise BackupInvalid(f"the manifest names an unknown vendor {vendor!r}")
    return ENGINES[vendor]
