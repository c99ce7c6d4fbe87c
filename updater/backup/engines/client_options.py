"""The [client] options (user, password, host) that the MariaDB tools read, handed over in memory."""

import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Releases before the in-memory option file wrote it to <tmp>/helpdesk-mysql-XXXX/client.cnf, and a
# backup killed with SIGKILL left it there, password and all.
EARLIER_RELEASES_FOLDERS = "helpdesk-mysql-*"
EARLIER_RELEASES_FILE = "client.cnf"
LEFT_OVER_AFTER_SECONDS = 24 * 3600  # no backup runs a day: nothing that old is still being read


class ClientOptions:
    """A [client] option file in memory (memfd_create, mode 0600), which a tool reads as /dev/fd/N.

    A file in /tmp would outlive a backup killed with SIGKILL, leaving the password on disk; a memfd
    is gone with the last process holding it. Each tool reopens /dev/fd/N from the start, as often as
    it reads its options (mariadb-backup does more than once)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    @contextmanager
    def holding(cls, text: str) -> Iterator["ClientOptions"]:
        fd = os.memfd_create("helpdesk-client-options", os.MFD_CLOEXEC)
        try:
            os.fchmod(fd, 0o600)  # the clients ignore a world-writable option file, and a memfd starts 0777
            data = text.encode()
            while data:
                data = data[os.write(fd, data) :]
            yield cls(fd)
        finally:
            os.close(fd)

    @property
    def path(self) -> str:
        return f"/dev/fd/{self.fd}"

    @property
    def fds(self) -> tuple[int, ...]:
        """For subprocess's pass_fds: the tool inherits the descriptor under the same number."""
        return (self.fd,)


def remove_left_over_option_files(directory: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the option files that killed backups of earlier releases left in the temporary directory
    (see EARLIER_RELEASES_FOLDERS) and return them: each is ours, a plain file alone in a folder of
    ours (not a link someone else put in /tmp), and untouched for a day."""
    root = Path(directory or tempfile.gettempdir())
    cutoff = (time.time() if now is None else now) - LEFT_OVER_AFTER_SECONDS
    removed = []
    for folder in root.glob(EARLIER_RELEASES_FOLDERS):
        option_file = folder / EARLIER_RELEASES_FILE
        try:
            folder_info, file_info = folder.lstat(), option_file.lstat()
            alone = [entry.name for entry in folder.iterdir()] == [EARLIER_RELEASES_FILE]
        except OSError:
            continue
        ours = folder_info.st_uid == file_info.st_uid == os.geteuid()
        plain = stat.S_ISDIR(folder_info.st_mode) and stat.S_ISREG(file_info.st_mode)
        if ours and plain and alone and file_info.st_mtime <= cutoff:
            try:
                option_file.unlink()
                folder.rmdir()
            except OSError:
                continue
            removed.append(option_file)
    return removed
