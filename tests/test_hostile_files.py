"""Hostile and broken input: each gets one located SpecError (file:line, key path, what to do),
never a traceback, a hang or a runaway allocation."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

import promptgrid
from promptgrid import grid
from promptgrid.config import RunOptions, resolve
from promptgrid.errors import SpecError
from promptgrid.spec import Experiment
from promptgrid.spec.yamlmarks import MAX_FILE_BYTES, MAX_NODES

BASE = """\
name: t
provider: echo
prompts:
  p: "Hello {{ who }}"
vars:
  who: [world, moon]
params:
  model: m
"""
NO_VARS = BASE.replace("vars:\n  who: [world, moon]\n", "")


def with_content(content: str) -> str:
    """BASE with prompt ``p`` as one user message, its ``content:`` (line 6) written so."""
    return BASE.replace('p: "Hello {{ who }}"', f"p:\n    - role: user\n      content: {content}")


def bomb(levels: int = 9, width: int = 10) -> str:
    """A "billion laughs" file: each anchor lists ``width`` aliases of the one before, so the
    last expands to ``width ** levels`` values (10⁹ here) from about 400 bytes."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for before, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{before}'] * width)}]")
    return BASE + "\n".join(lines) + "\n"


def one_problem(path: Path) -> str:
    """Load ``path``; it must fail with exactly one problem, returned as the user sees it."""
    with pytest.raises(SpecError) as info:
        Experiment.from_yaml(path)
    assert len(info.value.problems) == 1, str(info.value)
    text = str(info.value)
    assert "Traceback" not in text
    return text


# --------------------------------------------------------------------------- the YAML file


def test_alias_bomb_is_refused_without_expanding(write_yaml) -> None:
    text = bomb()
    assert len(text) < 1_000 and MAX_NODES < 10**9
    path = write_yaml(text)
    tracemalloc.start()
    try:
        message = one_problem(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"{peak:,} bytes"
    # the alias that crosses the limit: 10 * 10**5 values at *e, on line 14
    assert f"{path}:14: YAML aliases expand the file to more than 1,000,000 values" in message
    assert "(at the alias *e)" in message and "(&name / *name)" in message and "refused" in message


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        pytest.param(
            BASE + "x: &x [1, *x]\n", 9, "alias *x is used inside its own anchor &x", "remove",
            id="alias-inside-its-anchor",
        ),
        pytest.param(
            BASE + "x: " + "[\n" * 5_000 + "]\n" * 5_000, 108, "nested more than 100 levels",
            "at most 100 levels", id="deep-nesting",
        ),
        pytest.param(
            BASE.replace("name: t", "name: t\x00"), 1, "control character U+0000", "delete it",
            id="nul-byte",
        ),
        pytest.param(
            BASE + "description: a\x1bb\n", 9, "control character U+001B", "cat -A",
            id="escape-character",
        ),
        pytest.param(
            # Python's own words: "(4300 digits)" since 3.11, "(4300)" on 3.10.
            BASE + "repeats: " + "9" * 5_000 + "\n", 9, "Exceeds the limit (4300",
            "quote the value", id="integer-of-5000-digits",
        ),
        pytest.param(
            BASE + "description: 2024-13-45\n", 9, "cannot read 2024-13-45", "quote the value",
            id="impossible-date",
        ),
        pytest.param(
            BASE + "description: !!python/object/apply:os.system [ls]\n", 9,
            "could not determine a constructor", "quote", id="python-tag",
        ),
        pytest.param(
            BASE + "a: 1\n---\nb: 2\n", 10, "another document", "fix the syntax",
            id="two-documents",
        ),
    ],
)  # fmt: skip
def test_hostile_yaml_is_one_located_problem(write_yaml, text, line, message, hint) -> None:
    path = write_yaml(text)
    shown = one_problem(path)
    assert shown.startswith(f"{path}:{line}:"), shown
    assert message in shown and hint in shown.split("\n  -> ")[1]


def test_expanded_characters_are_capped(write_yaml) -> None:
    # 100 KB of text aliased 600 times: 60 MB once expanded, from a file of 100 KB
    text = BASE + "x: &s " + "y" * 100_000 + "\nz: [" + ", ".join(["*s"] * 600) + "]\n"
    path = write_yaml(text)
    shown = one_problem(path)
    assert f"{path}:10: YAML aliases expand the file to more than 50,000,000 characters" in shown


