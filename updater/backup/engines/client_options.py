"""The [client] options (user, password, host) that the MariaDB tools read, handed over in memory."""

import os
from collections.abc import Iterator
from contextlib import contextmanager


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
