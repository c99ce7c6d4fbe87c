"""The errors of backups and restores (one module, so that every backup module can raise them)."""


class BackupError(Exception):
    """A backup or restore could not be made; nothing that looks like a backup was left behind."""


class BackupInvalid(BackupError):
    """A backup file failed verification."""


class ChangedSinceVerified(BackupInvalid):
    """The backup file read for the restore is not the one that was verified."""


class BackupBusy(BackupError):
    """Another backup or restore of the same database holds the lock."""


class PhysicalBackup(BackupError):
    """A physical backup (mariadb-backup) cannot be loaded into a running database."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} is a physical backup (mariadb-backup): it is put back into a stopped server, not "
            "loaded into this one. Prepare a data directory from it with restore_database "
            f"{name} --prepare-datadir DIR, then follow the steps it prints"
        )
