"""A real HTTP server on the loopback that records requests and answers as told: ok, 500, or never."""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.processes import free_port


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | str


class Webhook:
    """`with Webhook(answer=200) as hook:` — POST/PUT/PATCH to hook.url(); hook.calls lists them.

    answer: an HTTP status, or "hang" to read the request and never answer (until the server stops)."""

    def __init__(self, answer: int | str = 200) -> None:
        self.answer = answer
        self.calls: list[Call] = []
        self.port = free_port()
        self._release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                hook.calls.append(Call(self.command, self.path, dict(self.headers), body))
                if hook.answer == "hang":
                    hook._release.wait(60)
                    return
                self.send_response(int(hook.answer))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook/SECRET-TOKEN-PART") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "Webhook":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
