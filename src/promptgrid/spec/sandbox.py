"""The Jinja2 sandbox templates run in, with a bound on everything a template can build.

Jinja's ``SandboxedEnvironment`` keeps a template from reaching Python internals; it does not
stop ``'%999999999d' % 1``, ``'a'|center(999999999)`` or a loop that doubles a string from
allocating gigabytes. Every way a template builds a value goes through one of the sandbox's
public hooks, and each hook checks the size of what is about to be built *before* it is built:

* operators (``intercepted_binops``, :meth:`Sandbox.call_binop`): ``*`` builds at most
  ``MAX_REPEAT`` characters or items and ``**`` at most a ``MAX_POWER_BITS``-bit integer (so
  does ``*`` of two integers); ``+`` and ``%`` (printf widths, precisions and arguments) at most
  ``MAX_TEXT`` characters;
* ``~`` (the code generator routes it to :meth:`Sandbox.joined`);
* calls (:meth:`Sandbox.call`): the string methods that size their result from an argument
  (``center``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs``, ``replace``, ``join``,
  ``translate``, ``upper``...), ``format``/``format_map`` (:meth:`Sandbox.wrap_str_format`: each
  field's resolved width), ``lipsum``; a list, dict or set a method grew in place;
* filters: the ones that size their result from an argument (``center``, ``indent``, ``format``,
  ``replace``, ``join``, ``wordwrap``, ``tojson``, ``batch``, ``slice``, ``sum``...) are checked
  before they run, every filter's result after;
* output (``finalize`` and ``concat``): a value printed by ``{{ }}`` and the whole rendering, a
  macro's or a ``{% set %}`` block's included, at most ``MAX_TEXT`` characters.

So a string (or list) a template holds is never larger than the limits, and one step can only
build a bounded multiple of what it holds: a doubling loop stops at the limit. The sandbox does
not bound time (a template is code its author runs, and loops are capped only by ``range()``'s
``MAX_RANGE``). A violation raises :class:`TooLarge`, which names what was asked for.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.nodes import Concat
from jinja2.runtime import Context
from jinja2.sandbox import (
    MAX_RANGE,
    SandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup

__all__ = ["MAX_POWER_BITS", "MAX_RANGE", "MAX_REPEAT", "MAX_TEXT", "Sandbox", "TooLarge"]

#: Characters or items one ``*`` may build (``"-" * 80`` is fine; a whole book is not).
MAX_REPEAT = 1_000_000
#: Size of an integer ``**`` (or ``*``) may compute (``2 ** 64`` is fine; ``10 ** 10**8`` hangs).
MAX_POWER_BITS = 10_000
#: Characters a template may build in one string (a format, a join, a concatenation, a
#: padding...) and render in all (a long document from a dataset fits; a gigabyte does not).
MAX_TEXT = 10_000_000


class TooLarge(Exception):
    """A template asked for more than the sandbox lets it build."""


def _limit(size: int, what: str, cap: int = MAX_TEXT, unit: str = "characters") -> None:
    if size > cap:
        raise TooLarge(f"{what} would build {size:,} {unit}; a template may build at most {cap:,}")


def size(value: Any, budget: int = MAX_TEXT) -> int:
    """About how many characters ``str(value)`` takes (counting stops soon after ``budget``,
    so a huge nested value costs no more than the budget to measure)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bytes | bytearray):
        return 4 * len(value) + 3  # repr: \xNN
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float):
        return 24
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
        total = 2
        for item in items:
            total += 2 + size(item, budget - total)
            if total > budget:
                break
        return total
    return 64  # another object: its repr is short


# ------------------------------------------------------------------ printf and str.format


_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<kind>.?)",
    re.DOTALL,
)


def printf_size(fmt: str, values: Any) -> int:
    """An upper bound of the characters ``fmt % values`` builds (each field: its width, its
    precision and its value's size), before it is built."""
    named = values if isinstance(values, Mapping) else None
    queue: Iterator[Any] = iter(values if isinstance(values, tuple) else (values,))
    total = len(fmt)
    for match in _PRINTF.finditer(fmt):
        if match["kind"] == "%":
            continue
        width = _number(next(queue, 0)) if match["width"] == "*" else int(match["width"] or 0)
        prec = _number(next(queue, 0)) if match["prec"] == "*" else int(match["prec"] or 0)
        if named is not None and match["key"] is not None:
            value = named.get(match["key"])
        else:
            value = next(queue, None)
        total += width + prec + size(value) + 2
    return total


def _number(value: Any) -> int:
    return abs(value) if isinstance(value, int) else 0


