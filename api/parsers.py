"""JSON bodies, read with a size cap and refused cleanly when malformed or absurdly nested."""

import json
import math
import re

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers

from .errors import PayloadTooLarge

# Deeper than any resource's shape (a plan's goals' targets' measurements is five levels); code that
# walks a body recursively (hashing, validation, error messages) stays far from Python's recursion limit.
MAX_DEPTH = 32


def max_body_bytes() -> int:
    return settings.CSM_API_MAX_BODY_BYTES


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_body_bytes()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(_("The request body is larger than %(limit)s bytes.") % {"limit": limit})
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:
            raise exceptions.ParseError(_("The JSON body is nested too deeply.")) from None
        except ValueError as error:
            raise exceptions.ParseError(_("The body is not valid JSON: %(error)s") % {"error": error}) from None
        check_body(data, texts=SURROGATE_ESCAPE.search(text) is not None)
        return data


# A lone surrogate can only come from a \uD800-\uDFFF escape (UTF-8 text cannot hold one): a body without
# such an escape has only Unicode strings, and its strings need no check.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def check_body(data, *, texts: bool = True) -> None:
    """Refuse nesting deeper than MAX_DEPTH and, with `texts`, strings with lone surrogates (not Unicode
    text: no database can store them). Iterative, so any body that loaded can be checked."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise exceptions.ParseError(
                    _("The JSON body is nested more than %(max)s levels deep.") % {"max": MAX_DEPTH}
                )
            if isinstance(value, dict):
                if texts:
                    for key in value:
                        _check_text(key)
                children = value.values()
            else:
                children = value
            stack.extend((child, depth + 1) for child in children if texts or isinstance(child, dict | list))
        elif isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise exceptions.ParseError(_("The body is not valid JSON: a string holds a lone surrogate.")) from None


def _refuse_constant(name: str):
    raise ValueError(_("%(name)s is not a number JSON allows.") % {"name": name})


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(_("%(number)s is too large a number.") % {"number": text[:50]})
    return value
