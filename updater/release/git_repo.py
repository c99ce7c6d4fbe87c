"""Git access for the updater: a bare mirror of the source repository, tags, and release worktrees.

Every call is an argument list with a timeout; user input (a tag, a URL) is validated first and passed
after `--` where git allows it, so it can never be read as an option.
"""

import os
import re
import subprocess
from pathlib import Path

GIT_TIMEOUT = 300
# Release tags: letters, digits, dots, dashes, underscores, plus; must start with a letter or digit.
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


class GitError(Exception):
    pass


class InvalidVersion(GitError):
    """The version given is not an acceptable tag name or is not a tag of the repository."""


def run_git(
    args: list[str],
    git_dir: Path | None = None,
    cwd: Path | None = None,
    timeout: int = GIT_TIMEOUT,
    env: dict[str, str] | None = None,
) -> str:
    command = ["git"] + ([f"--git-dir={git_dir}"] if git_dir else []) + args
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {_subcommand(args)} did not finish within {timeout}s") from None
    if result.returncode != 0:
        raise GitError(f"git {_subcommand(args)} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def _subcommand(args: list[str]) -> str:
    after_config = [arg for i, arg in enumerate(args) if not (i and args[i - 1] == "-c")]
    return next((arg for arg in after_config if not arg.startswith("-")), "")


def validate_tag_name(tag: str) -> str:
    if not TAG_PATTERN.match(tag) or ".." in tag or tag.endswith((".lock", ".")):
        raise InvalidVersion(
            f"{tag!r} is not a valid release tag (letters, digits, '.', '-', '_', '+'; like v1.4.0)"
        )
    return tag


def mirror(url: str, git_dir: Path) -> None:
    """Create the bare mirror, or point it at url and fetch everything including tags."""
    if url.startswith("-"):
        raise GitError(f"{url!r} is not a repository URL or path")
    if not (git_dir / "HEAD").exists():
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        run_git(["clone", "--mirror", "--", url, str(git_dir)])
        return
    run_git(["remote", "set-url", "origin", "--", url], git_dir=git_dir)
    fetch(git_dir)


def fetch(git_dir: Path) -> None:
    run_git(["fetch", "--prune", "--tags", "--force", "origin"], git_dir=git_dir)


def tag_commit(git_dir: Path, tag: str) -> str:
    """The commit a tag points to; InvalidVersion if it is not a tag (a branch or an expression)."""
    validate_tag_name(tag)
    try:
        return run_git(
            ["rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"], git_dir=git_dir
        ).strip()
    except GitError:
        raise InvalidVersion(
            f"{tag!r} is not a tag of the repository (git tag --list shows the tags)"
        ) from None


def tags(git_dir: Path) -> list[str]:
    """All tags, oldest version first (git's version sort)."""
    output = run_git(["tag", "--list", "--sort=version:refname"], git_dir=git_dir)
    return [line for line in output.splitlines() if TAG_PATTERN.match(line)]


def verify_tag(git_dir: Path, tag: str, *, allowed_signers: str = "", gnupghome: str = "") -> None:
    """`git verify-tag` against the configured signers only: an SSH allowed-signers file and/or a
    dedicated GnuPG home. An unsigned tag, or one signed by anybody else, raises InvalidVersion."""
    options = ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"] if allowed_signers else []
    env = {**os.environ, "GNUPGHOME": gnupghome} if gnupghome else None
    try:
        run_git([*options, "verify-tag", "--", f"refs/tags/{tag}"], git_dir=git_dir, env=env)
    except GitError as error:
        raise InvalidVersion(f"tag {tag!r} has no valid signature from a trusted signer: {error}") from None


def add_worktree(git_dir: Path, path: Path, tag: str) -> None:
    tag_commit(git_dir, tag)
    run_git(["worktree", "add", "--detach", "--", str(path), f"refs/tags/{tag}"], git_dir=git_dir)


def remove_worktree(git_dir: Path, path: Path) -> None:
    run_git(["worktree", "remove", "--force", "--", str(path)], git_dir=git_dir)
    run_git(["worktree", "prune"], git_dir=git_dir)
