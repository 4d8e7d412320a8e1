"""``yaml.safe_load`` that also remembers the line of every key, rejects duplicate keys, and
refuses files that would grow far beyond what they hold.

Validation errors name the file, the line and the key path; PyYAML's nodes know their line, the
plain data does not. So we compose the node tree once, walk it to record ``path -> line`` (and to
catch duplicate keys, which ``safe_load`` silently collapses), then construct the data from the
same nodes. For a literal block (``content: |``) the walk also records the line its text starts
on, so an error on line 3 of a template can name line 3 of that text.

Hostile or broken files get one located problem, never a traceback or a runaway allocation:

- a file larger than ``MAX_FILE_BYTES`` is refused before parsing (it is read with a bounded
  read, so even ``/dev/zero`` is safe);
- collections nested deeper than ``MAX_DEPTH`` are refused (PyYAML composes recursively and
  would overflow Python's stack a few hundred levels down);
- anchors and aliases (``&a`` / ``*a``) are counted as they are composed, each alias as the whole
  value it stands for: a document that expands to more than ``MAX_NODES`` values or
  ``MAX_CHARS`` characters of scalars is refused, as is an alias used inside its own anchor.
  PyYAML shares aliased values, but everything after it (the key walk, pydantic, the grid) would
  not: a 1 KB "billion laughs" file expands to 10⁹ values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from .. import untrusted
from ..errors import Problem, SpecError

KeyPath = tuple[str | int, ...]

#: Larger experiment files are refused unread: prompts and settings fit in far less, and data
#: belongs in ``cases_file`` (streamed). Pure-Python PyYAML (needed for line marks) parses
#: 0.1-1 MB a second, so this is also about the most it can parse in reasonable time.
MAX_FILE_BYTES = 10_000_000
#: Values (mappings, lists, scalars, keys) in the document once every alias is expanded.
MAX_NODES = 1_000_000
#: Characters of scalar values once every alias is expanded (5x the largest file).
MAX_CHARS = 50_000_000
#: Nesting of mappings and lists; JSON schemas under ``params`` need a dozen or so.
MAX_DEPTH = untrusted.MAX_DEPTH

_ALIAS_HINT = (
    "anchors and aliases (&name / *name) that expand this much are refused; "
    "write the values out, or alias fewer levels"
)

_BIG_HINT = (
    "an experiment file holds prompts and settings: put large datasets in cases_file "
    "(CSV or JSONL, read row by row)"
)


def not_utf8(path: Path) -> str | None:
    """``path`` as it can be shown (``\\udcff`` for a byte that is not UTF-8), when its name is
    not valid UTF-8 (Python keeps such bytes as lone surrogates, which no store, file or
    terminal can hold); ``None`` when it is."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    return None


def read_text(path: Path) -> str:
    """The text of an experiment file: refused unread when larger than ``MAX_FILE_BYTES``, and
    located when it is not UTF-8. ``OSError`` (missing, unreadable) is the caller's."""
    chunks: list[bytes] = []
    size = 0
    with path.open("rb") as f:  # in blocks: read(MAX_FILE_BYTES) would allocate that much
        while size <= MAX_FILE_BYTES and (block := f.read(1 << 20)):
            chunks.append(block)
            size += len(block)
    raw = b"".join(chunks)
    if size > MAX_FILE_BYTES:
        raise SpecError(
            Problem(
                f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB; not read",
                str(path),
                hint=_BIG_HINT,
            )
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            Problem(
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                str(path),
                raw.count(b"\n", 0, exc.start) + 1,
                hint="save the file as UTF-8",
            )
        ) from None


