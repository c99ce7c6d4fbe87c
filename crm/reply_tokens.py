"""The token in a notification's Reply-To (support+<token>@domain): it names the ticket and the person,
is signed with SECRET_KEY, and expires after REPLY_TOKEN_MAX_AGE_DAYS.

It lives in an address's local part, where mail systems may change case (RFC 5321 lets a receiving
server treat it as case-insensitive, and some lowercase it) and where 64 characters is the limit. So
it is `<ticket>x<user>.<time, base36>.<signature, base32>`: lowercase letters and digits only, read
back case-insensitively, 57 characters with "support+" for seven-digit ids. The release before
signed with Django's TimestampSigner (base64, case-sensitive, 71 characters for such ids); those tokens
are still read, unchanged, until they expire.
"""

import base64
import time

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import base36_to_int, int_to_base36

SALT = "crm.notifications.reply"
SIGNATURE_BYTES = 16  # 128 bits of HMAC-SHA256: 26 base32 characters


def make(ticket_id: int, user_id: int, now: float | None = None) -> str:
    value = f"{ticket_id}x{user_id}.{int_to_base36(int(time.time() if now is None else now))}"
    return f"{value}.{_signature(value, settings.SECRET_KEY)}"


def read(token: str) -> tuple[int, int]:
    """(ticket id, user id) of a token we made that is younger than REPLY_TOKEN_MAX_AGE_DAYS, in any
    case; signing.SignatureExpired when older, signing.BadSignature when not ours."""
    value, _dot, signature = token.lower().rpartition(".")
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    if not any(constant_time_compare(signature, _signature(value, key)) for key in keys):
        return _read_previous_release(token)
    ids, _dot, stamp = value.partition(".")
    try:
        issued = base36_to_int(stamp)
    except ValueError:
        raise signing.BadSignature("the reply token's time is malformed") from None
    if time.time() - issued > settings.REPLY_TOKEN_MAX_AGE_DAYS * 86400:
        raise signing.SignatureExpired("the reply token has expired")
    return _ids(ids)


def _signature(value: str, key: str) -> str:
    digest = salted_hmac(SALT, value, secret=key, algorithm="sha256").digest()[:SIGNATURE_BYTES]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def _read_previous_release(token: str) -> tuple[int, int]:
    """A TimestampSigner token (before the lowercase tokens): only as it was sent, case kept."""
    signer = signing.TimestampSigner(salt=SALT, sep=".")
    return _ids(signer.unsign(token, max_age=settings.REPLY_TOKEN_MAX_AGE_DAYS * 86400))


def _ids(value: str) -> tuple[int, int]:
    ticket_id, _x, user_id = value.partition("x")
    if not (ticket_id.isdigit() and user_id.isdigit()):
        raise signing.BadSignature("the reply token names no ticket")
    return int(ticket_id), int(user_id)
