"""A real IMAP and POP3 server (Debian's dovecot) on the loopback, with its own configuration, state and
mail in a temporary folder, for receive_mail --imap and --pop3. One user, a plaintext password (loopback
only). Messages are put in through IMAP (APPEND); POP3 reads the same INBOX."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import free_port

MAIL_ACCOUNT = "nobody"  # dovecot never delivers mail as root; the mail files belong to this account


class Dovecot:
    """Its folder is made in the system's temporary directory, not the test's: dovecot's own accounts
    (auth as `dovecot`, mail as `nobody`) must reach it, and pytest's folders are private to root."""

    def __init__(self, user: str = "helpdesk", password: str = "imap-password-123") -> None:  # noqa: S107
        self.folder = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.user, self.password = user, password
        self.port = free_port()  # IMAP
        self.pop3_port = free_port()
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("dovecot") is not None or Path("/usr/sbin/dovecot").exists()

    @staticmethod
    def has_pop3() -> bool:
        return Path("/usr/lib/dovecot/pop3").exists()  # Debian's dovecot-pop3d

    def start(self) -> "Dovecot":
        account = pwd.getpwnam(MAIL_ACCOUNT)
        for name in ("run", "state", "home"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
        os.chown(self.folder / "home", account.pw_uid, account.pw_gid)
        os.chmod(self.folder, 0o755)  # noqa: S103 (dovecot's accounts read its configuration here)
        (self.folder / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        config = self.folder / "dovecot.conf"
        config.write_text(
            f"""base_dir = {self.folder}/run
state_dir = {self.folder}/state
log_path = {self.folder}/dovecot.log
protocols = {"imap pop3" if self.has_pop3() else "imap"}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {account.pw_uid}
last_valid_uid = {account.pw_uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.folder}/users
}}
userdb {{
  driver = static
  args = uid={account.pw_uid} gid={account.pw_gid} home={self.folder}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
{self._pop3_service()}service anvil {{
  chroot =
}}
"""
        )
        self.process = subprocess.Popen(
            [shutil.which("dovecot") or "/usr/sbin/dovecot", "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot did not start: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not listen in time")

    def _pop3_service(self) -> str:
        if not self.has_pop3():
            return ""
        return f"""service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  chroot =
}}
"""

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)
