"""An SMTP server for bench/outbox.py, in a process of its own: accepts and discards every message.

    python bench/smtp_sink.py PORT [--tls CERT KEY]

With --tls it is what a real relay asks of its clients: STARTTLS first, then AUTH LOGIN/PLAIN with
the user and password given in SINK_USER and SINK_PASSWORD (the environment: never in argv).
"""

import argparse
import os
import ssl
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    # aiosmtpd warns about its own Session.login_data on every login: a line on stderr per message
    # would slow the anchor down for nothing.
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    options = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
        user, password = os.environ["SINK_USER"].encode(), os.environ["SINK_PASSWORD"].encode()

        def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
            good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                user,
                password,
            )
            return AuthResult(success=good)

        options = {
            "tls_context": context,
            "require_starttls": True,
            "authenticator": authenticate,
            "auth_required": True,
            "auth_require_tls": True,
        }
    controller = Controller(Sink(), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