def load_yaml(text: str, filename: str) -> tuple[Any, dict[KeyPath, int], dict[KeyPath, int]]:
    """Parse ``text`` safely; return the data, a map from key path to 1-based line, and a map
    from the path of each literal block scalar (``key: |``) to the line its text starts on."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(
            Problem(f"more than {MAX_FILE_BYTES:,} characters; not read", filename, hint=_BIG_HINT)
        )
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character: checked before parsing
        raise SpecError(_reader_problem(exc, text, filename)) from None
    try:
        try:
            node = loader.get_single_node()
        except _Refused as exc:
            raise SpecError(Problem(exc.message, filename, exc.line, hint=exc.hint)) from None
        except RecursionError:  # only if called with little stack left: MAX_DEPTH comes first
            problem = Problem("values nested too deeply", filename, hint=_DEPTH_HINT)
            raise SpecError(problem) from None
        except yaml.YAMLError as exc:
            raise SpecError(_yaml_problem(exc, text, filename)) from None
        if node is None:
            return None, {}, {}
        lines: dict[KeyPath, int] = {}
        starts: dict[KeyPath, int] = {}
        problems: list[Problem] = []
        _walk(node, (), _Marks(lines, starts, problems, filename, text))
        if problems:
            raise SpecError(problems)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise SpecError(_yaml_problem(exc, text, filename)) from None
        return data, lines, starts
    finally:
        loader.dispose()


_DEPTH_HINT = f"nest mappings and lists at most {MAX_DEPTH} levels deep"


class _Refused(Exception):
    """A limit was hit while composing; carries what to tell the user."""

    def __init__(self, message: str, mark: Any, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.line = mark.line + 1 if mark is not None else None
        self.hint = hint


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that counts what it composes (aliases expanded) and bounds nesting."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._nodes = 0  # values so far, each alias counted as the whole value it stands for
        self._chars = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (nodes, chars)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # (an undefined alias is PyYAML's own error)
                size = self._sizes.get(id(target))
                if size is None:
                    raise _Refused(
                        f"the alias *{event.anchor} is used inside its own anchor "
                        f"&{event.anchor}: the value would contain itself",
                        event.start_mark,
                        "a value cannot contain itself; remove the alias",
                    )
                self._count(*size, event.start_mark, event.anchor)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(
                f"values nested more than {MAX_DEPTH} levels deep", event.start_mark, _DEPTH_HINT
            )
        before = (self._nodes, self._chars)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if node is None:
            return None
        chars = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        self._count(1, chars, node.start_mark, None)
        if getattr(event, "anchor", None) is not None:
            self._sizes[id(node)] = (self._nodes - before[0], self._chars - before[1])
        return node

    def _count(self, nodes: int, chars: int, mark: Any, alias: str | None) -> None:
        self._nodes += nodes
        self._chars += chars
        if self._nodes <= MAX_NODES and self._chars <= MAX_CHARS:
            return
        what = (
            f"more than {MAX_NODES:,} values"
            if self._nodes > MAX_NODES
            else f"more than {MAX_CHARS:,} characters"
        )
        if alias is None:
            raise _Refused(f"the file holds {what}", mark, "split it, or move data to cases_file")
        raise _Refused(
            f"YAML aliases expand the file to {what} (at the alias *{alias})", mark, _ALIAS_HINT
        )

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # 2024-13-45, a 5,000-digit integer, ...
            raise ConstructorError(
                None, None, f"cannot read {shorten(str(node.value))} ({exc})", node.start_mark
            ) from None


@dataclass
class _Marks:
    """What the walk records: key lines, literal-block text lines, and problems."""

    lines: dict[KeyPath, int]
    starts: dict[KeyPath, int]
    problems: list[Problem]
    filename: str
    text: str


def _walk(node: yaml.Node, path: KeyPath, marks: _Marks) -> None:
    marks.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        if node.style == "|":  # the text starts on the line after the indicator
            marks.starts[path] = node.start_mark.line + 2
    elif isinstance(node, yaml.MappingNode):
        if _is_unquoted_template(node):
            source = marks.text[node.start_mark.index : node.end_mark.index]
            marks.problems.append(
                Problem(
                    f"YAML read {shorten(source)} as a mapping, not as text",
                    marks.filename,
                    node.start_mark.line + 1,
                    format_path(path),
                    quote_hint(path[-1] if path else "content", source),
                )
            )
            return
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                marks.problems.append(
                    Problem(
                        f"duplicate key {key!r} (first defined on line {seen[key]})",
                        marks.filename,
                        line,
                        format_path((*path, key)),
                        hint="keep one of the two; YAML would silently use the last",
                    )
                )
                continue
            seen[key] = line
            child = (*path, key)
            marks.lines[child] = line
            _walk(value_node, child, marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), marks)


def _is_unquoted_template(node: yaml.MappingNode) -> bool:
    """``{{ x }}`` unquoted: a flow mapping whose only key is itself a flow mapping."""
    return (
        node.flow_style is True
        and len(node.value) == 1
        and isinstance(node.value[0][0], yaml.MappingNode)
        and node.value[0][0].flow_style is True
    )


# A value starting with ``{{`` after ``key:`` or ``- ``: YAML reads the ``{`` as a mapping.
_TEMPLATE_VALUE = re.compile(r"(?::|^\s*-)\s+\{\{")
_KEY_VALUE = re.compile(r"^\s*(?:-\s+)?(?P<key>[\w.-]+):\s+(?P<value>\{\{.*?)\s*$")
_ITEM_VALUE = re.compile(r"^\s*-\s+(?P<value>\{\{.*?)\s*$")


def quote_hint(key: str | int, value: str) -> str:
    """The hint for a template YAML read as a mapping: ``quote the value: content: "{{ x }}"``
    (``key`` an int: a list item; a stock example when the value has quotes)."""
    value = value.strip()
    if '"' in value or "\n" in value or len(value) > 60:
        key, value = "content", "{{ animal }}"
    shown = f'- "{value}"' if isinstance(key, int) else f'{key}: "{value}"'
    return f"quote the value: {shown} (YAML reads an unquoted {{ as the start of a mapping)"


def _template_hint(text: str, marks: list[yaml.Mark | None]) -> str | None:
    """The quoting hint when a YAML error's line holds a value starting with ``{{``."""
    all_lines = text.splitlines()
    for mark in marks:
        if mark is None or mark.line >= len(all_lines):
            continue
        line = all_lines[mark.line]
        if not _TEMPLATE_VALUE.search(line):
            continue
        if match := _KEY_VALUE.match(line):
            return quote_hint(match["key"], match["value"])
        if match := _ITEM_VALUE.match(line):
            return quote_hint(0, match["value"])
        return quote_hint("content", "{{ animal }}")
    return None


