"""Off-site copies of backup sets in a restic repository (any restic backend: a mounted path, sftp,
S3, rest-server): shipped after a set verifies, pruned by a retention policy, checked by sampling, and
fetched back for the day the server is gone.

restic encrypts, deduplicates and verifies; we hand it the set's files (the dump, its manifest, its
media listing and the stored media files it lists), tagged with the database's name. The repository's
location goes to restic in its environment (it may carry credentials, as a rest-server URL does) and the
password in a file: neither ever appears in a process's arguments, a log line or an error message.
What the last attempt did is kept in a small state file that monitoring reads (age of the newest
off-site copy, failures in a row)."""

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from updater import layout
from updater.backup import media
from updater.backup.engines.base import tool_environment
from updater.backup.errors import BackupError
from updater.backup.manifest import MANIFEST_SUFFIX, NAME_PATTERN, Manifest, manifest_path
from updater.run.files import write_atomically

TAG = "helpdesk-backup"
RESTIC = "restic"
NO_REPOSITORY = "Is there a repository at the following location?"


class OffsiteError(BackupError):
    """The off-site repository could not be written, read or checked; local backups are untouched."""


@dataclass(frozen=True)
class Repository:
    location: str
    password_file: Path
    sftp_command: str = ""
    timeout: int = 3600

    @classmethod
    def configured(cls) -> "Repository | None":
        location = getattr(settings, "BACKUP_OFFSITE_REPOSITORY", "")
        if not location:
            return None
        return cls(
            location,
            Path(settings.BACKUP_OFFSITE_PASSWORD_FILE),
            getattr(settings, "BACKUP_OFFSITE_SFTP_COMMAND", ""),
            getattr(settings, "BACKUP_OFFSITE_TIMEOUT", 3600),
        )

    @property
    def fingerprint(self) -> str:
        """Which repository the state file speaks of, without writing its location (and credentials)."""
        return hashlib.sha256(self.location.encode()).hexdigest()[:16]

    @property
    def shown(self) -> str:
        """The location as messages may show it: without a user name or password in it."""
        return redact(self.location)


@dataclass(frozen=True)
class Shipped:
    snapshot: str
    database: str
    backup: str
    seconds: float
    files_new: int
    files_unmodified: int
    bytes_added: int


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: str
    host: str
    tags: list[str]
    backup: str  # the dump's file name

    @property
    def database(self) -> str:
        return next((tag.removeprefix("db:") for tag in self.tags if tag.startswith("db:")), "")


def redact(text: str) -> str:
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", text)


# --- ship ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    shipped: Shipped
    forgotten: list[str]  # snapshot ids the retention policy removed
    checked: str  # the share of data read back, e.g. "5%"


def send(backup: Path, repository: Repository | None = None) -> Sent:
    """What follows every scheduled backup: ship the set, apply the retention policy, check a sample
    of the repository. The state file says when the newest copy arrived, or what failed."""
    repository = repository or _required()
    _record_attempt()
    try:
        shipped = _ship(backup, repository)
        forgotten = forget(repository)
        subset = getattr(settings, "BACKUP_OFFSITE_CHECK_SUBSET", "5%")
        check(repository, subset)
    except OffsiteError as error:
        _record_failure(str(error))
        raise
    _record_success(shipped, repository)
    return Sent(shipped, forgotten, subset)


