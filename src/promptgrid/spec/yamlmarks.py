"""``yaml.safe_load`` that also remembers the line of every key, and rejects duplicate keys.

Validation errors name the file, the line and the key path; PyYAML's nodes know their line, the
plain data does not. So we compose the node tree once, walk it to record ``path -> line`` (and to
catch duplicate keys, which ``safe_load`` silently collapses), then construct the data from the
same nodes.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import Problem, SpecError

KeyPath = tuple[str | int, ...]


def load_yaml(text: str, filename: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``text`` safely; return the data and a map from key path to 1-based line."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            raise SpecError(
                Problem(
                    f"invalid YAML: {exc.problem or exc.context}",
                    filename,
                    line,
                    hint="fix the syntax at that line (check indentation, colons and quotes)",
                )
            ) from None
        except yaml.YAMLError as exc:
            raise SpecError(Problem(f"invalid YAML: {exc}", filename)) from None
        if node is None:
            return None, {}
        lines: dict[KeyPath, int] = {}
        problems: list[Problem] = []
        _walk(node, (), lines, problems, filename)
        if problems:
            raise SpecError(problems)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise SpecError(
                Problem(f"invalid YAML: {exc}", filename, line + 1 if line is not None else None)
            ) from None
        return data, lines
    finally:
        loader.dispose()


def _walk(
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    problems: list[Problem],
    filename: str,
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(
                        f"duplicate key {key!r} (first defined on line {seen[key]})",
                        filename,
                        line,
                        format_path((*path, key)),
                        hint="keep one of the two; YAML would silently use the last",
                    )
                )
                continue
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, problems, filename)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, problems, filename)


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
