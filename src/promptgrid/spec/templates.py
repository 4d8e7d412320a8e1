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

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError

from .sandbox import MAX_TEXT, Sandbox, TooLarge, safe_range
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
    #: A template that is only text and ``{{ name }}`` tags: a ``str.format`` string with a
    #: ``{}`` per tag, its names and the length of its text, so it renders without Jinja
    #: (see :func:`_substitution`).
    _pieces: tuple[str, tuple[str, ...], int] | None = None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context``; raises :class:`RenderError` whatever the template did."""
        if self._compiled is None:  # no template syntax at all: skip Jinja entirely
            return self.source
        if self._pieces is not None:
            text = _substituted(*self._pieces, context)
            if text is not None:
                return text
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
        return _compiled(source), None
    except jinja2.TemplateSyntaxError as exc:
        return Template(source, frozenset(), None), exc


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """The template of ``source``, compiled once per process: Jinja's compile costs
    milliseconds, and a notebook validates the same experiment again at every plan and run.
    A :class:`Template` is immutable, so sharing it is safe; a syntax error is raised afresh
    each time (``lru_cache`` keeps no exceptions)."""
    ast = _ENV.parse(source)
    variables = frozenset(meta.find_undeclared_variables(ast))
    return Template(source, variables, _ENV.from_string(ast), _substitution(source))


#: Types whose exact instances Jinja prints as ``str(value)``: the fast path prints them too.
#: (Subclasses, such as an enum, may print otherwise: Jinja renders those.)
_PRINTED_AS_STR = frozenset({int, float, bool})
#: An integer this large goes through Jinja, which applies its size limit on printed values.
_BIG_INT = 10**18

#: Names Jinja reads as constants, not variables.
_CONSTANTS = frozenset({"true", "false", "none", "True", "False", "None"})


def _substitution(source: str) -> tuple[str, tuple[str, ...], int] | None:
    """A template made only of text and plain ``{{ name }}`` tags (no filters, no whitespace
    control) as a ``str.format`` string, its names and the length of its text; else None.

    Jinja prints such a tag as ``str(value)``, and its text as the lexer gives it, so the format
    gives Jinja's output whenever every value is a string or a plain number: the fast path a
    plan of a million cells needs (a Jinja render costs ~15x more)."""
    if "\r" in source:
        return None  # Jinja turns "\r\n" into "\n": leave that to it
    texts, names = [""], []
    state = "data"
    for _, kind, value in _ENV.lex(source):
        if kind == "data" and state == "data":
            texts[-1] += value
        elif kind == "variable_begin" and state == "data" and value == "{{":
            state = "begin"
        elif kind == "whitespace":
            continue
        elif kind == "name" and state == "begin" and value not in _CONSTANTS:
            names.append(value)
            state = "name"
        elif kind == "variable_end" and state == "name" and value == "}}":
            texts.append("")
            state = "data"
        else:
            return None
    if state != "data":
        return None
    escaped = [t.replace("{", "{{").replace("}", "}}") for t in texts]
    return "{}".join(escaped), tuple(names), sum(map(len, texts))


def _substituted(form: str, names: tuple[str, ...], fixed: int,
                 context: Mapping[str, Any]) -> str | None:  # fmt: skip
    """The template rendered with ``context``, or None when a name is missing or not a string
    or a plain number (Jinja then renders it, with its error, its globals and its checks on
    printed values) or the output would be over ``MAX_TEXT`` (Jinja then says so)."""
    values: list[str] = []
    for name in names:
        value: Any = context.get(name)
        kind = type(value)
        if kind is str:
            values.append(value)
        elif kind in _PRINTED_AS_STR and not (kind is int and abs(value) >= _BIG_INT):
            values.append(str(value))  # as Jinja prints it (a var axis of numbers is common)
        else:
            return None
    if fixed + sum(map(len, values)) > MAX_TEXT:
        return None
    return form.format(*values)