def _ship(backup: Path, repository: Repository) -> Shipped:
    """Send one verified backup set to the repository (initialising it on first use)."""
    backup = Path(backup).resolve()
    manifest = Manifest.read(backup)
    files = [backup, manifest_path(backup)]
    if manifest.has_media:
        files.append(media.listing_path(backup))
        store = media.store_of(backup)
        entries = media.read_listing(backup, manifest.media_listing_sha256)
        files.extend(sorted({media.object_path(store, entry.sha256) for entry in entries}))
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w", dir=_work_dir(), prefix="ship-", suffix=".list") as listing:
        listing.write("".join(f"{path}\n" for path in files))
        listing.flush()
        tags = ["--tag", TAG, "--tag", _database_tag(manifest.database)]
        arguments = ["backup", "--json", *tags, "--files-from-verbatim", listing.name]
        # Each restic command costs a key derivation: when this server shipped here before, its last
        # snapshot is the parent and the repository need not be asked first.
        remembered = _remembered_parent(repository, manifest.database)
        output = None
        if remembered:
            try:
                output = _restic(repository, *arguments, "--parent", remembered)
            except OffsiteError:
                output = None  # that snapshot is gone, or the repository is: ask the repository
        if output is None:
            _ensure_initialised(repository)
            parent = _newest_snapshot_id(repository, manifest.database)
            output = _restic(repository, *arguments, *(["--parent", parent] if parent else []))
    summary = _summary(output)
    return Shipped(
        summary["snapshot_id"],
        manifest.database,
        backup.name,
        round(time.monotonic() - started, 3),
        summary.get("files_new", 0),
        summary.get("files_unmodified", 0),
        summary.get("data_added", 0),
    )


def forget(repository: Repository | None = None) -> list[str]:
    """Apply the retention policy (BACKUP_OFFSITE_KEEP_*) and prune; the snapshot ids removed."""
    repository = repository or _required()
    keep = []
    for period in ("hourly", "daily", "weekly", "monthly"):
        count = getattr(settings, f"BACKUP_OFFSITE_KEEP_{period.upper()}", 0)
        if count:
            keep += [f"--keep-{period}", str(count)]
    if not keep:
        return []  # no policy: keep everything rather than nothing
    # Grouped by host and tags (the database), not restic's default of paths: every set's dump has a
    # name of its own, so grouping by paths would put each snapshot alone in its group and keep it.
    output = _restic(
        repository, "forget", "--json", "--prune", "--group-by", "host,tags", "--tag", TAG, *keep
    )
    removed = []
    for line in output.splitlines():
        if line.startswith("["):
            for group in json.loads(line):
                removed += [snapshot["id"][:8] for snapshot in group.get("remove") or []]
    return removed


def check(repository: Repository | None = None, subset: str | None = None) -> None:
    """The repository's structure and, by sampling, its data (BACKUP_OFFSITE_CHECK_SUBSET, e.g. 5%)."""
    repository = repository or _required()
    subset = subset if subset is not None else getattr(settings, "BACKUP_OFFSITE_CHECK_SUBSET", "5%")
    _restic(repository, "check", *(["--read-data-subset", subset] if subset else []))


def snapshots(repository: Repository | None = None) -> list[Snapshot]:
    """Our snapshots in the repository, oldest first."""
    repository = repository or _required()
    found = json.loads(_restic(repository, "snapshots", "--json", "--tag", TAG) or "[]")
    return [
        Snapshot(
            s["id"], s["time"], s.get("hostname", ""), s.get("tags") or [], _dump_name(s.get("paths") or [])
        )
        for s in found
    ]


def _dump_name(paths: list[str]) -> str:
    return next((Path(path).name for path in paths if NAME_PATTERN.match(Path(path).name)), "")


# --- fetch ---------------------------------------------------------------------------------------


