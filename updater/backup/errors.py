"""The errors of backups and restores (one module, so that every backup module can raise them)."""


class BackupError(Exception):
    """A backup or restore could not be made; nothing that looks like a backup was left behind."""


class BackupInvalid(BackupError):
    """A backup file failed verification."""


class ChangedSinceVerified(BackupInvalid):
    """The backup file read for the restore is not the one that was verified."""


class BackupBusy(BackupError):
    """Another backup or restore of the same database holds the lock."""
