"""Message templates: Jinja2 in a sandbox, with undefined variables as errors.

Templates are compiled once, at validation, and rendered once per cell. The sandbox keeps an
experiment file from reaching Python internals; ``StrictUndefined`` turns a misspelt variable
into an error instead of an empty string.

What a template may build in one step is capped, so a typo such as ``range(10**8)`` or
``"-" * 10**9`` is an error instead of a gigabyte: ``range()`` yields at most ``MAX_RANGE``
numbers (Jinja's own sandbox limit), ``*`` builds at most ``MAX_REPEAT`` characters or items,
and ``**`` at most a ``MAX_POWER_BITS``-bit integer. (The sandbox does not bound loops; a
template is code its author runs.) Whatever a template raises while rendering comes out as one
:class:`RenderError` saying what failed and on which line of the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment

from .yamlmarks import shorten

#: Characters or items one ``*`` may build (``"-" * 80`` is fine; a whole book is not).
MAX_REPEAT = 1_000_000
#: Size of an integer ``**`` may compute (``2 ** 64`` is fine; ``10 ** 10**8`` would hang).
MAX_POWER_BITS = 10_000


class _TooLarge(Exception):
    """A template asked for more than the sandbox lets it build."""


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT
                ):
                    unit = "characters" if isinstance(seq, str) else "items"
                    raise _TooLarge(
                        f"* would build {len(seq) * times:,} {unit}; "
                        f"a template may build at most {MAX_REPEAT:,}"
                    )
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and right * (abs(left).bit_length() - 1) > MAX_POWER_BITS  # log2, rounded down
        ):
            raise _TooLarge(
                f"{left} ** {right} is too large to compute in a template "
                f"(more than {MAX_POWER_BITS:,} bits)"
            )
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        too_many = f"{len(numbers):,}" if len(numbers) > MAX_RANGE else ""
    except OverflowError:  # len() of more than 2**63 numbers
        too_many = "more than 2**63"
    if too_many:
        raise _TooLarge(f"range() of {too_many} numbers; the sandbox allows at most {MAX_RANGE:,}")
    return numbers


_ENV = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
_ENV.globals["range"] = _range


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
    if isinstance(exc, jinja2.UndefinedError | _TooLarge):
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
