"""Clients hammering a served helpdesk while something happens to it (an update, a rollback), until
told to stop: when each request started and ended and what it got, for the zero-downtime tests and
the downtime benchmark (tests/support/load.py is the time-boxed mixed load of the concurrency tests).

Readers are logged-in agents fetching the ticket list; writers open tickets through the JSON API
with a token, each with a unique title, so that a test can check afterwards that every ticket the
site acknowledged (201) is still there.
"""

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from tests.support.processes import login

OK, MAINTENANCE, FAILED = "ok", "maintenance", "failed"


@dataclass
class Sample:
    started: float
    finished: float
    outcome: str  # OK, MAINTENANCE (503 with Retry-After) or FAILED
    detail: str = ""  # what failed: a status code or an exception's name


@dataclass
class Load:
    """`readers` clients on /tickets/ and `writers` clients opening tickets, each in a loop."""

    base: str
    readers: int
    writers: int = 0
    username: str = "agent1"
    password: str = "agent"
    samples: list[Sample] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # titles of tickets the site answered 201 for
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        clients = [
            (self._reader, login(self.base, self.username, self.password)) for _ in range(self.readers)
        ]
        if self.writers:
            token = requests.post(
                self.base + "/api/token/",
                data={"username": self.username, "password": self.password},
                timeout=10,
            ).json()["token"]
            headers = {"Authorization": f"Token {token}"}
            organization = requests.get(self.base + "/api/tickets/", headers=headers, timeout=10).json()
            organization = organization["results"][0]["organization"]
            for _ in range(self.writers):
                session = requests.Session()
                session.headers.update(headers)
                clients.append((lambda s, org=organization: self._writer(s, org), session))
        self._threads = [threading.Thread(target=run, args=(s,), daemon=True) for run, s in clients]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _reader(self, session: requests.Session) -> None:
        while not self._stop.is_set():
            self._request(
                lambda: session.get(self.base + "/tickets/", timeout=30, allow_redirects=False), 200
            )

    def _writer(self, session: requests.Session, organization: int) -> None:
        while not self._stop.is_set():
            title = f"load {uuid.uuid4().hex[:12]}"
            data = {"title": title, "description": "written during an update", "organization": organization}
            if self._request(
                lambda data=data: session.post(self.base + "/api/tickets/", json=data, timeout=30), 201
            ):
                with self._lock:
                    self.created.append(title)

    def _request(self, send, expected: int) -> bool:
        started = time.time()
        detail = ""
        try:
            response = send()
            if response.status_code == expected:
                outcome = OK
            elif response.status_code == 503 and response.headers.get("Retry-After"):
                outcome = MAINTENANCE
            else:
                outcome, detail = FAILED, f"HTTP {response.status_code}"
        except requests.RequestException as error:
            outcome, detail = FAILED, type(error).__name__
            time.sleep(0.01)  # a refused connection returns at once; do not spin
        with self._lock:
            self.samples.append(Sample(started, time.time(), outcome, detail))
        return outcome == OK

    def between(self, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.finished >= start and s.started <= end]


def count(samples: list[Sample], outcome: str) -> int:
    return sum(sample.outcome == outcome for sample in samples)


def longest_gap(samples: list[Sample], start: float, end: float) -> float:
    """The longest stretch inside [start, end] in which no request completed successfully."""
    moments = sorted(s.finished for s in samples if s.outcome == OK and start <= s.finished <= end)
    edges = [start, *moments, end]
    return max(b - a for a, b in itertools.pairwise(edges))
