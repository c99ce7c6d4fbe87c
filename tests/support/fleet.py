"""A fleet on this machine for the Ansible tests and the fleet benchmark: an sshd on 127.0.0.1 with
a key made for the test (Ansible's way in), HAProxy from deploy/haproxy/haproxy.cfg in front of app
servers, and ansible-playbook runs of deploy/ansible/. Every address is on the loopback."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.deployments import REPO_ROOT, serve_current
from tests.support.processes import free_port, wait_until_serving
from tests.support.sshd import Sshd, wait_for_port

PLAYBOOKS = REPO_ROOT / "deploy" / "ansible"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@dataclass
class Balancer:
    """HAProxy from deploy/haproxy/haproxy.cfg with the test's servers, port and admin socket."""

    folder: Path
    servers: dict[str, int]  # name in the backend -> its port on 127.0.0.1
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.folder / "admin.sock"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        example = (REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
        text = example.replace("/run/haproxy/admin.sock", str(self.socket))
        text = text.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{self.port}")
        text = re.sub(r"^\s*log /dev/log.*\n", "", text, flags=re.M)
        text = re.sub(r"^    server app.*\n", "", text, flags=re.M)
        text += "".join(f"    server {name} 127.0.0.1:{port}\n" for name, port in self.servers.items())
        config = self.folder / "haproxy.cfg"
        config.write_text(text)
        self.process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "haproxy.log").open("w"),
        )
        wait_for_port(self.port, self.process)

    def _ask(self, command: str) -> str:
        """One command to HAProxy's runtime API, its whole answer."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(self.socket))
            conn.sendall(command.encode() + b"\n")
            return b"".join(iter(lambda: conn.recv(65536), b"")).decode()

    def states(self) -> dict[str, str]:
        """Each server's status column of `show stat`: UP, DOWN, DRAIN, MAINT, "UP 1/2", ..."""
        states = {}
        for line in self._ask("show stat").splitlines()[1:]:
            fields = line.split(",")
            if len(fields) > 17 and fields[1] in self.servers:
                states[fields[1]] = fields[17]
        return states

    def admin_states(self) -> dict[str, int]:
        """Each server's admin state from `show servers state`: 0 is ready (in the balancer), a
        drained or disabled server has a flag set (HAProxy's SRV_ADMF_*)."""
        states = {}
        for line in self._ask("show servers state helpdesk").splitlines()[2:]:  # a version line, the header
            fields = line.split()
            if len(fields) > 6 and fields[3] in self.servers:
                states[fields[3]] = int(fields[6])
        return states

    def wait_all_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(self.states().values()) == {"UP"}:
                return
            time.sleep(0.2)
        raise TimeoutError(f"HAProxy's servers are not all UP: {self.states()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def inventory(path: Path, sshd: Sshd, hosts: dict[str, Path], balancer: Balancer) -> Path:
    """An inventory like deploy/ansible/inventory.example.ini, every host reached through the sshd."""
    connection = (
        f"ansible_host=127.0.0.1 ansible_port={sshd.port} ansible_user=root "
        f"ansible_ssh_private_key_file={sshd.key} ansible_python_interpreter=/usr/bin/python3"
    )
    lines = ["[app]"]
    lines += [f"{name} {connection} helpdesk_root={root}" for name, root in hosts.items()]
    lines += ["", "[balancer]", f"lb {connection}", "", "[balancer:vars]"]
    lines += [f"haproxy_socket={balancer.socket}", "haproxy_backend=helpdesk", ""]
    lines += [
        "[all:vars]",
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def playbook_environment(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(folder / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(folder / "cp"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


def ansible_playbook(playbook: str, inventory_file: Path, folder: Path, **extra_vars: str) -> list[str]:
    """The argument list of ansible-playbook (from the test venv) for deploy/ansible/<playbook>."""
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory_file)]
    for name, value in {"fleet_reports": str(folder / "reports"), **extra_vars}.items():
        command += ["-e", f"{name}={value}"]
    return [*command, str(PLAYBOOKS / playbook)]


def run_playbook(
    playbook: str, inventory_file: Path, folder: Path, timeout: float = 900, **extra_vars: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ansible_playbook(playbook, inventory_file, folder, **extra_vars),
        env=playbook_environment(folder),
        cwd=PLAYBOOKS,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_playbook(
    playbook: str, inventory_file: Path, folder: Path, log: Path, **extra_vars: str
) -> subprocess.Popen:
    """A playbook in the background, in its own process group (killed whole by kill_group)."""
    return subprocess.Popen(
        ansible_playbook(playbook, inventory_file, folder, **extra_vars),
        env=playbook_environment(folder),
        cwd=PLAYBOOKS,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


class Fleet:
    """App servers on this machine: one deployment root each (created by init.yml over the sshd),
    each served by its own gunicorn on its own port, behind one HAProxy."""

    def __init__(self, tmp: Path, names: tuple[str, ...] = ("app1", "app2", "app3")) -> None:
        self.tmp = tmp
        self.roots = {name: tmp / name / "srv" for name in names}
        self.servers: dict[str, subprocess.Popen] = {}
        self.bases: dict[str, str] = {}
        self.sshd = Sshd(tmp / "sshd")
        self.balancer: Balancer | None = None
        self.inventory = tmp / "inventory.ini"
        self.ansible = tmp / "ansible"

    def create(
        self, repo: Path, version: str, env_file: Path, wheelhouse: Path, venv: tuple[str, Path]
    ) -> None:
        """sshd, then every deployment root by init.yml; `venv` (its key, its path) is found built."""
        for root in self.roots.values():
            (root / "shared" / "venvs").mkdir(parents=True)
            (root / "shared" / "venvs" / venv[0]).symlink_to(venv[1])
        self.sshd.start()
        inventory(self.inventory, self.sshd, self.roots, Balancer(self.tmp / "haproxy", {}))
        init = self.playbook(
            "init.yml",
            version=version,
            repo=str(repo),
            env_file=str(env_file),
            wheelhouse=str(wheelhouse),
            helpdesk_bootstrap_dir=str(REPO_ROOT),
        )
        if init.returncode != 0:
            raise RuntimeError(f"init.yml failed:\n{init.stdout[-3000:]}")

    def serve_all(self, **settings: str) -> None:
        """Every server's gunicorn, then HAProxy in front of them (all UP)."""
        for name in self.roots:
            self.serve(name, **settings)
        self.balancer = Balancer(self.tmp / "haproxy", {name: self.port(name) for name in self.roots})
        self.balancer.start()
        inventory(self.inventory, self.sshd, self.roots, self.balancer)
        self.balancer.wait_all_up()

    def serve(self, name: str, **settings: str) -> None:
        """gunicorn (2 workers, HUP reloads) for one server; its reload pidfile and health URL go into
        its shared/.env with `settings`. Started again after a kill, it takes the port it had (as
        systemd would)."""
        if name in self.bases:
            process, _ = serve_current(self.roots[name], self.port(name), configure=False)
        else:
            process, self.bases[name] = serve_current(self.roots[name], **settings)
        self.servers[name] = process
        wait_until_serving(self.bases[name] + "/monitoring/health/", process)

    def kill_server(self, name: str) -> None:
        """SIGKILL a server's gunicorn, master and workers (a crashed host)."""
        master = psutil.Process(self.servers[name].pid)
        for process in [*master.children(recursive=True), master]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.servers[name].wait(timeout=30)

    def port(self, name: str) -> int:
        return int(self.bases[name].rsplit(":", 1)[1])

    def playbook(self, name: str, **extra_vars: str) -> subprocess.CompletedProcess:
        return run_playbook(name, self.inventory, self.ansible, **extra_vars)

    def versions(self) -> dict[str, str]:
        return {name: (root / "current").resolve().name for name, root in self.roots.items()}

    def journal(self, name: str, fleet_run: str) -> dict:
        """A server's journal of a fleet run ({} when it never began there)."""
        for path in sorted((self.roots[name] / "shared" / "updates").glob("*.json"), reverse=True):
            data = json.loads(path.read_text())
            if data.get("facts", {}).get("fleet_run") == fleet_run:
                return data
        return {}

    def stop(self) -> None:
        for process in self.servers.values():
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        if self.balancer:
            self.balancer.stop()
        self.sshd.stop()