def _yaml_problem(exc: yaml.YAMLError, text: str, filename: str) -> Problem:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(f"invalid YAML: {shorten(str(exc), 200)}", filename)
    mark = exc.problem_mark or exc.context_mark
    hint = _template_hint(text, [exc.problem_mark, exc.context_mark])
    if hint is None:
        hint = (
            "quote the value to keep it as text"
            if isinstance(exc, ConstructorError)
            else "fix the syntax at that line (check indentation, colons and quotes)"
        )
    return Problem(
        f"invalid YAML: {exc.problem or exc.context}",
        filename,
        mark.line + 1 if mark else None,
        hint=hint,
    )


def _reader_problem(exc: yaml.reader.ReaderError, text: str, filename: str) -> Problem:
    character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
    return Problem(
        f"invalid YAML: control character U+{character:04X} is not allowed",
        filename,
        text.count("\n", 0, exc.position) + 1,
        hint="delete it (it is often invisible; `cat -A` shows it); inside double quotes "
        'YAML writes one as an escape, e.g. "\\0"',
    )


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (ending in ``...``) for a message."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def format_path(path: KeyPath) -> str:
    """``("params", "temperature", 1)`` -> ``params.temperature[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        key = tuple(path[:end])
        if key in lines:
            return lines[key]
    return None
