"""Where uploaded files go: Django's file system storage, plus an optional group for them.

Attachments are written 0640 in 0750 folders (settings.FILE_UPLOAD_*). Who may read them besides the
service is the group's business: by default the service's own primary group; with MEDIA_GROUP set,
that group (e.g. the web server's, when Apache serves /media/ itself, or a backup account's)."""

import grp
import os
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage


def media_group_id() -> int | None:
    """The gid of settings.MEDIA_GROUP, None when unset; KeyError for a group this machine lacks."""
    name = getattr(settings, "MEDIA_GROUP", "")
    return grp.getgrnam(name).gr_gid if name else None


class GroupFileSystemStorage(FileSystemStorage):
    def _save(self, name: str, content) -> str:
        name = super()._save(name, content)
        gid = media_group_id()
        if gid is not None:
            self._give_to_group(Path(self.path(name)), gid)
        return name

    def _give_to_group(self, path: Path, gid: int) -> None:
        """The file and the folders above it, up to the storage's root, that are not the group's yet
        (a folder made by an earlier upload already is: the walk stops there)."""
        root = Path(self.location).resolve()
        os.chown(path, -1, gid)
        for folder in path.parents:
            if folder == root or root not in folder.parents or folder.stat().st_gid == gid:
                break
            os.chown(folder, -1, gid)