def test_file_larger_than_the_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as f:  # one 50 MB line
        f.write("description: ")
        f.write("x" * 50_000_000)
    shown = one_problem(path)
    assert shown.startswith(f"{path}: the file is larger than 10 MB") and "cases_file" in shown
    assert MAX_FILE_BYTES == 10_000_000


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_an_endless_file_is_not_read() -> None:
    assert "larger than 10 MB" in one_problem(Path("/dev/zero"))


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("name: t", "name: t\ndescription: caf\xe9").encode("latin-1"))
    shown = one_problem(path)
    assert shown.startswith(f"{path}:2: not UTF-8 text (byte 0xe9)") and "UTF-8" in shown


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param(BASE.replace("[world, moon]", '[world, "m\\ud800n"]'), "6 vars.who[1]",
                     id="lone-surrogate-in-a-var"),
        pytest.param(BASE.replace('"Hello {{ who }}"', '"Hi \\ud83d\\ude00 {{ who }}"'),
                     "4 prompts.p", id="surrogate-pair-in-a-prompt"),
    ],
)  # fmt: skip
def test_a_surrogate_escape_in_yaml_is_one_located_problem(write_yaml, text, where) -> None:
    path = write_yaml(text)
    shown = one_problem(path)
    assert shown.startswith(f"{path}:{where}: a UTF-16 surrogate escape"), shown
    assert '"\\U0001F600"' in shown.split("\n  -> ")[1]


def test_a_surrogate_given_in_code_is_one_located_problem() -> None:
    with pytest.raises(SpecError) as info:
        Experiment(prompts={"p": "Hi {{ who }}"}, vars={"who": ["a", "b\ud800"]},
                   params={"model": "m"}, provider="echo")  # fmt: skip
    assert str(info.value).startswith("vars.who[1]: a UTF-16 surrogate escape")


def test_a_pair_of_surrogate_escapes_in_a_case_file_is_one_character(write_yaml, tmp_path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"who": "\\ud83d\\ude00"}\n')
    exp = Experiment.from_yaml(write_yaml(NO_VARS + "cases_file: rows.jsonl\n"))
    assert next(exp.iter_cases())["who"] == "\U0001f600"


def test_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(BASE.encode("utf-8-sig"))
    assert Experiment.from_yaml(path).total == 2


# --------------------------------------------------------------------------- {{ unquoted


@pytest.mark.parametrize(
    ("text", "line", "path", "hint"),
    [
        pytest.param(
            with_content("{{ who }}"),
            6, "prompts.p[0].content", 'content: "{{ who }}"', id="content-mapping",
        ),
        pytest.param(
            BASE.replace('p: "Hello {{ who }}"', "p: {{ who }}"),
            4, "prompts.p", 'p: "{{ who }}"', id="shorthand-mapping",
        ),
        pytest.param(
            BASE.replace('p: "Hello {{ who }}"', "p: [{role: user, content: {{ who }}}]"),
            4, "prompts.p[0].content", 'content: "{{ who }}"', id="flow-mapping",
        ),
        pytest.param(
            with_content("{{ who }} x"),
            6, "", 'content: "{{ who }} x"', id="text-after-the-braces",
        ),
        pytest.param(
            BASE.replace("who: [world, moon]", "who:\n    - {{ planet }} one"),
            7, "", '- "{{ planet }} one"', id="list-item",
        ),
        pytest.param(
            with_content("{who}"),
            6, "prompts.p[0].content", 'content: "{{ who }}"', id="single-braces",
        ),
    ],
)  # fmt: skip
def test_unquoted_template_says_quote_it(write_yaml, text, line, path, hint) -> None:
    file = write_yaml(text)
    shown = one_problem(file)
    assert shown.startswith(f"{file}:{line}{' ' + path if path else ''}:"), shown
    assert f"-> quote the value: {hint}" in shown


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("{{ range(10**8) | list }}", "range() of 100,000,000 numbers", id="range"),
        pytest.param("{{ 1/0 }}", "ZeroDivisionError: division by zero", id="divide-by-zero"),
        pytest.param("{{ who.foo() }}", "'str object' has no attribute 'foo'", id="no-method"),
        pytest.param("{{ 'x' * 10**9 }}", "a template may build at most 1,000,000",
                     id="repeat"),
        pytest.param("{{ 10 ** 100000000 }}", "too large to compute", id="power"),
        pytest.param("{{ who.__class__.__mro__ }}", "unsafe", id="sandbox"),
        pytest.param("{{ '%d' % who }}", "TypeError: %d format", id="format-error"),
    ],
)  # fmt: skip
def test_template_failing_at_validation(write_yaml, template: str, message: str) -> None:
    path = write_yaml(with_content(f'"{template}"'))
    shown = one_problem(path)
    assert shown.startswith(f"{path}:6 prompts.p[0].content: failed to render")
    assert message in shown and "first value of each var" in shown
    assert ("(who='world')" in shown) == ("who" in template)  # the values it was given


