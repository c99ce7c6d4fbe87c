"""Concurrent clients of a running helpdesk for the concurrency tests and the mixed-load benchmark:
logged-in sessions doing what agents and customers do, each request recorded with its status, its
duration and the unique text it wrote (so that the database can be checked for it afterwards)."""

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from tests.support.processes import login


@dataclass(frozen=True)
class Request:
    kind: str  # comment, edit, upload, note, list, detail, create
    status: int  # 0: no answer (connection error or timeout)
    seconds: float
    written: str = ""  # the unique text or file name the request wrote, if any


@dataclass
class Record:
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def acknowledged(self, kind: str) -> list[str]:
        """What the server said it stored: 2xx and 3xx answers (a form post redirects)."""
        return [r.written for r in self.requests if r.kind == kind and 200 <= r.status < 400]

    def server_errors(self) -> list[Request]:
        return [r for r in self.requests if r.status >= 500 or r.status == 0]

    def p95(self) -> float:
        times = sorted(r.seconds for r in self.requests)
        return times[int(len(times) * 0.95)] if times else 0.0


class Client:
    """One browser: a session logged in through the form, posting with its CSRF token."""

    def __init__(self, base: str, username: str, password: str, record: Record) -> None:
        self.base = base
        self.session = login(base, username, password)
        self.record = record

    def _send(self, kind: str, written: str, method: str, path: str, **options) -> requests.Response | None:
        started = time.monotonic()
        response = None
        try:
            response = self.session.request(
                method, self.base + path, timeout=30, allow_redirects=False, **options
            )
            status = response.status_code
        except requests.RequestException:
            status = 0
        self.record.add(Request(kind, status, time.monotonic() - started, written))
        return response

    def _post(self, kind: str, written: str, path: str, data: dict, **options) -> None:
        data = {**data, "csrfmiddlewaretoken": self.session.cookies["csrftoken"]}
        self._send(kind, written, "POST", path, data=data, **options)

    def comment(self, ticket: int, body: str) -> None:
        self._post("comment", body, f"/tickets/{ticket}/comments/", {"body": body})

    def edit(self, ticket: int, description: str, title: str) -> None:
        data = {"title": title, "description": description, "priority": "normal"}
        self._post("edit", description, f"/tickets/{ticket}/edit/", data)

    def upload(self, ticket: int, name: str) -> None:
        files = {"file": (name, f"contents of {name}\n".encode(), "text/plain")}
        self._post("upload", name, f"/tickets/{ticket}/attachments/", {}, files=files)

    def create(self, title: str, organization: int | None = None) -> None:
        data = {"title": title, "description": "d", "priority": "low"}
        if organization is not None:  # agents choose the organization; customers open for their own
            data["organization"] = str(organization)
        self._post("create", title, "/tickets/create/", data)

    def ticket_list(self) -> None:
        self._send("list", "", "GET", "/tickets/")

    def detail(self, ticket: int) -> None:
        self._send("detail", "", "GET", f"/tickets/{ticket}/")


class ApiClient:
    """An agent's script using the JSON API with a token."""

    def __init__(self, base: str, token: str, record: Record) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.record = record

    def note(self, ticket: int, text: str) -> None:
        started = time.monotonic()
        try:
            status = self.session.patch(
                f"{self.base}/api/tickets/{ticket}/", json={"resolution_notes": text}, timeout=30
            ).status_code
        except requests.RequestException:
            status = 0
        self.record.add(Request("note", status, time.monotonic() - started, text))


def run_for(seconds: float, clients: list, work: Callable[[object, int, int], None]) -> None:
    """Each client in its own thread calls work(client, client_number, step) until the time is up."""
    deadline = time.monotonic() + seconds

    def loop(number: int, client) -> None:
        for step in itertools.count():
            if time.monotonic() >= deadline:
                return
            work(client, number, step)

    threads = [threading.Thread(target=loop, args=(n, c), daemon=True) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
