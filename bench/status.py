"""Benchmark: /monitoring/status/ under 50 concurrent pollers, against django-health-check.

    .venv/bin/python bench/status.py [--connections 50] [--seconds 30]

One gunicorn (2 sync workers) on a throwaway MariaDB serves both: our `/monitoring/status/` (with the
detail a dashboard's bearer token unlocks) and django-health-check's view at `/ht/` with its database
and psutil (CPU, memory, disk) checks. `wrk` (Debian's package; installed when missing and root)
drives each for the same time with the same number of connections, one after the other (worker
recycling is off for both: at these rates it would restart each worker every second). Printed:
requests per second, latency p50/p99, and non-2xx answers; issue targets: >= 4x its throughput,
p99 <= 50 ms, no 5xx caused by the load itself.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.mariadb import MariaDBServer  # noqa: E402
from tests.support.processes import gunicorn_environment, start_gunicorn, wait_until_serving  # noqa: E402

TOKEN = "bench-status-token"  # noqa: S105 (a throwaway server on the loopback)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    wrk = _wrk()

    with (
        tempfile.TemporaryDirectory(prefix="bench-status-") as tmp,
        MariaDBServer(Path(tmp) / "db") as server,
    ):
        env = gunicorn_environment(
            Path(tmp),
            server.url(),
            DJANGO_SETTINGS_MODULE="bench.healthcheck_settings",
            BACKUP_DIR=str(Path(tmp) / "backups"),
            MONITORING_TOKEN=TOKEN,
            # deploy/gunicorn.conf.py recycles a worker every 2,000 requests (a guard against leaks); at
            # thousands of requests a second that is a fork and a Django import every second, both sides.
            GUNICORN_MAX_REQUESTS="0",
        )
        manage = [sys.executable, str(REPO_ROOT / "manage.py")]
        for command in (["migrate", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
            subprocess.run([*manage, *command], env=env, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
        gunicorn = start_gunicorn(env, REPO_ROOT, sys.executable, log=Path(tmp) / "gunicorn.log")
        base = f"http://{env['GUNICORN_BIND']}"
        try:
            wait_until_serving(base + "/monitoring/health/", gunicorn)
            print(f"wrk: {args.connections} connections, {args.seconds} s each, gunicorn 2 workers, MariaDB")
            ours = _load(wrk, base + "/monitoring/status/", args, ["-H", f"Authorization: Bearer {TOKEN}"])
            anchor = _load(wrk, base + "/ht/", args, ["-H", "Accept: application/json"])
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
    print(f"{'endpoint':<42} {'req/s':>8} {'p50':>9} {'p99':>9} {'non-2xx':>8}")
    for name, result in (("ours: /monitoring/status/ (detail)", ours), ("django-health-check: /ht/", anchor)):
        print(
            f"{name:<42} {result['rps']:8.0f} {result['p50']:7.1f}ms {result['p99']:7.1f}ms "
            f"{result['non2xx']:>8}"
        )
    print(
        f"throughput ours / anchor: {ours['rps'] / anchor['rps']:.1f}x (target >= 4x); "
        f"p99 ours {ours['p99']:.1f} ms (target <= 50 ms)"
    )


def _wrk() -> str:
    found = shutil.which("wrk")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return found


def _load(wrk: str, url: str, args, headers: list[str]) -> dict:
    warm = [wrk, "-t1", "-c4", "-d2s", *headers, url]
    subprocess.run(warm, check=True, capture_output=True)
    command = [
        wrk,
        "-t2",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "--latency",
        "--timeout",
        "10s",
        *headers,
        url,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
        "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)) else 0,
    }


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


if __name__ == "__main__":
    main()