#: Templates that grow a string without ``*`` or ``range``: each would build a gigabyte or more.
GROWING = {
    "printf-width": "{{ '%999999999d' % 1 }}",
    "printf-precision": "{{ '%.999999999f' % 1.5 }}",
    "printf-star": "{{ '%*d' % (999999999, 1) }}",
    "printf-copies": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                     "{% set ns.s = '%s%s' % (ns.s, ns.s) %}{% endfor %}{{ ns.s|length }}",
    "center-filter": "{{ 'a'|center(999999999) }}",
    "center": "{{ 'a'.center(999999999) }}",
    "ljust": "{{ 'a'.ljust(999999999) }}",
    "rjust": "{{ 'a'.rjust(999999999, '-') }}",
    "zfill": "{{ '1'.zfill(999999999) }}",
    "format-width": "{{ '{:>999999999}'.format(1) }}",
    "format-nested": "{{ '{:{w}}'.format(1, w=999999999) }}",
    "format-map": "{{ '{x:^999999999}'.format_map({'x': 1}) }}",
    "format-filter": "{{ '%-999999999s'|format('x') }}",
    "replace": "{{ ('x' * 1000000).replace('x', 'abcdefghijklmnopqrstuvwxyz') }}",
    "replace-filter": "{{ ('x' * 1000000)|replace('x', 'abcdefghijklmnopqrstuvwxyz') }}",
    "join": "{{ (['x' * 1000000] * 1000) | join }}",
    "join-method": "{{ ''.join(['x' * 1000000] * 1000) }}",
    "indent": "{{ ('x\\n' * 100000)|indent(100000, true) }}",
    "wordwrap": "{{ ('x ' * 500000)|wordwrap(1, true, 'y' * 1000) }}",
    "wordwrap-keywords": "{{ ('x ' * 500000)|wordwrap(1, wrapstring='y' * 1000) }}",
    "tojson-indent": "{{ {'a': [1, 2, 3]}|tojson(999999999) }}",
    "expandtabs": "{{ ('\\t' * 100000).expandtabs(100000) }}",
    "translate": "{{ ('a' * 100000).translate({97: 'b' * 100000}) }}",
    "batch": "{{ [1]|batch(999999999, 0)|list }}",
    "string-to-list": "{{ ('x' * 1000000 ~ 'x' * 1000000 ~ 'x' * 1000000)|list|length }}",
    "lipsum": "{{ lipsum(100000, false, 100000, 100000) }}",
    "concat-loop": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                   "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "plus-loop": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                 "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "list-extend-loop": "{% set ns = namespace(s=['a']) %}{% for i in range(40) %}"
                        "{% set _ = ns.s.extend(ns.s) %}{% endfor %}{{ ns.s|length }}",
    "macro-recursion": "{% macro grow(s, n) %}{% if n %}{{ grow(s ~ s, n - 1) }}{% else %}"
                       "{{ s|length }}{% endif %}{% endmacro %}{{ grow('ab', 40) }}",
    "int-squaring": "{% set ns = namespace(n=3) %}{% for i in range(40) %}"
                    "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n > 0 }}",
    "output": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "list-in-output": "{{ [['x' * 1000000] * 100000] }}",
}  # fmt: skip


