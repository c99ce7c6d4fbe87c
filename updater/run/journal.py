"""The write-ahead journal of an update or rollback run: one JSON file per run in shared/updates/.

Each step is recorded as started before it runs and as done or failed after, and every write is
tmp + fsync + rename, so a run killed at any point leaves a journal that says exactly how far it got.
Secrets never go in: the journal holds versions, steps, paths and error messages only.
"""

import getpass
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from updater import layout
from updater.errors import RECOVER_FIRST, UpdateBusy, UpdateRefused
from updater.run.files import write_atomically

JOURNAL_NAME = re.compile(r"^[0-9]{8}T[0-9]{12}Z-[a-z_]+\.json$")  # <UTC stamp>-<command>.json
RUNNING, SUCCEEDED, FAILED, ROLLED_BACK = "running", "succeeded", "failed", "rolled back"
UNDO_FAILED = "undo failed"  # not finished: `rollback --recover` goes on undoing it
INCOMPLETE = "incomplete"  # past its point of no return, a later step failed: recovery completes it
PAUSED = "paused"  # a fleet update between its stages on this server (updater/release/fleet.py)
FINISHED = (SUCCEEDED, FAILED, ROLLED_BACK)
INTERRUPTED = "interrupted"  # a step that was running when its process died


# Who is told about steps as they happen (a command at --verbosity 2): (event, command, step entry).
Observer = Callable[[str, str, dict], None]
_observer: ContextVar[Observer | None] = ContextVar("journal_observer", default=None)


@contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Tell `observer` of every step started, finished and undone by runs inside this block."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Journal:
    path: Path
    data: dict = field(default_factory=dict)
    # What one process hands from a step to a later one and cannot be journaled (a running child).
    scratch: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def start(
        cls,
        directory: Path,
        command: str,
        from_version: str | None,
        to_version: str,
        actor: str | None = None,
    ) -> "Journal":
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        journal = cls(
            directory / f"{stamp}-{command}.json",
            {
                "id": stamp,
                "command": command,
                "from_version": from_version,
                "to_version": to_version,
                "status": RUNNING,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "actor": actor or who_runs_this(),
                "started_at": _now(),
                "finished_at": None,
                "steps": [],
                "facts": {},
                "cause": None,
            },
        )
        journal.save()
        return journal

    @classmethod
    def load(cls, path: Path) -> "Journal":
        return cls(path, json.loads(path.read_text()))

    @property
    def status(self) -> str:
        return self.data["status"]

    def step_started(self, name: str) -> None:
        """A step begins; an interrupted attempt of the same step (completing a run) is replaced."""
        self.data["steps"] = [s for s in self.data["steps"] if s["name"] != name]
        self.data["steps"].append(
            {"name": name, "status": RUNNING, "started_at": _now(), "clock": time.monotonic()}
        )
        self.save()
        self._tell("started", self.data["steps"][-1])

    def step_finished(self, name: str, status: str = "done", detail: str = "") -> None:
        step = next(s for s in reversed(self.data["steps"]) if s["name"] == name)
        step["status"] = status
        step["finished_at"] = _now()
        step["seconds"] = round(time.monotonic() - step.pop("clock", time.monotonic()), 3)
        if detail:
            step["detail"] = detail
        self.save()
        self._tell("finished", step)

    def record(self, **facts) -> None:
        """Facts the undo needs (the backup taken, whether the switch happened), written at once."""
        self.data["facts"].update({k: str(v) if isinstance(v, Path) else v for k, v in facts.items()})
        self.save()

    def fact(self, name: str, default=None):
        return self.data["facts"].get(name, default)

    def done(self, name: str) -> bool:
        return any(s["name"] == name and s["status"] == "done" for s in self.data["steps"])

    def started(self, name: str) -> bool:
        return any(s["name"] == name for s in self.data["steps"])

    def undone(self, name: str) -> bool:
        return any(s["name"] == name and s.get("undone") for s in self.data["steps"])

    def mark_undone(self, name: str, note: str = "") -> None:
        for step in self.data["steps"]:
            if step["name"] == name:
                step["undone"] = _now()
                if note:
                    step["undo_note"] = note
        self.save()
        self._tell("undone", next(step for step in self.data["steps"] if step["name"] == name))

    def _tell(self, event: str, step: dict) -> None:
        observer = _observer.get()
        if observer is not None:
            observer(event, self.data["command"], step)

    def close_interrupted(self) -> None:
        """Steps left running by a process that died are journaled as interrupted, not running."""
        for step in self.data["steps"]:
            if step["status"] == RUNNING:
                step["status"] = INTERRUPTED
                step.pop("clock", None)
        self.save()

    def finish(self, status: str, cause: str | None = None) -> None:
        self.data["status"] = status
        self.data["cause"] = cause
        self.data["finished_at"] = _now()
        self.save()

    def save(self) -> None:
        write_atomically(self.path, json.dumps(self.data, indent=2).encode())


def who_runs_this() -> str:
    """The login behind the run: the sudo caller when there is one, else the process owner."""
    try:
        owner = getpass.getuser()
    except (KeyError, OSError):
        owner = str(os.getuid())
    return os.environ.get("SUDO_USER") or owner


def default_directory() -> Path:
    return layout.state().updates


def paths(directory: Path) -> list[Path]:
    """The journal files in a folder, oldest first (names begin with the UTC stamp); reports beside them
    and other state files are not journals."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [directory / name for name in sorted(names) if JOURNAL_NAME.match(name)]


def all_journals(directory: Path) -> list[Journal]:
    return [Journal.load(path) for path in paths(directory)]


def unfinished(directory: Path) -> list[Journal]:
    return [journal for journal in all_journals(directory) if journal.status not in FINISHED]


def undo_fleet_run(fleet_run: str) -> str:
    """How a fleet run that holds a server is undone (its refusals and `rollback --recover` say it)."""
    return f"undo it with deploy/ansible/rollback.yml -e fleet_run={fleet_run}"


def refuse_if_unfinished(directory: Path) -> None:
    """New work waits until an interrupted run has been completed or undone."""
    stuck = unfinished(directory)
    if stuck:
        run = stuck[-1].data
        fleet_run = run["facts"].get("fleet_run")
        if fleet_run is not None:  # the fleet's lock: it holds every server it began on
            raise UpdateBusy(
                f"the fleet update {fleet_run} ({run['from_version']} -> {run['to_version']}, begun "
                f"{run['started_at']} by {run['actor']}) has not finished on this server; let it finish, "
                f"or {undo_fleet_run(fleet_run)}"
            )
        raise UpdateRefused(f"the run {run['id']} ({run['command']}) did not finish; {RECOVER_FIRST}")
