"""The promotion gate: DEV -> TEST -> STAGING -> PROD. An environment with a predecessor
(UPDATER_PROMOTION_SOURCE, the predecessor's /monitoring/releases/) takes a tag only when the
predecessor attests that an update to it succeeded there, passed its smoke checks, and has run healthy
for at least the soak time of the update's class (UPDATER_SOAK_HOURS_*).

The answer is authenticated: the request carries the predecessor's token (UPDATER_PROMOTION_SOURCE_TOKEN
as a bearer token) and a fresh nonce; with UPDATER_PROMOTION_SOURCE_KEY the body must carry the
predecessor's HMAC-SHA256 signature over exactly those bytes, nonce included (an old answer replayed
does not verify); UPDATER_PROMOTION_SOURCE_CA pins the CA (or the self-signed certificate) of an https
predecessor. A predecessor that cannot be asked, or whose answer does not verify, refuses: the gate
never allows by default. `update --skip-promotion --reason TEXT` is the journaled way past it.
"""

import contextlib
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings

from updater import layout
from updater.plan import history, policy
from updater.run.files import write_atomically

SIGNATURE_HEADER = "X-Helpdesk-Signature"
CACHE_MAX_DEPTH = 4  # test -> staging -> prod: a chain longer than this is cut, never followed forever


class PromotionError(Exception):
    """The predecessor could not be asked, or its answer cannot be trusted."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    environment: str  # the predecessor's name, as it says
    stay: dict | None = None  # what it attests about the tag

    def as_dict(self) -> dict:
        return {"allowed": self.allowed, "reason": self.reason, "environment": self.environment}


def configured() -> bool:
    return bool(settings.UPDATER_PROMOTION_SOURCE)


def signature(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def soak_seconds(update_class: str) -> float:
    hours = {
        policy.CRITICAL: settings.UPDATER_SOAK_HOURS_CRITICAL,
        policy.IMPORTANT: settings.UPDATER_SOAK_HOURS_IMPORTANT,
        policy.ROUTINE: settings.UPDATER_SOAK_HOURS_ROUTINE,
    }[update_class]
    return float(hours) * 3600


def ask() -> dict:
    """The predecessor's signed attestations (raises PromotionError), remembered for the status page."""
    source = settings.UPDATER_PROMOTION_SOURCE
    nonce = secrets.token_urlsafe(24)
    headers = {"Accept": "application/json"}
    if settings.UPDATER_PROMOTION_SOURCE_TOKEN:
        headers["Authorization"] = f"Bearer {settings.UPDATER_PROMOTION_SOURCE_TOKEN}"
    where = _shown(source)
    try:
        response = requests.get(
            source,
            params={"nonce": nonce},
            headers=headers,
            timeout=settings.UPDATER_PROMOTION_TIMEOUT,
            verify=settings.UPDATER_PROMOTION_SOURCE_CA or True,
            allow_redirects=False,  # a token is never carried to wherever a redirect points
        )
    except requests.RequestException as error:
        raise PromotionError(
            f"the predecessor at {where} could not be reached: {type(error).__name__}"
        ) from error
    if response.status_code in (401, 403):
        raise PromotionError(
            f"the predecessor at {where} refused our token (HTTP {response.status_code}); "
            "check UPDATER_PROMOTION_SOURCE_TOKEN against its PROMOTION_TOKEN"
        )
    if response.status_code != 200:
        raise PromotionError(f"the predecessor at {where} answered HTTP {response.status_code}")
    key = settings.UPDATER_PROMOTION_SOURCE_KEY
    if key:
        sent = response.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(sent, signature(response.content, key)):
            raise PromotionError(
                f"the answer of the predecessor at {where} is not signed with the shared key "
                "(UPDATER_PROMOTION_SOURCE_KEY); it was not trusted"
            )
    try:
        document = json.loads(response.content)
    except ValueError as error:
        raise PromotionError(f"the predecessor at {where} did not answer JSON") from error
    if not isinstance(document, dict) or not isinstance(document.get("releases"), list):
        raise PromotionError(f"the predecessor at {where} did not answer with its releases")
    if key and document.get("nonce") != nonce:
        raise PromotionError(f"the answer of the predecessor at {where} is a replay (another nonce)")
    remember(document)
    return document