@pytest.mark.parametrize("template", list(GROWING.values()), ids=list(GROWING))
def test_no_template_grows_a_string_past_the_limit(template: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as info:
            Experiment(provider="echo", prompts={"p": template}, params={"model": "m"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    shown = str(info.value)
    assert "prompts.p[0].content: failed to render" in shown, shown
    assert "a template may build at most" in shown or "too large to compute" in shown, shown
    assert peak < 64_000_000, f"{peak:,} bytes"


def test_strings_under_the_limit_still_render() -> None:
    template = ("{{ '%5d|%-4s|' % (42, 'ab') }}{{ 'a'|center(5) }}{{ 'x'.ljust(3, '.') }}"
                "{{ '{:>4}'.format(7) }}{{ ['a', 'b']|join(',') }}{{ 'abc'.replace('b', 'BB') }}"
                "{{ {'k': [1]}|tojson }}{{ 'v' ~ 1 }}{{ [1, 2] + [3] }}")  # fmt: skip
    exp = Experiment(provider="echo", prompts={"p": template}, params={"model": "m"})
    [cell] = grid.expand(resolve(exp, RunOptions()))
    assert cell.request.messages[0]["content"] == (
        '   42|ab  |  a  x..   7a,baBBc{"k": [1]}v1[1, 2, 3]'
    )


def test_render_error_names_the_line_inside_a_literal_block(write_yaml) -> None:
    text = with_content("|\n        Hi\n\n        {{ 1/0 }}")
    path = write_yaml(text)
    assert one_problem(path).startswith(f"{path}:9 prompts.p[0].content: failed to render")
    syntax = write_yaml(text.replace("{{ 1/0 }}", "{% if who %}"))
    assert one_problem(syntax).startswith(f"{syntax}:9 prompts.p[0].content: template syntax")


@pytest.mark.parametrize(
    ("template", "values", "message"),
    [
        pytest.param("{{ 10 // n }}", "[1, 0]", "ZeroDivisionError", id="divide-by-zero"),
        pytest.param("{{ range(n) | length }}", "[3, 100000000]",
                     "range() of 100,000,000 numbers; the sandbox allows at most 100,000",
                     id="range"),
    ],
)  # fmt: skip
def test_template_failing_at_run_time(write_yaml, tmp_path, template, values, message) -> None:
    """The first values render at validation; a later one fails when its cell is built."""
    text = BASE.replace('"Hello {{ who }}"', f'"{template}"')
    text = text.replace("who: [world, moon]", f"n: {values}")
    path = write_yaml(text)
    exp = Experiment.from_yaml(path)
    with pytest.raises(SpecError) as info:
        grid.render("p", exp.templates["p"], {"n": exp.vars["n"][1]}, 7, exp)
    shown = str(info.value)
    assert shown.startswith(f"{path}:4 prompts.p: failed to render for cell 7 (n=")
    assert message in shown and "every cell" in shown
    with pytest.raises(SpecError, match=r"prompts\.p: failed to render for cell 1 \(n="):
        promptgrid.run(exp, results_dir=tmp_path / "results", progress=False)


# --------------------------------------------------------------------------- case files


@pytest.mark.parametrize(
    ("name", "content", "at", "message", "hint"),
    [
        pytest.param("rows.csv", "who,label\nsun,hot\nice\n", "rows.csv:3",
                     "1 field but the header has 2 (who, label)", "one field per column",
                     id="short-row"),
        pytest.param("rows.csv", "who,label\nsun,hot,x\n", "rows.csv:2",
                     "3 fields but the header has 2", "one field per column", id="long-row"),
        pytest.param("rows.csv", 'who,label\nsun,"hot\nice,cold\nsea,wet\n', "rows.csv:2",
                     "a quoted field opened on this line is never closed", "close the quote",
                     id="unterminated-quote-at-end"),
        pytest.param("rows.csv", 'who,label\nsun,"hot\nice,"cold"\n', "rows.csv:3",
                     "text after a closing quote", "close a quote left open",
                     id="unterminated-quote-then-quotes"),
        pytest.param("rows.csv", 'who,label\nsun,"hot\n' + "ice,cold\n" * 20_000, "rows.csv:2",
                     "a field longer than 131,072 characters", "close the quote",
                     id="unterminated-quote-in-a-long-file"),
        pytest.param("rows.csv", "who,label,who\nsun,hot,x\n", "rows.csv:1",
                     "column 'who' appears twice in the header (columns 1 and 3)", "rename one",
                     id="duplicate-header"),
        pytest.param("rows.csv", "who,,label\nsun,x,hot\n", "rows.csv:1",
                     "column 2 of the header has no name", "name every column",
                     id="empty-header-cell"),
        pytest.param("rows.csv", "who,label\n", "rows.csv has a header but no rows", "",
                     "add at least one row", id="header-only"),
        pytest.param("rows.csv", "", "rows.csv is empty", "", "add at least one row",
                     id="empty-file"),
        pytest.param("rows.csv", b"who\nsun\ncaf\xe9\n", "rows.csv:3", "not UTF-8 text",
                     "CSV UTF-8", id="csv-not-utf8"),
        pytest.param("rows.csv", "who\n" + "x" * 10_000_001, "rows.csv:2",
                     "a line longer than 10,000,000 characters", "line break",
                     id="csv-line-without-end"),
        pytest.param("rows.jsonl", '{"who": "a"}\n{"who": ' + "1" * 5000 + "}\n", "rows.jsonl:2",
                     "invalid JSON: Exceeds the limit (4300", "one JSON object",  # "(4300)" on 3.10
                     id="jsonl-huge-integer"),
        pytest.param("rows.jsonl", '{"who": "a\x00"}\n', "rows.jsonl:1",
                     "invalid JSON: Invalid control character", "one JSON object",
                     id="jsonl-nul"),
        pytest.param("rows.jsonl", '{"who": "a"}\n[1]\n', "rows.jsonl:2",
                     "each line must be a JSON object", "review", id="jsonl-not-an-object"),
        pytest.param("rows.jsonl", '{"who": "a"}\n{"who": ["b\\ud800"]}\n', "rows.jsonl:2",
                     "a lone UTF-16 surrogate escape", "both halves", id="jsonl-lone-surrogate"),
        pytest.param("rows.jsonl", '{"who": ' + "[" * 3000 + "]" * 3000 + "}\n", "rows.jsonl:1",
                     "values nested too deeply", "flatten", id="jsonl-nested-3000-deep"),
    ],
)  # fmt: skip
def test_broken_case_file(write_yaml, tmp_path, name, content, at, message, hint) -> None:
    data = content if isinstance(content, bytes) else content.encode()
    (tmp_path / name).write_bytes(data)
    path = write_yaml(NO_VARS + f"cases_file: {name}\n")
    shown = one_problem(path)
    assert shown.startswith(f"{path}:7 cases_file: {at}{': ' if message else ''}{message}"), shown
    assert shown.count("\n") == 1  # the problem, then what to do
    assert hint in shown.split("\n  -> ")[1]


@pytest.mark.parametrize("name", ["rows.csv", "rows.jsonl"])
def test_case_file_with_byte_order_mark(write_yaml, tmp_path, name) -> None:
    text = "who,expected\nsun,hot\n" if name.endswith("csv") else '{"who": "sun"}\n'
    (tmp_path / name).write_bytes(text.encode("utf-8-sig"))  # Excel's "CSV UTF-8"
    exp = Experiment.from_yaml(write_yaml(NO_VARS + f"cases_file: {name}\n"))
    assert exp.cases.columns[0] == "who" and next(exp.iter_cases())["who"] == "sun"


def test_csv_quoted_line_breaks_and_blank_lines_are_fine(write_yaml, tmp_path) -> None:
    (tmp_path / "rows.csv").write_text('who,note\r\n"sun","hot,\r\nvery"\r\n\r\nice,""""\r\n')
    exp = Experiment.from_yaml(write_yaml(NO_VARS + "cases_file: rows.csv\n"))
    assert list(exp.iter_cases()) == [
        {"who": "sun", "note": "hot,\r\nvery"},
        {"who": "ice", "note": '"'},
    ]


# --------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_refuses_a_bomb_in_one_message(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    done = subprocess.run(
        [sys.executable, "-c", "from promptgrid.cli import main; main()", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    problem, *hint = done.stderr.strip().splitlines()
    assert problem.startswith(f"{path}:14: YAML aliases expand the file to more than 1,000,000")
    assert hint == ["  -> anchors and aliases (&name / *name) that expand this much are refused; "
                    "write the values out, or alias fewer levels"]  # fmt: skip
