"""Request bodies the API accepts: JSON that cannot take the server down.

DRF's JSONParser turns malformed JSON into a 400 but lets RecursionError through (about a thousand
nested `[` is enough), which answers 500 and logs an ERROR traceback anyone could trigger without an
account. It also reads 1e999 as infinity and 10**40 as an integer, which reach the database as ids
and fail there (OverflowError, another 500). No field of the API is nested or needs numbers beyond a
64-bit column, so this parser refuses those with a 400 before any view sees them.
"""

import codecs
import json
import math

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from crm.models import LARGEST_INTEGER

MAX_DEPTH = 32
TOO_DEEP = f"JSON parse error - nested deeper than {MAX_DEPTH} levels"


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_float, parse_int=_integer)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        except ValueError as error:  # also UnicodeDecodeError: the bytes are not in the encoding
            raise ParseError(f"JSON parse error - {error}") from None
        if depth(data) > MAX_DEPTH:
            raise ParseError(TOO_DEEP)
        return data


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > LARGEST_INTEGER:
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def depth(value: object) -> int:
    """How deeply lists and objects nest in a parsed JSON value, counted without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest
