"""Kernel locks (flock) that say who holds them.

A lock is a file: flock() on it is the lock, its content is the holder (pid, host, command, start
time) so that a refusal can say who is in the way. The kernel drops the lock when the holder dies, so a
stale file never blocks anyone; its content then tells the next run that someone was interrupted.
"""

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from updater.errors import UpdateBusy


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    started_at: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started_at}: {self.command}"


class LockHeld(Exception):
    def __init__(self, path: Path, holder: Holder | None) -> None:
        self.path = path
        self.holder = holder
        who = holder.describe() if holder else "an unknown process"
        super().__init__(f"{path} is held by {who}")


def current_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(Path(path).read_text())
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def hold(path: Path, command: str | None = None) -> Iterator[Holder]:
    """Take the lock without waiting, or raise LockHeld naming the holder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(path, current_holder(path)) from None
        holder = Holder(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=command or " ".join(sys.argv),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder.__dict__).encode(), 0)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextmanager
def exclusive(lock_file: Path, command: str) -> Iterator[None]:
    """The update lock shared by every run that changes the site; UpdateBusy naming its holder if taken."""
    try:
        with hold(lock_file, command=command):
            yield
    except LockHeld as held:
        who = held.holder.describe() if held.holder else "another process"
        raise UpdateBusy(f"another update or rollback is running ({who})") from None
