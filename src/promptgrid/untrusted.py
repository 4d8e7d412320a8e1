"""Values from outside — a server's answer, a data file, a store someone else wrote — as
promptgrid keeps them: text that UTF-8 can encode, counts that are counts.

Text: a Python string can hold lone UTF-16 surrogates (U+D800-U+DFFF): JSON's ``"\\ud800"``
decodes to one, and an emoji whose UTF-16 pair a server split across two streamed chunks
arrives as two halves. UTF-8 cannot encode them, so SQLite, files and terminals refuse them.
:func:`text` joins the halves that form a pair and makes every other one U+FFFD (the
replacement character), as a UTF-8 decoder does with bytes it cannot read. :func:`json_value`
does the same to every string in a JSON value and makes its non-finite numbers (``NaN``,
``Infinity``: not JSON) null.

Counts: a server's token count is kept only if it is one (:func:`count`); anything else is
unknown (``None``), never a guess: the budget then charges the request's worst case.

Pure functions, no I/O: the provider edge, the spec's checks and the table's readers share them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_COUNT", "count", "has_surrogate", "json_value", "text"]

#: The largest count kept: SQLite's largest integer.
MAX_COUNT = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(value: str) -> bool:
    """Whether ``value`` holds a UTF-16 surrogate (which UTF-8 cannot encode)."""
    return not value.isascii() and _SURROGATE.search(value) is not None


def text(value: str) -> str:
    """``value`` with its surrogates resolved: a high one followed by a low one becomes the
    character they encode, any other becomes U+FFFD. Most texts are returned as they are,
    after one scan."""
    if not has_surrogate(value):
        return value
    # UTF-16 writes each surrogate as the code unit it is; reading it back pairs what pairs
    # and replaces what does not.
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def json_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, tuples, strings, numbers) with every string made
    encodable (:func:`text`) and every non-finite float ``None``; ``value`` itself when
    nothing needed it. ``RecursionError`` if nested beyond Python's stack."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        items = [(text(k) if isinstance(k, str) else k, json_value(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        out = [json_value(v) for v in value]
        if all(v is v0 for v, v0 in zip(out, value, strict=True)):
            return value
        return type(value)(out)
    return value


def count(value: Any) -> int | None:
    """A count as a server reported it, if it is one: an integer from 0 to :data:`MAX_COUNT`
    (a float holding a whole number counts). Anything else — text, ``NaN``, infinities,
    negatives, fractions, booleans, larger numbers — is unknown: ``None``."""
    if type(value) is int:
        return value if 0 <= value <= MAX_COUNT else None
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_COUNT:
        return int(value)
    return None
