"""MariaDB's physical backups: mariadb-backup streams the server's data files (mbstream), which restore
by copying files rather than replaying SQL. Used by MySQLEngine for the `mariabackup` format.

Its constraints, which the README states too: it copies the whole server instance (every database on
it), it must run on the database host with read access to the datadir, its user needs the RELOAD,
PROCESS, LOCK TABLES and BINLOG MONITOR privileges, and a backup is prepared and put back by the same
MariaDB version, into a stopped server.
"""

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from updater.backup.engines.base import CHUNK, EngineError, tool_environment
from updater.backup.engines.client_options import ClientOptions

FORMAT = "mariabackup"
TOOL = "mariadb-backup"
_MBSTREAM_CHUNK = b"XBSTCK01"
_LAST_FILE = b"xtrabackup_info"  # streamed after every data file and the redo log: the stream's end
COPY_THREADS = max(1, min(4, os.cpu_count() or 1))


def tool(name: str = TOOL) -> str:
    found = shutil.which(name)
    if not found:
        raise EngineError(f"{name} is not installed (apt-get install mariadb-backup)")
    return found


def iter_backup(options: ClientOptions) -> Iterator[bytes]:
    """The mbstream of a hot physical backup, as mariadb-backup writes it."""
    program = tool()
    scratch_directory = tempfile.TemporaryDirectory(prefix="helpdesk-mariabackup-")
    with scratch_directory as scratch, tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                program,
                f"--defaults-extra-file={options.path}",  # must come first
                "--backup",
                "--stream=mbstream",
                f"--parallel={COPY_THREADS}",
                f"--target-dir={scratch}",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=tool_environment(),
            pass_fds=options.fds,
        )
        try:
            while chunk := process.stdout.read(CHUNK):
                yield chunk
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        if returncode != 0:
            raise EngineError(f"{TOOL} failed (exit {returncode}): {failure_lines(log)}")


def is_complete(tail: bytes) -> bool:
    """mariadb-backup streams xtrabackup_info last; its closing chunk ends the stream."""
    return tail.endswith(_LAST_FILE) and _MBSTREAM_CHUNK in tail[-(len(_LAST_FILE) + 32) :]


_LOG_PREFIX = re.compile(r"^\[\d+\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def failure_lines(log) -> str:
    """The tool's own words about what went wrong: its log is long (a line per file copied). Lines
    quoting grants are left out: they carry the user's password hash."""
    log.seek(0)
    lines = [
        _LOG_PREFIX.sub("", line.strip())
        for line in log.read().decode(errors="replace").splitlines()
        if line.strip() and "IDENTIFIED BY" not in line.upper()
    ]
    wanted = [line for line in lines if any(word in line.lower() for word in ("error", "failed", "denied"))]
    return " / ".join((wanted or lines)[-4:]) or "(no message)"


def tool_version() -> str:
    """'10.11.19' of `mariadb-backup based on MariaDB server 10.11.19-MariaDB ...`."""
    result = subprocess.run(
        [tool(), "--version"], capture_output=True, text=True, env=tool_environment(), check=False
    )
    words = (result.stdout + result.stderr).split()
    for word in words:
        if word[:1].isdigit() and "." in word:
            return word.split("-")[0]
    raise EngineError(f"cannot tell {TOOL}'s version from: {(result.stdout + result.stderr).strip()}")
