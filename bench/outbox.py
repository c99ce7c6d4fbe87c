"""Benchmark: sending 10,000 queued notifications from the outbox against send_mail per message.

    .venv/bin/python bench/outbox.py [--messages 10000]

One run, one real SMTP server on the loopback (aiosmtpd in its own process, keeping nothing), a
SQLite database in a temporary folder:
  anchor: django.core.mail.send_mail for each message, the handbook's way (its integration scripts
          call send_mail): a new SMTP connection, greeting and QUIT for every message
  ours:   `send_notifications` (crm/outbox.py): the due mails read in one query, sent over one
          connection, marked sent in bulk
Both against a plain SMTP server and against one that asks what a real relay asks (STARTTLS, then
AUTH): send_mail pays the handshake for every message, the outbox once. Prints messages per second
and the ratios. Issue target: >= 5x.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.processes import free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        os.environ.update(
            {
                "ENV_FILE": str(Path(tmp) / "bench.env"),
                "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
                "UPDATER_STATE_DIR": str(Path(tmp) / "state"),
                "LOG_LEVEL": "WARNING",
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "NOTIFY_OUTBOX_THREAD": "False",
            }
        )
        Path(tmp, "bench.env").write_text("")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from crm import outbox
        from crm.models import OutboundMail
        from tests.support.tls import self_signed_certificate

        call_command("migrate", verbosity=0)
        certificate, key = self_signed_certificate(Path(tmp))
        os.environ["SSL_CERT_FILE"] = str(certificate)  # the client trusts the sink's certificate
        print(f"{args.messages} notifications to an SMTP server on the loopback; wall clock, one run\n")
        for label, tls in (("plain SMTP", False), ("STARTTLS + AUTH, as a relay asks", True)):
            anchor, ours = _compare(args.messages, tls, certificate, key, settings, OutboundMail, outbox)
            print(f"  {label}:")
            print(
                f"    send_mail per message (anchor)   {anchor:6.1f} s  {args.messages / anchor:6.0f} msg/s"
            )
            print(f"    send_notifications (outbox)      {ours:6.1f} s  {args.messages / ours:6.0f} msg/s")
            print(f"    ratio: {anchor / ours:.1f}x the anchor's rate (target >= 5x)\n")


def _compare(
    count: int, tls: bool, certificate: Path, key: Path, settings, OutboundMail, outbox
) -> tuple[float, float]:
    from django.core.mail import send_mail

    port = free_port()
    command = [sys.executable, str(REPO_ROOT / "bench" / "smtp_sink.py"), str(port)]
    if tls:
        command += ["--tls", str(certificate), str(key)]
    env = {**os.environ, "SINK_USER": "helpdesk", "SINK_PASSWORD": "relay-password-" + "p" * 12}
    server = subprocess.Popen(command, env=env)  # its own process, as a real mail server: no shared GIL
    try:
        _wait_for(port)
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, tls
        settings.EMAIL_HOST_USER = env["SINK_USER"] if tls else ""
        settings.EMAIL_HOST_PASSWORD = env["SINK_PASSWORD"] if tls else ""
        mails = [
            OutboundMail(
                recipient=f"customer{i}@mail.example",
                subject=f"[#{i}] Drukarka nie drukuje — Nowy komentarz",
                body=f"Dzień dobry,\n\nagnes skomentował(a) zgłoszenie #{i}:\n\nProszę ją zrestartować.\n",
                headers={"Auto-Submitted": "auto-generated", "X-Helpdesk-Ticket": str(i)},
                event="commented",
            )
            for i in range(count)
        ]
        started = time.perf_counter()
        for mail in mails:
            send_mail(mail.subject, mail.body, settings.DEFAULT_FROM_EMAIL, [mail.recipient])
        anchor = time.perf_counter() - started
        OutboundMail.objects.all().delete()
        OutboundMail.objects.bulk_create(mails, batch_size=1000)
        settings.NOTIFY_OUTBOX_BATCH = count
        started = time.perf_counter()
        drained = outbox.drain()
        ours = time.perf_counter() - started
        assert drained.sent == count, drained
        return anchor, ours
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the SMTP server did not start")


if __name__ == "__main__":
    main()
