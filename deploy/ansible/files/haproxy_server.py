#!/usr/bin/env python3
"""Take one app server out of HAProxy and put it back, through HAProxy's runtime API (admin socket).

    haproxy_server.py --socket /run/haproxy/admin.sock --backend helpdesk --server app1 drain [--wait 60]
    haproxy_server.py --socket ... --backend helpdesk --server app1 ready
    haproxy_server.py --socket ... --backend helpdesk show

`drain` stops new requests to the server and waits until it has no request in flight (HAProxy's
`scur`), so that its reload and switch are seen by nobody; `ready` puts it back. Run on the balancer by
deploy/ansible/update.yml (ansible.builtin.script); only the standard library, so the balancer needs
nothing but python3. Exit 1 with a message when the socket refuses or the server is unknown.
"""

import argparse
import csv
import io
import socket
import sys
import time


def ask(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(path)
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers(path: str, backend: str) -> dict[str, dict]:
    """Each server of the backend: its status line from `show stat` (status, scur, ...)."""
    text = ask(path, "show stat").lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {
        row["svname"]: row
        for row in rows
        if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def set_state(path: str, backend: str, server: str, state: str) -> None:
    if server not in servers(path, backend):
        raise SystemExit(f"HAProxy has no server {server} in backend {backend}")
    answer = ask(path, f"set server {backend}/{server} state {state}").strip()
    if answer:  # HAProxy answers nothing when the command worked
        raise SystemExit(f"HAProxy refused `set server {backend}/{server} state {state}`: {answer}")


def wait_drained(path: str, backend: str, server: str, timeout: float) -> int:
    """Seconds until the server had no request in flight; SystemExit when timeout passed first."""
    deadline = time.monotonic() + timeout
    while True:
        in_flight = int(servers(path, backend)[server]["scur"] or 0)
        if in_flight == 0:
            return 0
        if time.monotonic() > deadline:
            raise SystemExit(f"{backend}/{server} still has {in_flight} requests after {timeout:.0f}s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="HAProxy admin socket (level admin)")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--server", help="the server's name in the backend (drain, ready)")
    parser.add_argument("--wait", type=float, default=60, help="seconds drain waits for requests in flight")
    parser.add_argument("action", choices=["drain", "ready", "show"])
    args = parser.parse_args()
    try:
        if args.action == "show":
            for name, row in servers(args.socket, args.backend).items():
                print(f"{name} {row['status']} in-flight={row['scur']}")
            return
        if not args.server:
            raise SystemExit(f"{args.action} needs --server")
        set_state(args.socket, args.backend, args.server, args.action)
        if args.action == "drain":
            wait_drained(args.socket, args.backend, args.server, args.wait)
        print(f"{args.backend}/{args.server}: {args.action}")
    except OSError as error:
        raise SystemExit(f"HAProxy's socket {args.socket}: {error}") from error


if __name__ == "__main__":
    sys.exit(main())
