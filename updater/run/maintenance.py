"""Maintenance mode: a flag file that every release reads (shared/maintenance in a deployment).

While it exists, every request except the health probes gets 503 with Retry-After and a short
bilingual page (or JSON for the API). The file holds the reason and the start time.
"""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings


def flag_path() -> Path:
    return Path(settings.MAINTENANCE_FLAG)


def is_on(flag: Path | None = None) -> bool:
    return (flag or flag_path()).exists()


def enable(reason: str, flag: Path | None = None) -> None:
    flag = flag or flag_path()
    flag.parent.mkdir(parents=True, exist_ok=True)
    temporary = flag.with_name(f".{flag.name}.new-{os.getpid()}")
    temporary.write_text(
        json.dumps({"reason": reason, "since": datetime.now(UTC).isoformat(timespec="seconds")})
    )
    os.replace(temporary, flag)


def disable(flag: Path | None = None) -> None:
    (flag or flag_path()).unlink(missing_ok=True)