def judge(document: dict, tag: str, update_class: str) -> Verdict:
    """May `tag`, of `update_class`, be taken after what the predecessor attests?"""
    environment = str(document.get("environment") or "the predecessor")
    stay = next((entry for entry in document["releases"] if entry.get("version") == tag), None)
    if stay is None:
        return Verdict(
            False, f"{tag} has not run on {environment}; update {environment} to it first", environment
        )
    outcome = stay.get("outcome")
    if outcome != history.SUCCEEDED:
        cause = f": {stay['cause']}" if stay.get("cause") else ""
        return Verdict(
            False, f"{tag} {outcome} on {environment} at {stay.get('at')}{cause}", environment, stay
        )
    if not stay.get("smoke_passed"):
        return Verdict(False, f"{tag} did not pass its smoke checks on {environment}", environment, stay)
    needed = soak_seconds(update_class)
    healthy = float(stay.get("healthy_seconds") or 0.0)
    if healthy < needed:
        unhealthy = " healthy" if healthy < float(stay.get("ran_seconds") or 0.0) else ""
        ready_at = datetime.now(UTC) + timedelta(seconds=needed - healthy)
        return Verdict(
            False,
            f"{tag} has run{unhealthy} on {environment} for {_hours(healthy)} h of the required "
            f"{_hours(needed)} h ({update_class} update); it may be promoted from "
            f"{ready_at.isoformat(timespec='minutes')}",
            environment,
            stay,
        )
    return Verdict(
        True,
        f"{tag} has run healthy on {environment} for {_hours(healthy)} h (required {_hours(needed)} h)",
        environment,
        stay,
    )


def gate(tag: str, update_class: str, document: dict | None = None) -> Verdict:
    """The predecessor's verdict on `tag` (from `document` when already asked); PromotionError when it
    cannot be had, which refuses too."""
    if soak_seconds(update_class) <= 0:
        raise PromotionError(
            f"the soak time of {update_class} updates is 0 h; a predecessor's soak may be short, never none"
        )
    return judge(document if document is not None else ask(), tag, update_class)


def refresh(older_than_seconds: float) -> None:
    """check_system's part: ask again when the last answer is older than that (errors wait for the
    next round; the status page shows when the answer was fetched)."""
    if not configured():
        return
    last = remembered() or {}
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(last["fetched_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        age = float("inf")
    if age >= older_than_seconds:
        with contextlib.suppress(PromotionError):
            ask()


def remember(document: dict) -> None:
    """The predecessor's attestations as last fetched: the status page and this environment's own
    attestations (for its successor) show the whole chain from them, without calling out."""
    path = layout.state().promotion_state
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = _trimmed(document, CACHE_MAX_DEPTH) | {
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")
    }
    write_atomically(path, json.dumps(kept, indent=2).encode())


def remembered() -> dict | None:
    try:
        document = json.loads(layout.state().promotion_state.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def chain(document: dict | None, version: str) -> list[dict]:
    """Every upstream environment's attestation of `version`, nearest first: [{environment, ...}]."""
    found = []
    while isinstance(document, dict):
        stay = next((s for s in document.get("releases", []) if s.get("version") == version), None)
        found.append(
            {"environment": document.get("environment"), "fetched_at": document.get("fetched_at")}
            | (stay or {"outcome": "never ran"})
        )
        document = document.get("upstream")
    return found


def journeys(current: str | None, target: str | None, update_class: str | None = None) -> dict:
    """Which environments ran the current and the target release, since when, with what outcome: this
    one from its journal, the chain above it from the predecessor (asked now; its last answer when it
    cannot be asked). With a target and a predecessor, also the gate's verdict."""
    document, error = remembered(), None
    if configured():
        try:
            document = ask()
        except PromotionError as failure:
            error = str(failure)
    here = history.of(layout.state().updates)
    found: dict = {"predecessor_error": error, "releases": {}}
    for version in dict.fromkeys(v for v in (current, target) if v):
        own = here[version].as_dict() if version in here else {"outcome": "never ran"}
        upstream = chain(document, version) if document else []
        found["releases"][version] = [{"environment": settings.ENVIRONMENT} | own, *upstream]
    if configured() and target and update_class and error is None and document is not None:
        found["verdict"] = judge(document, target, update_class).as_dict()
    return found


def describe(stay: dict) -> str:
    """One environment's attestation in a line: 'staging: succeeded, serving since …, 26 h healthy'."""
    text = f"{stay.get('environment')}: {stay.get('outcome')}"
    if stay.get("since"):
        text += f", {'serving' if stay.get('until') is None else 'served'} since {stay['since']}"
        if stay.get("until"):
            text += f" until {stay['until']}"
    if stay.get("healthy_seconds") is not None:
        text += f", {_hours(float(stay['healthy_seconds']))} h healthy"
    elif stay.get("at") and not stay.get("since"):
        text += f" at {stay['at']}"
    return text


def _trimmed(document: dict, depth: int) -> dict:
    keep = {key: document.get(key) for key in ("environment", "generated_at", "current_version", "releases")}
    upstream = document.get("upstream")
    if isinstance(upstream, dict) and depth > 1:
        keep["upstream"] = _trimmed(upstream, depth - 1)
    return keep


def _hours(seconds: float) -> str:
    return f"{round(seconds / 3600, 1):g}"


def _shown(url: str) -> str:
    """The URL without credentials or a query (neither belongs in a message or a journal)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
