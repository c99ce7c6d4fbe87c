"""See the updater work in a minute, without a server: `make demo-update`.

Builds a sandbox deployment root in a temporary folder from this repository's committed code with
two synthetic tags (v1.0.0, and v2.0.0 which adds a field with a migration), deploys v1.0.0 with demo
data, updates to v2.0.0, rolls back, and prints what each run's journal recorded.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.deployments import clone_project, git, wheelhouse_for  # noqa: E402

MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0003_fill_resolution_notes")]
    operations = [
        migrations.AddField("organization", "phone", models.CharField(blank=True, default="", max_length=40)),
    ]
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="helpdesk-demo-") as tmp_name:
        tmp = Path(tmp_name)
        repo = clone_project(tmp / "source")
        git("tag", "v1.0.0", cwd=repo)
        models = repo / "crm" / "models.py"
        email = '    email = models.EmailField(_("email"), blank=True)\n'
        models.write_text(
            models.read_text().replace(
                email, email + '    phone = models.CharField(max_length=40, blank=True, default="")\n', 1
            )
        )
        (repo / "crm" / "migrations" / "0004_organization_phone.py").write_text(MIGRATION)
        git("add", "-A", cwd=repo)
        git("commit", "-q", "-m", "feat: organizations get a phone number", cwd=repo)
        git("tag", "v2.0.0", cwd=repo)

        wheels = wheelhouse_for(REPO_ROOT / "requirements.txt")
        root = tmp / "srv"
        env = tmp / "shared.env"
        env.write_text(
            f"ENVIRONMENT=staging\nSECRET_KEY={'d' * 60}\nALLOWED_HOSTS=localhost\n"
            f"DATABASE_URL=sqlite:///{tmp / 'demo.sqlite3'}\nUPDATER_MIN_FREE_BYTES=1000000\n"
            f"UPDATER_WHEELHOUSE={wheels}\nUPDATE_WINDOW_IMPORTANT=always\n"
        )
        say("init_deployment --version v1.0.0")
        manage(
            REPO_ROOT,
            "init_deployment",
            "--root",
            str(root),
            "--repo",
            str(repo),
            "--version",
            "v1.0.0",
            "--env-file",
            str(env),
            "--wheelhouse",
            str(wheels),
        )
        manage(root / "current", "seed_demo", "--tickets", "200", "--orgs", "5")
        say("update --version v2.0.0")
        manage(root / "current", "update", "--version", "v2.0.0")
        say("rollback")
        manage(root / "current", "rollback")
        say("What the journal recorded")
        for path in sorted((root / "shared" / "updates").glob("*.json")):
            run = json.loads(path.read_text())
            steps = ", ".join(f"{s['name']} {s['seconds']:.1f}s" for s in run["steps"])
            versions = f"{run['from_version']} -> {run['to_version']}"
            print(f"  {run['command']:<8} {versions}: {run['status']} ({steps})")
        print(f"\ncurrent -> {os.readlink(root / 'current')}")


def say(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def manage(where: Path, *args: str) -> None:
    python = where / ".venv" / "bin" / "python"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    if where != REPO_ROOT:
        env["ENV_FILE"] = str(where.resolve().parent.parent / "shared" / ".env")
    subprocess.run([str(python), "manage.py", *args], cwd=where, env=env, check=True)


if __name__ == "__main__":
    main()
