"""What an update would bring, read before anything runs (`update_plan`, auto_update, preflight).

Everything comes from the bare mirror and the live database — no worktree, no venv, no subprocess of
the new release — so a plan is cheap enough for an hourly cron job: the commits between the current
and the target tag (one `git log`), the migrations present in the target tree and not applied here,
each read with `ast` to flag those that cannot be undone (RunPython / RunSQL without a reverse, removed
fields and models), whether requirements or static files change, and an estimated downtime and
duration from the timings of earlier runs.
"""

import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from updater.backup import rotation
from updater.layout import DeploymentRoot
from updater.plan import changelog, migration_kinds, migrations, policy, rehearsal
from updater.release import git_repo
from updater.run import journal

PLAN_FORMAT = 1  # bumped when a key of the JSON form changes meaning or disappears
DEFAULT_BACKUP_SECONDS = 10.0
DEFAULT_MIGRATION_SECONDS = 2.0
DEFAULT_PREPARE_SECONDS = {True: 180.0, False: 30.0}  # requirements changed: a new venv is built
VERIFY_SECONDS = 15.0
RELOAD_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class PendingMigration:
    name: str  # "app.0004_name"
    irreversible: bool
    reasons: list[str]
    kind: str = migration_kinds.BLOCKING  # online | contract | blocking (updater/plan/migration_kinds.py)
    why: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    current: str | None
    target: str
    commits: list[changelog.Commit]
    update_class: str
    window: policy.WindowState
    migrations: list[PendingMigration]
    requirements_changed: bool
    static_changed: bool
    estimated_downtime_seconds: float
    estimated_duration_seconds: float
    newer_tags: list[str] = field(default_factory=list)
    estimate_source: str = ""  # "rehearsed 2026-11-27 on a copy of 1.2 GB", or how else it was guessed
    promotion: dict | None = None  # the predecessor environment's verdict (updater/plan/promotion.py)
    schedule: migration_kinds.Schedule = field(default_factory=lambda: migration_kinds.Schedule("none"))

    @property
    def breaking(self) -> list[changelog.Commit]:
        return [commit for commit in self.commits if commit.breaking]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.target

    def as_dict(self) -> dict:
        """The stable JSON form (documented in README, "update_plan --format json")."""
        groups = changelog.grouped(self.commits)
        return {
            "format": PLAN_FORMAT,
            "current": self.current,
            "target": self.target,
            "up_to_date": self.up_to_date,
            "newer_tags": self.newer_tags,
            "commits": {kind: [_commit(c) for c in commits] for kind, commits in groups.items()},
            "breaking": [_commit(c) for c in self.breaking],
            "update_class": self.update_class,
            "window": {
                "spec": self.window.window,
                "open_now": self.window.open,
                "closes_at": _iso(self.window.closes_at),
                "next_opens_at": _iso(self.window.next_opens_at),
            },
            "migrations": [
                {
                    "name": m.name,
                    "irreversible": m.irreversible,
                    "reasons": m.reasons,
                    "kind": m.kind,
                    "why": m.why,
                }
                for m in self.migrations
            ],
            "requirements_changed": self.requirements_changed,
            "static_changed": self.static_changed,
            "maintenance_needed": self.schedule.mode == "maintenance",
            "migration_schedule": asdict(self.schedule),
            "estimated_downtime_seconds": round(self.estimated_downtime_seconds, 1),
            "estimated_duration_seconds": round(self.estimated_duration_seconds, 1),
            "estimate_source": self.estimate_source,
        }


def plan(root: DeploymentRoot, target: str | None = None, *, at: datetime | None = None) -> Plan:
    """The plan from the current release to `target` (default: the newest tag)."""
    release = root.current_release()
    current = release.name if release else None
    all_tags = git_repo.tags(root.repo)
    if target is None:
        if not all_tags:
            raise git_repo.InvalidVersion("the repository has no release tags")
        target = all_tags[-1]
    git_repo.tag_commit(root.repo, target)
    newer = all_tags[all_tags.index(current) + 1 :] if current in all_tags else all_tags
    if target == current:
        commits, changed = [], []
    else:
        commits = changelog.commits_between(root.repo, current, target)
        changed = _changed_paths(root.repo, current, target)
    update_class = policy.classify(commits)
    migrations = [] if target == current else pending_migrations(root.repo, target)
    requirements_changed = any(PurePosixPath(p).name.startswith("requirements") for p in changed)
    names = [m.name for m in migrations]
    schedule = migration_kinds.schedule(
        names,
        {m.name: {"kind": m.kind, "why": m.why} for m in migrations},
        settings.UPDATER_ONLINE_MIGRATIONS,
    )
    downtime, source = _estimated_downtime(root, migrations, target, current)
    if schedule.mode == "online":
        downtime, source = 0.0, f"online migrations: the site stays up ({source})"
    duration = DEFAULT_PREPARE_SECONDS[requirements_changed] + downtime + VERIFY_SECONDS
    history = _past_durations(root)
    if history:
        duration = max(duration, statistics.median(history))
    return Plan(
        current=current,
        target=target,
        commits=commits,
        update_class=update_class,
        window=policy.window_state(update_class, at),
        migrations=migrations,
        requirements_changed=requirements_changed,
        static_changed=any("static" in PurePosixPath(p).parts for p in changed),
        estimated_downtime_seconds=downtime,
        estimated_duration_seconds=duration,
        newer_tags=newer,
        estimate_source=source,
        schedule=schedule,
    )


