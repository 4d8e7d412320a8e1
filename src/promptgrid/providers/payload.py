"""What a request sends, in the two forms it takes: the SDK's keywords (the online path) and the
JSON body (a Batch API line) — one built from the other, so they cannot drift apart.

:func:`arguments` is the one parameter mapping: the ``create()`` keywords of Chat Completions
(:func:`.chat.arguments`) or the Responses API (:func:`.responses.arguments`). Parameters the
SDK does not know travel there in ``extra_body``, which the SDK merges into the JSON it sends;
:func:`body` does the same merge, so a batch line's ``body`` is exactly the JSON the online call
would have sent.
"""

from __future__ import annotations

from typing import Any

from .base import Request
from .chat import arguments as chat_arguments
from .responses import arguments as responses_arguments

__all__ = ["arguments", "body"]


def arguments(request: Request) -> dict[str, Any]:
    """The SDK ``create()`` keywords for ``request``, on the API it names."""
    if request.api == "responses":
        return responses_arguments(request)
    return chat_arguments(request)


def body(request: Request) -> dict[str, Any]:
    """The JSON body the online call sends for ``request``: its SDK keywords with
    ``extra_body`` merged in (the SDK lets ``extra_body`` win a clash, and so does this)."""
    kwargs = arguments(request)
    extra = kwargs.pop("extra_body", None)
    if extra:
        kwargs.update(extra)
    return kwargs
