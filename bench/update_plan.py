"""Benchmark: `update_plan` on a repository of 10,000 commits and 500 tags, against the handbook's git calls.

    .venv/bin/python bench/update_plan.py [--commits 10000] [--tags 500] [--runs 5]

This project's history gets 10,000 synthetic conventional commits on top (written with
`git fast-import`, a tag every 20 commits); a deployment root (SQLite) runs the first tag. Timed, in
the same run: `manage.py update_plan --format json --no-fetch` to the newest tag (the whole command:
Python and Django start-up, git, the database, migrations read from the target tree) and, as the
anchor, the handbook's planning steps on a working copy (`git describe --tags --abbrev=0`, `git log
--oneline CUR..NEW`, `git diff --name-only CUR..NEW`), which say far less. Issue target: under 1 s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.deployments import clone_project, git, wheelhouse_for  # noqa: E402

KINDS = [
    "feat: add report filter {i}",
    "fix: correct date {i}",
    "chore: tidy {i}",
    "docs: explain {i}",
    "refactor: split module {i}",
    "security: escape field {i}",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp_name:
        tmp = Path(tmp_name)
        repo = clone_project(tmp / "source")
        git("tag", "v0.0.1", cwd=repo)
        started = time.perf_counter()
        newest = _synthetic_history(repo, args.commits, args.tags)
        written = time.perf_counter() - started
        print(f"history: {args.commits} commits, {args.tags} tags written in {written:.1f} s")

        root = _deploy(tmp, repo)
        ours = _time(
            args.runs,
            _manage_command(root, "update_plan", "--format", "json", "--no-fetch"),
            root / "current",
        )
        plan = json.loads(
            _run(_manage_command(root, "update_plan", "--format", "json", "--no-fetch"), root / "current")
        )
        counted = sum(len(commits) for commits in plan["commits"].values())
        assert plan["target"] == newest, plan["target"]

        working_copy = tmp / "handbook"
        git("clone", "-q", str(repo), str(working_copy), cwd=tmp)
        git("checkout", "-q", "v0.0.1", cwd=working_copy)
        anchor = _time_handbook(args.runs, working_copy, newest)

        print(
            f"update_plan v0.0.1 -> {newest}: {counted} commits, class {plan['update_class']}, "
            f"{len(plan['migrations'])} pending migrations"
        )
        print(f"{'':<44} {'median':>8} {'best':>8}")
        print(f"{'ours: manage.py update_plan --format json':<44} {ours[0]:7.3f}s {ours[1]:7.3f}s")
        print(f"{'handbook: describe + log + diff':<44} {anchor[0]:7.3f}s {anchor[1]:7.3f}s")
        print(
            f"ours / anchor (median): {ours[0] / anchor[0]:.1f}x — target: ours under 1 s "
            f"({'met' if ours[0] < 1 else 'missed'})"
        )


def _synthetic_history(repo: Path, commits: int, tags: int) -> str:
    every = max(1, commits // tags)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    stream = []
    newest = ""
    for i in range(1, commits + 1):
        message = KINDS[i % len(KINDS)].format(i=i).encode()
        content = f"change {i}\n".encode()
        stream.append(b"commit refs/heads/main\nmark :%d\n" % i)
        stream.append(b"committer Bench <bench@example.org> %d +0000\n" % (1_700_000_000 + i))
        stream.append(b"data %d\n%s\n" % (len(message), message))
        stream.append(b"from %s\n" % (head.encode() if i == 1 else b":%d" % (i - 1)))
        stream.append(b"M 100644 inline CHANGES.txt\ndata %d\n%s\n" % (len(content), content))
        if i % every == 0 and i // every <= tags:
            newest = f"v1.{i // every}.0"
            stream.append(b"reset refs/tags/%s\nfrom :%d\n\n" % (newest.encode(), i))
    subprocess.run(["git", "fast-import", "--quiet"], input=b"".join(stream), cwd=repo, check=True)
    git("checkout", "-q", "-f", "main", cwd=repo)
    return newest


def _deploy(tmp: Path, repo: Path) -> Path:
    wheels = wheelhouse_for(REPO_ROOT / "requirements.txt")
    env_file = tmp / "shared.env"
    env_file.write_text(
        f"ENVIRONMENT=staging\nSECRET_KEY={'p' * 60}\nALLOWED_HOSTS=localhost\n"
        f"DATABASE_URL=sqlite:///{tmp / 'plan.sqlite3'}\n"
    )
    root = tmp / "srv"
    command = [
        sys.executable,
        "manage.py",
        "init_deployment",
        "--root",
        str(root),
        "--repo",
        str(repo),
        "--version",
        "v0.0.1",
        "--env-file",
        str(env_file),
        "--wheelhouse",
        str(wheels),
    ]
    subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    return root


def _manage_command(root: Path, *args: str) -> list[str]:
    return [str(root / "current" / ".venv" / "bin" / "python"), "manage.py", *args]


def _run(command: list[str], cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "ENV_FILE": str(cwd.resolve().parent.parent / "shared" / ".env")}
    return subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _time(runs: int, command: list[str], cwd: Path) -> tuple[float, float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        _run(command, cwd)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), min(timings)


def _time_handbook(runs: int, working_copy: Path, newest: str) -> tuple[float, float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        current = git("describe", "--tags", "--abbrev=0", cwd=working_copy).strip()
        git("log", "--oneline", f"{current}..{newest}", cwd=working_copy)
        git("diff", "--name-only", f"{current}..{newest}", cwd=working_copy)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), min(timings)


if __name__ == "__main__":
    main()
