"""The log file is private: created 0640 (owner writes, the admin group reads), rotated files too.

Logs hold usernames, addresses and error details; with the default umask the file would be 0644 and
every local account could read it. An existing file that others may read is tightened when opened.
"""

import os
from logging.handlers import RotatingFileHandler

MODE = 0o640


class PrivateRotatingFileHandler(RotatingFileHandler):
    def _open(self):
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, MODE)
        if os.fstat(descriptor).st_mode & 0o037:  # more than owner rw + group r
            os.fchmod(descriptor, MODE)
        return open(descriptor, self.mode, encoding=self.encoding, errors=self.errors)
