"""Commits between two releases, read from the bare mirror and sorted by conventional-commit type.

`feat:`, `fix:`, `security:` and everything else ("other"); BREAKING when the subject has `!:` or the
body a `BREAKING CHANGE:` (or `BREAKING-CHANGE:`) footer; critical when the subject or body carries
`[critical]`. One `git log` call for the whole range, so a range of thousands of commits is cheap.
"""

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from updater.release import git_repo

TYPES = ("feat", "fix", "security", "other")
_SUBJECT = re.compile(r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?:\s*(?P<text>.*)$")
_BREAKING_FOOTER = re.compile(r"^BREAKING[ -]CHANGE:\s*(?P<text>.*)$", re.MULTILINE)
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class Commit:
    sha: str
    type: str  # feat, fix, security or other
    scope: str
    subject: str  # as written
    breaking: bool
    breaking_note: str
    critical: bool

    def as_dict(self) -> dict:
        return asdict(self)


def parse(sha: str, subject: str, body: str) -> Commit:
    match = _SUBJECT.match(subject)
    kind = match["type"].lower() if match else "other"
    footer = _BREAKING_FOOTER.search(body)
    breaking = bool(match and match["bang"]) or footer is not None
    note = footer["text"].strip() if footer else (match["text"] if breaking and match else "")
    return Commit(
        sha=sha,
        type=kind if kind in TYPES else "other",
        scope=(match["scope"] or "") if match else "",
        subject=subject,
        breaking=breaking,
        breaking_note=note,
        critical="[critical]" in subject.lower() or "[critical]" in body.lower(),
    )


def commits_between(git_dir: Path, old: str | None, new: str) -> list[Commit]:
    """Commits in tag `new` and not in tag `old` (all of them when old is None), newest first."""
    git_repo.validate_tag_name(new)
    revisions = [f"refs/tags/{new}"]
    if old:
        git_repo.validate_tag_name(old)
        revisions.append(f"^refs/tags/{old}")
    output = git_repo.run_git(
        ["log", "--no-merges", f"--format=%H{_FIELD}%s{_FIELD}%b{_RECORD}", *revisions, "--"], git_dir=git_dir
    )
    commits = []
    for record in output.split(_RECORD):
        record = record.strip("\n")
        if not record:
            continue
        sha, subject, body = ([*record.split(_FIELD), "", ""])[:3]
        commits.append(parse(sha, subject, body))
    return commits


def grouped(commits: list[Commit]) -> dict[str, list[Commit]]:
    groups: dict[str, list[Commit]] = {kind: [] for kind in TYPES}
    for commit in commits:
        groups[commit.type].append(commit)
    return groups
