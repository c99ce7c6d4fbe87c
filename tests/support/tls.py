"""A self-signed certificate for 127.0.0.1, made with openssl: what a test's https server presents."""

import subprocess
from pathlib import Path


def self_signed_certificate(folder: Path, days: int = 1) -> tuple[Path, Path]:
    """(certificate, key) in `folder`, valid for 127.0.0.1 only."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
