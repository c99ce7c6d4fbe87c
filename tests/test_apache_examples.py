"""deploy/apache/ as shipped, served by Debian's apache2 (+ mod_wsgi): each example on free loopback
ports, with a certificate made here, in front of a deployment laid out as init_deployment lays it
(releases/<tag>, current, shared/.env 0640). Only names, ports, paths and the service account are
substituted; a test that passes here is a configuration a sysadmin can copy."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.deployments import REPO_ROOT, clone_project
from tests.support.processes import free_port, start_gunicorn, wait_until_serving
from tests.support.tls import self_signed_certificate

pytestmark = pytest.mark.slow

EXAMPLES = REPO_ROOT / "deploy" / "apache"
MODULES = Path("/usr/lib/apache2/modules")
# The daemon's account: the example's `helpdesk` user does not exist on a test machine.
ACCOUNT, GROUP = "nobody", "nogroup"
TOKEN = "apache-monitoring-token"

SETUP = """
from django.contrib.auth import get_user_model
from crm.models import Organization, Ticket, UserProfile
acme = Organization.objects.create(name="Acme")
agnes = get_user_model().objects.create_user("agnes", "agnes@example.com", "pw-agnes-long-enough")
UserProfile.objects.create(user=agnes, role="agent")
Ticket.objects.create(title="Printer through Apache", description="d", organization=acme, created_by=agnes)
"""


def _release(root: Path, tag: str) -> Path:
    """A release as `update` prepares one: the code, VERSION, the venv, the .env link, static files."""
    release = clone_project(root / "releases" / tag)
    (release / "VERSION").write_text(tag + "\n")
    (release / ".venv").symlink_to(sys.prefix)
    (release / ".env").symlink_to("../../shared/.env")
    if (root / "shared" / ".env").exists():
        _manage(release, "collectstatic", "--noinput", "-v", "0")
    return release


def _manage(release: Path, *args: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ENV"))}
    subprocess.run([sys.executable, "manage.py", *args], cwd=release, env=environment, check=True)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Path]:
    """/srv/helpdesk's layout in a folder other accounts may traverse (pytest's own is 0700)."""
    if not shutil.which("apache2") or not (MODULES / "mod_wsgi.so").exists():
        pytest.fail("apache2 and mod_wsgi are missing: scripts/bootstrap.sh --test installs them")
    base = Path(tempfile.mkdtemp(prefix="helpdesk-apache-", dir="/var/tmp"))
    base.chmod(0o755)
    root = base / "srv"
    release = _release(root, "v1.0.0")
    (root / "current").symlink_to("releases/v1.0.0")
    shared = root / "shared"
    (shared / "logs").mkdir(parents=True)
    env_file = shared / ".env"
    env_file.write_text(
        "ENVIRONMENT=prod\n"
        f"SECRET_KEY=apache-test-{'k' * 50}\n"
        "ALLOWED_HOSTS=127.0.0.1\n"
        f"DATABASE_URL=sqlite:///{shared / 'db.sqlite3'}\n"
        f"MEDIA_ROOT={shared / 'media'}\n"
        f"LOG_FILE={shared / 'logs' / 'helpdesk.log'}\n"
        f"UPDATER_ROOT={root}\n"
        # the proxy example's settings, harmless under mod_wsgi (which sees no forwarded headers)
        "SECURE_PROXY_SSL_HEADER=True\nTRUSTED_PROXIES=127.0.0.1\n"
        f"MONITORING_TOKEN={TOKEN}\n"
    )
    env_file.chmod(0o640)
    for command in (["migrate", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        _manage(release, *command)
    _manage(release, "shell", "--no-imports", "-c", SETUP)
    subprocess.run(["chown", "-R", f"{ACCOUNT}:{GROUP}", str(shared)], check=True)
    yield root
    if os.environ.get("KEEP_APACHE_TEST") is None:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def _site(example: str, root: Path, ports: dict[int, int], cert: Path, key: Path, **more: str) -> str:
    text = (EXAMPLES / example).read_text()
    for shipped, port in ports.items():
        text = text.replace(f"<VirtualHost *:{shipped}>", f"<VirtualHost *:{port}>")
    text = text.replace("/srv/helpdesk", str(root))
    text = text.replace("user=helpdesk group=helpdesk", f"user={ACCOUNT} group={GROUP}")
    text = text.replace("/etc/ssl/certs/helpdesk.example.com.pem", str(cert))
    text = text.replace("/etc/ssl/private/helpdesk.example.com.key", str(key))
    for shipped, ours in more.items():
        text = text.replace(shipped, ours)
    return text


def _apache(folder: Path, site: str, ports: list[int]) -> subprocess.Popen:
    """apache2 in the foreground with only what the examples need, on the given loopback ports."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # mod_wsgi's sockets live here; the workers (www-data) must reach them
    modules = [
        "mpm_event",
        "authz_core",
        "mime",
        "dir",
        "alias",
        "rewrite",
        "headers",
        "ssl",
        "socache_shmcb",
        "proxy",
        "proxy_http",
        "wsgi",
    ]
    conf = folder / "apache2.conf"
    conf.write_text(
        "\n".join(
            [f"LoadModule {name}_module {MODULES / f'mod_{name}.so'}" for name in modules]
            + [f"Listen 127.0.0.1:{port}" for port in ports]
            + [
                f"ServerRoot {folder}",
                "ServerName 127.0.0.1",
                f"PidFile {folder / 'apache2.pid'}",
                f"DefaultRuntimeDir {folder}",
                f"ErrorLog {folder / 'error.log'}",
                "LogLevel warn",
                "TypesConfig /etc/mime.types",
                "User www-data",
                "Group www-data",
                f"WSGISocketPrefix {folder / 'wsgi'}",
                f"Include {folder / 'site.conf'}",
            ]
        )
        + "\n"
    )
    (folder / "site.conf").write_text(site)
    checked = subprocess.run(["apache2", "-f", str(conf), "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    output = (folder / "output.log").open("w")
    return subprocess.Popen(["apache2", "-f", str(conf), "-DFOREGROUND"], stdout=output, stderr=output)


def _wait_for(apache: subprocess.Popen, folder: Path, port: int, cert: Path) -> None:
    try:
        wait_until_serving(f"https://127.0.0.1:{port}/monitoring/health/", apache, verify=str(cert))
    except (RuntimeError, TimeoutError) as error:
        logs = [
            (folder / name).read_text() for name in ("output.log", "error.log") if (folder / name).exists()
        ]
        raise AssertionError(f"{error}\n" + "\n".join(logs)) from None


def _stop(apache: subprocess.Popen) -> None:
    apache.terminate()
    apache.wait(timeout=30)


def _agent_session(base: str, cert: Path) -> requests.Session:
    session = requests.Session()
    session.verify = str(cert)
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would win over verify
    session.get(base + "/login/", timeout=30)
    answer = session.post(
        base + "/login/",
        data={
            "username": "agnes",
            "password": "pw-agnes-long-enough",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": base + "/login/"},  # Django checks it on HTTPS
        timeout=30,
    )
    assert answer.status_code == 200 and "sessionid" in session.cookies, answer.text[:500]
    return session


def _check_site(http: int, https: int, cert: Path) -> None:
    redirect = requests.get(f"http://127.0.0.1:{http}/tickets/?q=1", allow_redirects=False, timeout=30)
    assert redirect.status_code == 301
    assert re.fullmatch(r"https://[^/]+/tickets/\?q=1", redirect.headers["Location"])
    base = f"https://127.0.0.1:{https}"
    login_page = requests.get(base + "/login/", verify=str(cert), timeout=30)
    assert login_page.status_code == 200 and 'name="password"' in login_page.text
    assert "Strict-Transport-Security" in login_page.headers  # prod's HTTPS protections, on
    static = requests.get(base + "/static/crm/helpdesk.css", verify=str(cert), timeout=30)
    assert static.status_code == 200 and static.headers["Content-Type"].startswith("text/css")
    tickets = _agent_session(base, cert).get(base + "/tickets/", timeout=30)
    assert tickets.status_code == 200 and "Printer through Apache" in tickets.text


def test_the_mod_wsgi_example_serves_the_helpdesk_as_the_deployments_user(deployment, certificate):
    http, https = free_port(), free_port()
    site = _site("helpdesk-wsgi.conf", deployment, {80: http, 443: https}, *certificate)
    folder = deployment.parent / "apache-wsgi"
    apache = _apache(folder, site, [http, https])
    try:
        _wait_for(apache, folder, https, certificate[0])
        _check_site(http, https, certificate[0])
        log = deployment / "shared" / "logs" / "helpdesk.log"
        assert log.stat().st_uid == 65534  # written by the daemon, as the configured account
        _switch_and_reload_as_documented(deployment, "helpdesk-wsgi.conf", https, certificate[0])
    finally:
        _stop(apache)


def _switch_and_reload_as_documented(root: Path, example: str, port: int, cert: Path) -> None:
    """What `update` does after preparing a release: switch `current`, run the example's reload
    command (no root), and the new release answers."""
    _release(root, "v2.0.0")
    link = root / ".current.new"
    link.symlink_to("releases/v2.0.0")
    os.replace(link, root / "current")
    documented = re.search(r"UPDATER_RELOAD_COMMAND=(touch \S+)", (EXAMPLES / example).read_text())
    assert documented, "the example documents a reload without root"
    command = shlex.split(documented.group(1).replace("/srv/helpdesk", str(root)))
    subprocess.run(command, check=True)
    deadline = time.monotonic() + 30
    version = None
    while time.monotonic() < deadline and version != "v2.0.0":
        health = requests.get(
            f"https://127.0.0.1:{port}/monitoring/health/",
            headers={"Authorization": f"Bearer {TOKEN}"},
            verify=str(cert),
            timeout=30,
        )
        version = health.json().get("version")
        time.sleep(0.2)
    assert version == "v2.0.0"


def test_the_proxy_example_serves_gunicorn_over_https(deployment, certificate, tmp_path):
    http, https, upstream = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ENV"))}
    env |= {
        "GUNICORN_BIND": f"127.0.0.1:{upstream}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_PIDFILE": str(tmp_path / "gunicorn.pid"),
    }
    gunicorn = start_gunicorn(env, deployment / "current", sys.executable, log=tmp_path / "gunicorn.log")
    wait_until_serving(f"http://127.0.0.1:{upstream}/monitoring/health/", gunicorn)
    site = _site(
        "helpdesk-proxy.conf",
        deployment,
        {80: http, 443: https},
        *certificate,
        **{"http://127.0.0.1:8000/": f"http://127.0.0.1:{upstream}/"},
    )
    folder = deployment.parent / "apache-proxy"
    apache = _apache(folder, site, [http, https])
    try:
        _wait_for(apache, folder, https, certificate[0])
        _check_site(http, https, certificate[0])
    finally:
        _stop(apache)
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
