"""Message templates: Jinja2 in a sandbox, with undefined variables as errors.

Templates are compiled once, at validation, and rendered once per cell. The sandbox keeps an
experiment file from reaching Python internals; ``StrictUndefined`` turns a misspelt variable
into an error instead of an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


@dataclass(frozen=True)
class Template:
    """A compiled message template and the top-level variables it uses."""

    source: str
    variables: frozenset[str]
    _compiled: jinja2.Template | None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context``; raises ``jinja2.UndefinedError`` for a missing name."""
        if self._compiled is None:  # no template syntax at all: skip Jinja entirely
            return self.source
        return self._compiled.render(context)


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
