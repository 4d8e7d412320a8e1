"""Values from outside — a server's answer, a data file, a store someone else wrote — as
promptgrid keeps them: text that UTF-8 can encode, counts that are counts.

Text: a Python string can hold lone UTF-16 surrogates (U+D800-U+DFFF): JSON's ``"\\ud800"``
decodes to one, and an emoji whose UTF-16 pair a server split across two streamed chunks
arrives as two halves. UTF-8 cannot encode them, so SQLite, files and terminals refuse them.
:func:`text` joins the halves that form a pair and makes every other one U+FFFD (the
replacement character), as a UTF-8 decoder does with bytes it cannot read. :func:`json_value`
does the same to every string in a JSON value and makes its non-finite numbers (``NaN``,
``Infinity``: not JSON) null.

Depth: Python's JSON parser reads nesting as deep as its stack allows, which differs by version
(about 1,000 levels on 3.10-3.12, about 10,000 on 3.13), and any code that walks the value
recursively fails somewhere below that. :func:`loads` refuses JSON nested deeper than
:data:`MAX_DEPTH` on every version, with :class:`TooDeep`, so an answer, a case row or a verdict
means the same wherever it is read.

Counts: a server's token count is kept only if it is one (:func:`count`); anything else is
unknown (``None``), never a guess: the budget then charges the request's worst case.

Pure functions, no I/O: the provider edge, the spec's checks and the table's readers share them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_COUNT",
    "MAX_DEPTH",
    "TooDeep",
    "count",
    "has_surrogate",
    "json_value",
    "loads",
    "text",
]

#: The largest count kept: SQLite's largest integer.
MAX_COUNT = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
#: The deepest nesting of lists and objects read from outside (a spec file's YAML too): far
#: beyond any real answer or data row, far below what recursive code can walk.
MAX_DEPTH = 100


class TooDeep(RecursionError):
    """JSON nested deeper than :data:`MAX_DEPTH`. A ``RecursionError``, so one handler serves
    this rule and Python's own limit alike."""


def loads(data: str | bytes, **options: Any) -> Any:
    """``json.loads(data, **options)``, refusing nesting deeper than :data:`MAX_DEPTH`
    (:class:`TooDeep`). ``ValueError`` for what is not JSON, as ``json.loads``."""
    try:
        value = json.loads(data, **options)
    except RecursionError:  # deeper than this Python's parser reads: deeper than MAX_DEPTH too
        raise TooDeep(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    opened = (
        data.count("[") + data.count("{")
        if isinstance(data, str)
        else data.count(b"[") + data.count(b"{")
    )
    if opened > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):  # a cheap count rules most out
        raise TooDeep(f"JSON nested more than {MAX_DEPTH} levels deep")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` deep (walked without
    recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


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
