"""Bad marks: a release whose update failed carries a file saying why, so that nobody (auto_update
included) takes it again by accident; retention keeps it as evidence."""

from pathlib import Path

from updater.layout import DeploymentRoot

BAD_MARKER = ".helpdesk-bad"


def mark_bad(root: DeploymentRoot, tag: str, reason: str) -> None:
    release = root.release(tag)
    if release.is_dir():
        (release / BAD_MARKER).write_text(reason[:2000] + "\n")


def bad_reason(release: Path) -> str | None:
    marker = release / BAD_MARKER
    return marker.read_text().strip() if marker.exists() else None


def clear(release: Path) -> bool:
    marker = release / BAD_MARKER
    if not marker.exists():
        return False
    marker.unlink()
    return True