def pending_migrations(git_dir: Path, tag: str) -> list[PendingMigration]:
    """Migration files of the target tree that the live database has not applied, in name order."""
    applied = {f"{app}.{name}" for app, name in MigrationRecorder(connection).applied_migrations()}
    listing = git_repo.run_git(["ls-tree", "-r", "--name-only", f"refs/tags/{tag}"], git_dir=git_dir)
    files = sorted(
        path
        for path in listing.splitlines()
        if len(parts := PurePosixPath(path).parts) >= 3
        and parts[-2] == "migrations"
        and parts[-1][:4].isdigit()
        and parts[-1].endswith(".py")
    )

    def show(path: str) -> str:
        return git_repo.run_git(["show", f"refs/tags/{tag}:{path}"], git_dir=git_dir)

    found = []
    for path in files:
        parts = PurePosixPath(path).parts
        name = f"{parts[-3]}.{parts[-1][:-3]}"
        if name in applied:
            continue
        source = show(path)
        folder = PurePosixPath(path).parent

        def earlier(folder: PurePosixPath = folder, path: str = path) -> list[str]:
            return [show(other) for other in files if PurePosixPath(other).parent == folder and other < path]

        reasons = migrations.irreversible_operations(source)
        kind, why = migration_kinds.classify(source, earlier)
        found.append(PendingMigration(name, bool(reasons), reasons, kind, why))
    return sorted(found, key=lambda m: m.name)


def _changed_paths(git_dir: Path, old: str | None, new: str) -> list[str]:
    if old is None:
        return git_repo.run_git(["ls-tree", "-r", "--name-only", f"refs/tags/{new}"], git_dir=git_dir).split()
    output = git_repo.run_git(
        ["diff", "--name-only", f"refs/tags/{old}", f"refs/tags/{new}", "--"], git_dir=git_dir
    )
    return output.splitlines()


def _estimated_downtime(
    root: DeploymentRoot, migrations: list[PendingMigration], target: str, current: str | None
) -> tuple[float, str]:
    """Maintenance lasts backup + migrate (+ the reload); without migrations the site stays up. The
    migrations' time comes from a rehearsal on a copy of this database when there is one, otherwise
    from earlier runs, otherwise from a default guess; the second value says which."""
    if not migrations:
        return 0.0, "no migrations: no maintenance"
    newest = rotation.list_backups(root.backups)[:1] if root.backups.is_dir() else []
    backup_seconds = newest[0][1].duration_seconds if newest else DEFAULT_BACKUP_SECONDS
    rehearsed = rehearsal.load(root, target, current)
    if rehearsed is not None and set(rehearsed.migrations) >= {m.name for m in migrations}:
        return backup_seconds + rehearsed.seconds + RELOAD_GRACE_SECONDS, rehearsed.source()
    per_migration = _seconds_per_migration(root)
    if per_migration is not None:
        source = "not rehearsed; from the migrations of earlier updates"
    else:
        per_migration, source = DEFAULT_MIGRATION_SECONDS, "not rehearsed; a default guess"
    if not settings.UPDATER_REHEARSE:
        source += " (UPDATER_REHEARSE is off)"
    return backup_seconds + per_migration * len(migrations) + RELOAD_GRACE_SECONDS, source


def _seconds_per_migration(root: DeploymentRoot) -> float | None:
    rates = []
    for run in journal.all_journals(root.updates):
        count = len(run.fact("pending_migrations") or [])
        seconds = next((s.get("seconds") for s in run.data["steps"] if s["name"] == "migrate"), None)
        if count and seconds is not None and run.status == journal.SUCCEEDED:
            rates.append(seconds / count)
    return statistics.median(rates) if rates else None


def _past_durations(root: DeploymentRoot) -> list[float]:
    durations = []
    for run in journal.all_journals(root.updates):
        if (
            run.data.get("command") == "update"
            and run.status == journal.SUCCEEDED
            and run.data.get("finished_at")
        ):
            started = datetime.fromisoformat(run.data["started_at"])
            durations.append((datetime.fromisoformat(run.data["finished_at"]) - started).total_seconds())
    return durations


def _commit(commit: changelog.Commit) -> dict:
    return {
        "sha": commit.sha,
        "type": commit.type,
        "scope": commit.scope,
        "subject": commit.subject,
        "breaking": commit.breaking,
        "critical": commit.critical,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None
