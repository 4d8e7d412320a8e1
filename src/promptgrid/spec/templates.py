"""Message templates: Jinja2 in a sandbox, with undefined variables as errors.

Templates are compiled once, at validation, and rendered once per cell. The sandbox keeps an
experiment file from reaching Python internals; ``StrictUndefined`` turns a misspelt variable
into an error instead of an empty string.

What a template may build is capped (see ``sandbox``), so a typo such as ``range(10**8)`` or
``"-" * 10**9``, or a hostile ``'%999999999d' % 1``, is an error instead of a gigabyte:
``range()`` yields at most ``MAX_RANGE`` numbers, ``*`` builds at most ``MAX_REPEAT`` characters
or items, ``**`` at most a ``MAX_POWER_BITS``-bit integer, and any other way of building a
string (``%``, ``~``, ``+``, ``format``, ``center``, ``join``, ``replace``...) and the whole
output at most ``MAX_TEXT`` characters, each checked before it is built. (The sandbox does not
bound loops; a template is code its author runs.) Whatever a template raises while rendering
comes out as one :class:`RenderError` saying what failed and on which line of the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError

from .sandbox import Sandbox, TooLarge, safe_range
from .yamlmarks import shorten

_ENV = Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
_ENV.globals["range"] = safe_range


class RenderError(Exception):
    """A template failed to render. ``message`` says what failed (any exception a template
    raises ends up here); ``lineno`` is the template's 1-based line, when known; ``where`` the
    key path of the failing template under its message (``("content", 1, "path")``), when it
    is not the message's content itself."""

    def __init__(self, message: str, lineno: int | None, where: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno
        self.where = where


@dataclass(frozen=True)
class Template:
    """A compiled message template and the top-level variables it uses."""

    source: str
    variables: frozenset[str]
    _compiled: jinja2.Template | None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context``; raises :class:`RenderError` whatever the template did."""
        if self._compiled is None:  # no template syntax at all: skip Jinja entirely
            return self.source
        try:
            return self._compiled.render(context)
        except Exception as exc:  # a template is code: anything it raises is its own problem
            raise RenderError(_describe(exc), _template_line(exc.__traceback__)) from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, jinja2.UndefinedError | TooLarge):
        return str(exc)
    if isinstance(exc, SecurityError):
        return f"not allowed in the sandbox: {exc}"
    text = shorten(str(exc), 200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line that raised: Jinja rewrites tracebacks to show template lines."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def compile_template(source: str) -> tuple[Template, jinja2.TemplateSyntaxError | None]:
    """Compile ``source``; return the template, or the syntax error found."""
    if "{" not in source:
        return Template(source, frozenset(), None), None
    try:
        ast = _ENV.parse(source)
        compiled = _ENV.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        return Template(source, frozenset(), None), exc
    return Template(source, frozenset(meta.find_undeclared_variables(ast)), compiled), None
