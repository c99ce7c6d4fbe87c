"""apt and dpkg for update_system: what can be upgraded (with origins and versions), what is held back
and why, interrupted dpkg state, the upgrade itself (non-interactive, existing conffiles kept), and
which systemd units the upgraded packages ship.

Every call is an argument list with a timeout, LC_ALL=C (the output is parsed), DEBIAN_FRONTEND=
noninteractive and stdin closed, so nothing can wait for an answer. SYSTEM_APT_CONFIG, when set, is
passed as APT_CONFIG: apt then reads its own sources list and keeps its own lists and cache (the tests
use a private file repository that way; the machine's sources stay untouched).
"""

import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
# "Inst nginx [1.22.1-9] (1.22.1-9+deb12u1 Debian-Security:12/stable-security [amd64])"
_INST = re.compile(
    r"^Inst (?P<name>\S+) (?:\[(?P<old>[^\]]+)\] )?"
    r"\((?P<new>\S+) (?P<origins>[^\[]*?)\s*\[(?P<arch>[^\]]+)\]\)"
)
_UNIT = re.compile(r"^/(?:usr/)?lib/systemd/system/[^/]+\.service$")
CRITICAL, IMPORTANT, ROUTINE = "critical", "important", "routine"
_DATABASES = ("mariadb", "mysql", "postgresql")
_WEB = ("apache2", "nginx", "helpdesk", "gunicorn")


KEPT_BACK = (
    "the new version needs new or removed packages, which an upgrade never does; "
    "review `apt-get -s dist-upgrade` and install it by hand"
)


class AptError(Exception):
    pass


@dataclass(frozen=True)
class Upgrade:
    name: str
    installed: str
    candidate: str
    origins: str  # "Debian-Security:12/stable-security, Debian:12.8/stable" as apt prints them
    update_class: str

    @property
    def security(self) -> bool:
        return "security" in self.origins.lower()


@dataclass(frozen=True)
class Held:
    name: str
    reason: str


def validate_names(names: list[str]) -> list[str]:
    for name in names:
        if not PACKAGE_NAME.match(name):
            raise AptError(f"{name!r} is not a Debian package name")
    return names


def run(args: list[str], timeout: int | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env.update(LC_ALL="C", DEBIAN_FRONTEND="noninteractive", APT_LISTCHANGES_FRONTEND="none")
    if settings.SYSTEM_APT_CONFIG:
        env["APT_CONFIG"] = settings.SYSTEM_APT_CONFIG
    timeout = timeout or settings.SYSTEM_UPDATE_TIMEOUT
    try:
        result = subprocess.run(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AptError(
            f"{args[0]} {args[1] if len(args) > 1 else ''} did not finish within {timeout}s"
        ) from None
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise AptError(f"{' '.join(args[:3])} failed (exit {result.returncode}):\n{tail}")
    return result


def interrupted() -> str:
    """What `dpkg --audit` complains about (empty when dpkg is in a clean state)."""
    return run(["dpkg", "--audit"], timeout=120, check=False).stdout.strip()


def repair() -> str:
    """Finish interrupted package configuration (`dpkg --configure -a`), keeping existing conffiles."""
    result = run(["dpkg", "--force-confdef", "--force-confold", "--configure", "-a"], check=True)
    return result.stdout.strip()


def refresh() -> None:
    run(["apt-get", "update", "-q"], timeout=600)


def classify(name: str, origins: str) -> str:
    if "security" in origins.lower():
        return CRITICAL
    if any(fnmatch.fnmatch(name, pattern) for pattern in settings.SYSTEM_IMPORTANT_PACKAGES):
        return IMPORTANT
    return ROUTINE


def upgradable() -> tuple[list[Upgrade], list[Held]]:
    """What `apt-get upgrade` would do, and every package it would keep back, with the reason."""
    output = run(["apt-get", "-s", "-q", "upgrade"], timeout=600).stdout
    upgrades = []
    for line in output.splitlines():
        match = _INST.match(line)
        if match:
            upgrades.append(
                Upgrade(
                    match["name"],
                    match["old"] or "",
                    match["new"],
                    match["origins"].strip(),
                    classify(match["name"], match["origins"]),
                )
            )
    held_by_admin = set(run(["apt-mark", "showhold"], timeout=60).stdout.split())
    held = []
    for name in sorted(_kept_back(output) | _with_candidate(held_by_admin)):
        if name in held_by_admin:
            held.append(Held(name, "held with `apt-mark hold`; `apt-mark unhold` it to upgrade"))
        else:
            held.append(Held(name, KEPT_BACK))
    return upgrades, held


def _kept_back(output: str) -> set[str]:
    names, collecting = set(), False
    for line in output.splitlines():
        if line.startswith("The following packages have been kept back") or line.startswith(
            "The following packages were held back"
        ):
            collecting = True
            continue
        if collecting and line.startswith("  "):
            names.update(line.split())
        elif collecting:
            collecting = False
    return names


def _with_candidate(names: set[str]) -> set[str]:
    """Held packages that have something newer to offer."""
    if not names:
        return set()
    output = run(["apt-cache", "policy", "--", *sorted(names)], timeout=120).stdout
    newer, current, installed = set(), None, None
    for line in output.splitlines():
        if not line.startswith(" "):
            current = line.rstrip(":")
        elif line.strip().startswith("Installed:"):
            installed = line.split(":", 1)[1].strip()
        elif line.strip().startswith("Candidate:"):
            candidate = line.split(":", 1)[1].strip()
            if current and installed not in (None, "(none)") and candidate != installed:
                newer.add(current)
    return newer


def upgrade(names: list[str]) -> str:
    """Upgrade exactly these packages; existing conffiles are kept (the new ones land as .dpkg-dist)."""
    validate_names(names)
    command = [
        "apt-get",
        "install",
        "--only-upgrade",
        "-y",
        "-q",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "--",
        *names,
    ]
    return run(command).stdout


def units_of(names: list[str]) -> list[str]:
    """systemd services shipped by these packages, databases first and web servers last."""
    units = []
    for name in names:
        listing = run(["dpkg", "-L", "--", name], timeout=60, check=False).stdout
        units += [Path(line).name for line in listing.splitlines() if _UNIT.match(line.strip())]
    return sorted(set(units), key=_restart_order)


def _restart_order(unit: str) -> tuple[int, str]:
    if unit.startswith(_DATABASES):
        return (0, unit)
    if unit.startswith(_WEB):
        return (2, unit)
    return (1, unit)