def fetch_folder(snapshot: str) -> Path:
    """Where a fetched snapshot goes: beside the local backups (on their disk), a fresh folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return layout.state().backups / f".offsite-{re.sub(r'[^A-Za-z0-9]', '_', snapshot)}-{stamp}"


def fetch(snapshot: str, into: Path, repository: Repository | None = None) -> Path:
    """Restore a snapshot ("latest" or an id) into a folder; the backup set's dump file, whose
    manifest, listing and stored media files sit beside it as they did when it was shipped."""
    repository = repository or _required()
    if not re.fullmatch(r"latest|[0-9a-f]{8,64}", snapshot):
        raise OffsiteError(f"{snapshot!r} is not a snapshot id (8 to 64 hex digits) or 'latest'")
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    _restic(repository, "restore", snapshot, "--tag", TAG, "--target", str(into))
    manifests = sorted(into.rglob(f"*{MANIFEST_SUFFIX}"))
    if len(manifests) != 1:
        raise OffsiteError(f"snapshot {snapshot} holds {len(manifests)} backup manifests, not one")
    return manifests[0].with_name(manifests[0].name.removesuffix(MANIFEST_SUFFIX))


# --- state that monitoring reads -----------------------------------------------------------------


def state() -> dict:
    try:
        return json.loads(layout.state().offsite_state.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save(data: dict) -> None:
    path = layout.state().offsite_state
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(data, indent=2).encode())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record_attempt() -> None:
    _save({**state(), "last_attempt": _now()})


def _record_failure(error: str) -> None:
    data = state()
    _save({**data, "last_error": error, "failed_at": _now(), "failures": data.get("failures", 0) + 1})


def _record_success(shipped: Shipped, repository: Repository) -> None:
    _save(
        {
            **state(),
            "last_success": _now(),
            "repository": repository.fingerprint,
            "database": shipped.database,
            "snapshot": shipped.snapshot,
            "backup": shipped.backup,
            "last_error": "",
            "failures": 0,
        }
    )


# --- restic --------------------------------------------------------------------------------------


def _required() -> Repository:
    repository = Repository.configured()
    if repository is None:
        raise OffsiteError("no off-site repository is configured (BACKUP_OFFSITE_REPOSITORY)")
    return repository


def _work_dir() -> Path:
    folder = layout.state().path / "offsite"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _environment(repository: Repository) -> dict[str, str]:
    # Our secrets stay out of restic's environment; a password restic might find there is not ours.
    environment = tool_environment()
    for variable in ("RESTIC_PASSWORD", "RESTIC_PASSWORD_COMMAND"):
        environment.pop(variable, None)
    environment.update(
        RESTIC_REPOSITORY=repository.location,
        RESTIC_PASSWORD_FILE=str(repository.password_file),
        RESTIC_CACHE_DIR=str(_work_dir() / "cache"),
    )
    return environment


def _restic(repository: Repository, *arguments: str) -> str:
    if shutil.which(RESTIC) is None:
        raise OffsiteError("restic is not installed (apt-get install restic)")
    if not repository.password_file.is_file():
        raise OffsiteError(f"the repository's password file {repository.password_file} does not exist")
    options = ["-o", f"sftp.command={repository.sftp_command}"] if repository.sftp_command else []
    try:
        result = subprocess.run(
            [RESTIC, "--no-lock" if arguments[0] == "snapshots" else "--quiet", *options, *arguments],
            env=_environment(repository),
            capture_output=True,
            text=True,
            timeout=repository.timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise OffsiteError(
            f"restic {arguments[0]} on {repository.shown} took longer than {repository.timeout} s"
        ) from None
    if result.returncode != 0:
        words = redact(result.stderr.strip().replace(repository.location, repository.shown))
        raise OffsiteError(f"restic {arguments[0]} on {repository.shown} failed: {words[-1500:]}")
    return result.stdout


def _ensure_initialised(repository: Repository) -> None:
    try:
        _restic(repository, "cat", "config")
    except OffsiteError as error:
        if NO_REPOSITORY not in str(error):
            raise
        _restic(repository, "init")


def _remembered_parent(repository: Repository, database: str) -> str:
    shipped = state()
    if shipped.get("repository") == repository.fingerprint and shipped.get("database") == database:
        return shipped.get("snapshot", "")
    return ""


def _newest_snapshot_id(repository: Repository, database: str) -> str:
    """The parent for restic: files it saw unchanged (size, mtime, inode) are not read again."""
    tag = _database_tag(database)
    ours = [snapshot for snapshot in snapshots(repository) if tag in snapshot.tags]
    return ours[-1].id if ours else ""


def _database_tag(database: str) -> str:
    return "db:" + re.sub(r"[^A-Za-z0-9_.-]", "_", Path(database).stem if "/" in database else database)


def _summary(output: str) -> dict:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("message_type") == "summary":
                return message
    raise OffsiteError("restic backup ended without a summary: the snapshot may not have been saved")