class _Formatter(SandboxedFormatter):
    """``str.format`` in the sandbox, each field checked once its spec is resolved."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        widths = [int(n) for n in re.findall(r"\d+", format_spec)]
        _limit(max(widths, default=0) + size(value), "str.format")
        return super().format_field(value, format_spec)


class _EscapingFormatter(_Formatter, SandboxedEscapeFormatter):
    """The same for ``Markup.format`` (a template's ``|safe`` text), which escapes its fields."""


def _text(value: Any) -> str:
    """``str(value)``, once it is known to be within the limit."""
    _limit(size(value), "str()")
    return str(value)


# ------------------------------------------------------------------ calls and filters

#: What a string method may build, estimated from its arguments before it runs; ``s`` is the
#: string whose method it is.
_METHODS: dict[str, Callable[..., int]] = {
    "center": lambda s, width=0, *_: max(len(s), _number(width)),
    "ljust": lambda s, width=0, *_: max(len(s), _number(width)),
    "rjust": lambda s, width=0, *_: max(len(s), _number(width)),
    "zfill": lambda s, width=0, *_: max(len(s), _number(width)),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * _number(tabsize),
    "replace": lambda s, old="", new="", count=-1: _replaced(s, old, new, count),
    "translate": lambda s, table=None: len(s) * _longest(table),
    **{name: lambda s, *_: 3 * len(s) for name in
       ("upper", "lower", "title", "capitalize", "casefold", "swapcase")},  # ß -> SS
}  # fmt: skip


def _replaced(s: str, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(s)
    found = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(s) + found * max(0, len(new) - len(old))


def _longest(table: Any) -> int:
    if isinstance(table, Mapping):
        return max([1, *(size(v) for v in table.values())])
    return 1


def _join_size(items: list[Any], separator: Any) -> int:
    total = size(separator) * max(0, len(items) - 1)
    for item in items:
        total += size(item)
        if total > MAX_TEXT:
            break
    return total


#: What a filter may build, estimated before it runs from its value and arguments (named as
#: the filter names them, after the context Jinja passes some). ``None``: it raises instead.
_FILTERS: dict[str, Callable[..., int | None]] = {
    "center": lambda value, width=80: max(size(value), _number(width)),
    "indent": lambda s, width=4, *_, **__: _indented(s, width),
    "format": lambda value, *args, **kwargs: printf_size(_text(value), kwargs or args),
    "replace": lambda s, old, new, count=None: _replaced(_text(s), old, new, count),
    "join": lambda value, d="", attribute=None: _join_size(list(value), d),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, **_: (
        size(s) + (size(s) // max(1, _number(width)) + 1) * size(wrapstring or "\n")
    ),
    "tojson": lambda value, indent=None: size(value) * (1 + _indent_of(indent)),
    "string": lambda value: size(value),
    "list": lambda value: _items(len(value) if isinstance(value, str) else 0, "list"),
    "batch": lambda value, linecount, fill_with=None: _items(linecount, "batch"),
    "slice": lambda value, slices, fill_with=None: _items(slices, "slice"),
    "sum": lambda iterable, attribute=None, start=0: _summed(iterable),
    "urlize": lambda value, *args, **kwargs: size(value) * (
        1 + sum(size(a) for a in (*args, *kwargs.values()) if isinstance(a, str))
    ),
    **{name: lambda value, *_, **__: 6 * size(value)
       for name in ("escape", "e", "forceescape", "xmlattr", "pprint")},
    "urlencode": lambda value: 12 * size(value),
    **{name: lambda value, *_: 3 * size(value)
       for name in ("upper", "lower", "title", "capitalize")},
}  # fmt: skip


def _indented(s: Any, width: Any) -> int:
    text = _text(s)
    each = size(width) if isinstance(width, str) else _number(width)
    return size(s) + (text.count("\n") + 1) * each


def _indent_of(indent: Any) -> int:
    return len(indent) if isinstance(indent, str) else _number(indent)


def _items(count: Any, what: str) -> None:
    _limit(_number(count), f"|{what}", MAX_REPEAT, "items")


def _summed(iterable: list[Any]) -> int:
    """``|sum`` of lists builds one list of all their items."""
    items = sum(len(v) for v in iterable if isinstance(v, list | tuple))
    _limit(items, "|sum", MAX_REPEAT, "items")
    return 0


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` checked before it runs (when ``_FILTERS`` knows what it builds) and after."""
    estimate = _FILTERS.get(name)
    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # the context Jinja passes it first

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if estimate is not None and len(args) > skip:
            value = args[skip]
            if isinstance(value, Iterator):  # a generator: its items are needed twice
                value = list(value)
                args = (*args[:skip], value, *args[skip + 1 :])
            try:
                built = estimate(*args[skip:], **kwargs)
            except TypeError:  # arguments the filter does not take: it says so itself
                built = None
            if built is not None:
                _limit(built, f"|{name}")
        return _checked(func(*args, **kwargs), f"|{name}")

    return guarded


def _checked(value: Any, what: str) -> Any:
    """``value``, once it is known to be within the limits."""
    if isinstance(value, str):
        _limit(len(value), what)
    elif isinstance(value, list | tuple | dict | set):
        _limit(len(value), what, MAX_REPEAT, "items")
    return value


def _lipsum(
    lipsum: Callable[..., str], n: int = 5, html: bool = True, min: int = 20, max: int = 100
) -> str:
    _limit(_number(n) * _number(max) * 12, "lipsum()")  # at most 12 characters a word
    return lipsum(n, html, min, max)


# ------------------------------------------------------------------ the environment


class _Generator(CodeGenerator):
    """Jinja's code generator, with ``~`` through :meth:`Sandbox.joined` (Jinja joins the
    parts itself, out of the sandbox's reach)."""

    @optimizeconst
    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.joined((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(SandboxedEnvironment):
    """The sandbox, with every way of building a value bounded (see the module docstring)."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._printed, **options)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}
        lipsum = cast("Callable[..., str]", self.globals["lipsum"])
        self.globals["lipsum"] = functools.partial(_lipsum, lipsum)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``left operator right``, if what it builds is within the limits."""
        if operator == "*":
            _repeat(left, right)
        elif operator == "**":
            _power(left, right)
        elif operator == "+" and isinstance(left, str) and isinstance(right, str):
            _limit(len(left) + len(right), "+")
        elif operator == "+" and isinstance(left, list | tuple) and isinstance(right, list | tuple):
            _limit(len(left) + len(right), "+", MAX_REPEAT, "items")
        elif operator == "%" and isinstance(left, str):
            _limit(printf_size(left, right), "%")
        return super().call_binop(context, operator, left, right)

    def joined(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ ...``: the parts as text, joined."""
        _limit(_join_size(list(parts), ""), "~")
        return "".join(str(p) for p in parts)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A call from a template (a method, a global, a macro), within the limits."""
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        if isinstance(owner, str) and name in _METHODS:
            try:
                built = _METHODS[name](owner, *args, **kwargs)
            except TypeError:  # arguments the method does not take: it says so itself
                built = 0
            _limit(built, f"str.{name}()")
        elif isinstance(owner, str) and name == "join" and args:
            items = list(args[0])
            _limit(_join_size(items, owner), "str.join()")
            args = (items, *args[1:])
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(owner, list | dict | set):  # grown in place (append, extend, update)
            _checked(owner, f"{type(owner).__name__}.{name}()")
        return _checked(result, f"{name or 'the call'}()")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` and ``str.format_map`` with each field's width checked."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        text, is_map = value.__self__, value.__name__ == "format_map"
        formatter: _Formatter = (
            _EscapingFormatter(self, escape=text.escape)
            if isinstance(text, Markup)
            else _Formatter(self)
        )

        def checked(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs = args[0]
                args = ()
            built: str = type(text)(formatter.vformat(text, args, kwargs))
            return built

        return functools.update_wrapper(checked, wrapper)

    @staticmethod
    def _printed(value: Any) -> Any:
        """A value ``{{ }}`` prints (as ``str(value)``), within the limit."""
        _limit(size(value), "printing a value")
        return value

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """The output of a template (or a macro, a ``{% set %}`` block), within the limit."""
        built: list[str] = []
        total = 0
        for part in parts:
            total += len(part)
            _limit(total, "the template's output")
            built.append(part)
            if len(built) >= 4096:  # many small parts: keep the list short
                built = ["".join(built)]
        return "".join(built)


def _repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
            unit = "characters" if isinstance(seq, str | bytes) else "items"
            _limit(len(seq) * times, "*", MAX_REPEAT, unit)
    if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
        raise TooLarge(
            f"a product of {left.bit_length():,}-bit and {right.bit_length():,}-bit integers is "
            f"too large to compute in a template (more than {MAX_POWER_BITS:,} bits)"
        )


def _power(left: Any, right: Any) -> None:
    if (
        _is_int(left)
        and _is_int(right)
        and abs(left) > 1
        and right * (abs(left).bit_length() - 1) > MAX_POWER_BITS  # log2, rounded down
    ):
        raise TooLarge(
            f"{left} ** {right} is too large to compute in a template "
            f"(more than {MAX_POWER_BITS:,} bits)"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def safe_range(*args: int) -> range:
    """``range()`` of at most ``MAX_RANGE`` numbers (Jinja's own sandbox limit)."""
    numbers = range(*args)
    try:
        too_many = f"{len(numbers):,}" if len(numbers) > MAX_RANGE else ""
    except OverflowError:  # len() of more than 2**63 numbers
        too_many = "more than 2**63"
    if too_many:
        raise TooLarge(f"range() of {too_many} numbers; the sandbox allows at most {MAX_RANGE:,}")
    return numbers
