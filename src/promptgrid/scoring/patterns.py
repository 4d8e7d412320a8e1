"""Which engine searches a ``regex`` score's pattern in an answer: re2 if it means the same.

A pattern is written, and validated, in Python's ``re`` syntax. Python's ``re`` backtracks: on
a pattern such as ``(a+)+$`` a 70-character answer takes longer than the age of the universe,
holding the GIL all the while. RE2 (``google-re2``) matches in time linear in the answer and
cannot be made to backtrack, so it searches every pattern it can read *with the same meaning*;
Python's ``re`` searches the rest, in the scoring worker, under the score's time limit
(``timeout_s``). The two disagree only where the choice below sends the search to ``re``:

- patterns re2 does not support: backreferences, lookahead and lookbehind, ``\\Z``, atomic
  groups and possessive quantifiers, comments ``(?#...)``, the flags ``(?x)`` ``(?a)`` ``(?u)``,
  repetitions over 1000;
- patterns re2 would read otherwise: ``{,n}`` (a repetition in ``re``, text in re2) and
  ``[:`` (a POSIX class in re2, characters in ``re``);
- ``\\d \\w \\s \\b`` and their negations are Unicode-aware in ``re`` and ASCII-only in re2:
  such a pattern runs on re2 only for answers of plain ASCII (without ``\\v`` and the
  separators ``\\x1c``-``\\x1f``, which ``re`` counts as space);
- ``$`` also matches before a final newline in ``re``, only at the very end in re2: a pattern
  with ``$`` runs on ``re`` for an answer that ends with a newline (``strip``, the default,
  removes it first);
- text re2 cannot encode (lone surrogates) runs on ``re``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

import re2

__all__ = ["Matcher", "matcher"]

Engine = Literal["re2", "re"]

_UNICODE_CLASSES = re.compile(r"\\[dDwWsSbB]")
_READ_OTHERWISE = ("{,", "[:")
#: Characters re counts as space and re2 does not (the only ASCII on which their classes differ).
_ODD_SPACE = re.compile("[\x0b\x1c-\x1f]")


def _re2(pattern: re.Pattern[str]) -> Any:
    """The pattern compiled by re2, or None where re2 would not mean the same."""
    source = pattern.pattern
    if any(token in source for token in _READ_OTHERWISE):
        return None
    options = re2.Options()
    options.log_errors = False  # an unsupported construct is expected here, not news on stderr
    options.case_sensitive = not pattern.flags & re.IGNORECASE
    options.never_capture = True  # only whether it matches counts: a third faster
    try:
        return re2.compile(source, options)
    except Exception:  # re2.error, or text it cannot encode: re runs it
        return None


class Matcher:
    """A compiled ``regex`` score's pattern and the engine each answer is searched with."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._re2 = _re2(pattern)
        self._ascii_classes = bool(_UNICODE_CLASSES.search(pattern.pattern))
        self._dollar = "$" in pattern.pattern

    def engine(self, text: str) -> Engine:
        """The engine that searches ``text``: re2 where it agrees with re (see the module)."""
        if self._re2 is None:
            return "re"
        if self._dollar and text.endswith("\n"):
            return "re"
        if self._ascii_classes and not (text.isascii() and not _ODD_SPACE.search(text)):
            return "re"
        return "re2"

    def matches(self, text: str) -> bool:
        """Whether the pattern matches somewhere in ``text`` (``re.search``)."""
        if self.engine(text) == "re2":
            try:  # as bytes: a str would be searched as well, each match mapped back to str
                return self._re2.search(text.encode("utf-8")) is not None
            except UnicodeEncodeError:  # a lone surrogate: only re can read it
                pass
        return self.pattern.search(text) is not None


@functools.lru_cache(maxsize=256)
def matcher(source: str, flags: int) -> Matcher:
    """The matcher of a pattern (compiled once: templated patterns repeat across rows)."""
    return Matcher(re.compile(source, flags))
