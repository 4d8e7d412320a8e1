"""Every example of the README and of docs/ runs as written, or says why it does not.

The conventions are the contributors' note's (docs/contributing.md, "Examples are tested"):
``bash`` blocks are ``promptgrid`` commands, run in-process through click's runner; ``python``
blocks are executed, one namespace a page; ``yaml`` blocks are laid over a base experiment and
validated; ``text`` blocks are output. An HTML comment just above a block says ``not-run:
REASON``, ``given: CODE``, ``onto: experiments/NAME.yaml`` or ``in-a-shell``. The blocks of a
page run in page order in one folder, so a later block sees an earlier one's runs.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import promptgrid
from promptgrid import errors
from promptgrid.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = ("bash", "python", "yaml")  # the languages whose blocks are examples
LANGUAGES = (*RUN, "text")  # text: output shown, never run
DIRECTIVES = ("not-run", "given", "onto", "in-a-shell")

#: Pages whose examples start a process or a server (a scoring worker for every scored run,
#: the fault server): their test is slow. A page not listed here that starts one fails.
SLOW = {
    "README.md": "runs capitals.yaml, whose scores run in a worker process",
    "getting-started.md": "runs capitals.yaml (a scoring worker)",
    "scores.md": "scores in a worker process",
    "racing.md": "runs racing.yaml (a scoring worker)",
    "testing.md": "starts the fault server",
}

#: What a ``yaml`` fragment is laid over unless ``onto:`` names a file: offline, no vars.
BASE = {
    "name": "docs-example",
    "provider": "echo",
    "prompts": {"hello": "Say hello."},
    "params": {"model": "gpt-4o-mini", "max_tokens": 20},
}
LISTED_RUN = re.compile(r"^\d{8}-\d{6}\.\d{3}-[0-9a-f]{4}\b", re.M)
SHOWN_FILE = re.compile(r"#\s*([\w.-]+(?:/[\w.-]+)+)")  # "# experiments/my_scores.py: ..."


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page, with the directives written just above it."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    directives: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.language})"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` in order (fences indented in list items too)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    start = None
    for number, line in enumerate(lines):
        fence = re.match(r"( *)```(\S*)\s*$", line)
        if not fence:
            continue
        if start is None:
            start, indent, language = number, len(fence[1]), fence[2]
            continue
        code = "".join(row[indent:] + "\n" for row in lines[start + 1 : number])
        found.append(Block(page, start + 1, language, code, directives_above(lines, start)))
        start = None
    assert start is None, f"{page.name}:{start + 1}: a code fence is never closed"
    return found


def directives_above(lines: list[str], fence: int) -> dict[str, str]:
    """The ``<!-- name: value -->`` comments on the lines just above line ``fence``."""
    found: dict[str, str] = {}
    row = fence - 1
    while row >= 0 and (comment := re.fullmatch(r"\s*<!--\s*(.*?)\s*-->\s*", lines[row])):
        name, _, value = comment[1].partition(":")
        found[name.strip()] = value.strip()
        row -= 1
    return found


def shown_file(block: Block) -> str | None:
    """The repository file a block shows, named in a comment on its first line."""
    first = SHOWN_FILE.match(block.code)
    return first[1] if first and (ROOT / first[1]).is_file() else None


ALL = [block for page in PAGES for block in blocks(page)]


# ------------------------------------------------------------------ the conventions hold


@pytest.mark.parametrize("block", ALL, ids=str)
def test_each_block_says_what_it_is(block: Block) -> None:
    assert block.language in LANGUAGES, (
        f"{block}: say ```bash, ```python or ```yaml (an example, run by this test) "
        "or ```text (output)"
    )
    unknown = set(block.directives) - set(DIRECTIVES)
    assert not unknown, f"{block}: unknown directive {sorted(unknown)}; known: {DIRECTIVES}"
    if "not-run" in block.directives:
        assert block.directives["not-run"], f"{block}: not-run needs a reason"
        assert block.language in RUN, f"{block}: a {block.language} block is never run anyway"
    if "onto" in block.directives:
        assert block.language == "yaml" and (ROOT / block.directives["onto"]).is_file(), block


@pytest.mark.parametrize("block", [b for b in ALL if shown_file(b)], ids=str)
def test_a_block_that_names_a_file_is_that_file(block: Block) -> None:
    path = ROOT / shown_file(block)
    assert block.code == path.read_text(encoding="utf-8"), f"{block} differs from {path}"


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    ci_test_command = next(
        line for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.startswith("python3 -m venv .venv") and "pytest" in line
    )  # fmt: skip
    assert f"```bash\n{ci_test_command}\n```" in readme  # the README's test command is CI's
    shell = [block for block in blocks(ROOT / "README.md") if "in-a-shell" in block.directives]
    assert shell and "source .venv/bin/activate" in shell[0].code  # the quickstart activates


def test_the_errors_page_lists_every_exception_with_its_exit_code() -> None:
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = {
        found[1]: (found[2], int(found[3]))
        for found in re.finditer(r"^\| `(\w+)` \| `?([\w—]+)`? \| (\d+) \|", page, re.M)
    }
    for name in errors.__all__:
        kind = getattr(errors, name)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            continue  # ExitCode, Problem
        if issubclass(kind, Warning):
            assert f"`promptgrid.errors.{name}`" in page, f"docs/errors.md does not say {name}"
            continue
        assert name in rows, f"docs/errors.md does not list {name}"
        error_type, code = rows[name]
        if issubclass(kind, errors.ProviderError):  # a row's error_type; stops the run or not
            stops = kind.stops_run or kind is errors.BatchUnknown
            assert (error_type, code) == (kind.code, 1 if stops else 3), name
        else:
            assert (error_type, code) == ("—", kind.exit_code), name
    for code in errors.ExitCode:
        assert f"`{int(code)}`" in page, f"docs/errors.md does not explain exit code {code}"


# ------------------------------------------------------------------ the examples run


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a copy of experiments/, the working directory of a page's examples."""
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-examples-0000")  # a fault server's, at most
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "page",
    [pytest.param(page, marks=[pytest.mark.slow] if page.name in SLOW else [], id=page.name)
     for page in PAGES],
)  # fmt: skip
def test_the_examples_of_a_page_run(
    page: Path, page_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = watch_processes(monkeypatch)
    namespace: dict[str, Any] = {"promptgrid": promptgrid, "json": json, "pd": pd}
    for block in blocks(page):
        if block.language not in RUN or {"not-run", "in-a-shell"} & set(block.directives):
            continue
        if block.language == "yaml":
            validate(block, page_folder)
            continue
        run = run_bash if block.language == "bash" else run_python
        if "given" in block.directives:
            run(block, block.directives["given"], namespace)
        run(block, block.code, namespace)
    assert page.name in SLOW or not started, (
        f"{page.name}'s examples started {started}: list the page in SLOW (tests/test_docs.py)"
    )


def watch_processes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every process started from now on (asyncio's subprocesses too)."""
    started: list[str] = []

    class Watched(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, args: Any, *more: Any, **options: Any) -> None:
            started.append(str(args)[:80])
            super().__init__(args, *more, **options)

    monkeypatch.setattr(subprocess, "Popen", Watched)
    return started


def run_bash(block: Block, code: str, namespace: dict[str, Any]) -> None:
    """Each line is one promptgrid command, run in-process; it must exit 0."""
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words == ["source", ".venv/bin/activate"]:
            continue
        assert words[0] in ("promptgrid", ".venv/bin/promptgrid"), (
            f"{block}: {line!r} is not a promptgrid command: mark the block not-run, with why"
        )
        args = [placeholder(word) for word in words[1:]]
        result = CliRunner().invoke(cli, args)
        if result.exit_code != 0:
            detail = "".join(result.output) + (repr(result.exception) or "")
            pytest.fail(f"{block}: `{line}` exited {result.exit_code}:\n{detail}")


def placeholder(word: str) -> str:
    """``RUN_ID``: the newest run of the page's folder; ``RUN_A``, ``RUN_B``: its two newest."""
    if word not in ("RUN_ID", "RUN_A", "RUN_B"):
        return word
    listed = CliRunner().invoke(cli, ["runs"]).output
    newest_first = LISTED_RUN.findall(listed)
    wanted = {"RUN_ID": 0, "RUN_B": 0, "RUN_A": 1}[word]
    assert len(newest_first) > wanted, f"{word}: the page has made {len(newest_first)} runs"
    return newest_first[wanted]


def run_python(block: Block, code: str, namespace: dict[str, Any]) -> None:
    """Execute in the page's namespace; top-level ``await`` as in a notebook."""
    if code.lstrip().startswith(">>>"):  # a session: its statements, not its output
        code = "\n".join(line[4:] for line in code.splitlines() if line[:4] in (">>> ", "... "))
    compiled = compile(code, str(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    done = eval(compiled, namespace)  # a coroutine when the code awaits
    if asyncio.iscoroutine(done):
        asyncio.run(done)


def validate(block: Block, folder: Path) -> None:
    """Lay the fragment over its base, then ``promptgrid validate`` it beside the examples."""
    onto = block.directives.get("onto")
    base = yaml.safe_load((ROOT / onto).read_text()) if onto else dict(BASE)
    experiment = {**base, **(yaml.safe_load(block.code) or {})}
    path = folder / "experiments" / f"docs-{block.page.stem}-{block.line}.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, f"{block}: promptgrid validate says\n{result.output}"


# ------------------------------------------------------------------ the README, in a shell


@pytest.mark.slow
def test_the_readme_quickstart_runs_in_a_shell(tmp_path: Path) -> None:
    """As a user types it after the set-up command: in bash, the venv activated."""
    activate = Path(sys.prefix) / "bin" / "activate"
    if not activate.is_file():
        pytest.skip(f"the tests run outside a virtual environment ({sys.prefix})")
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    (tmp_path / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    script = "set -eo pipefail\n" + "".join(
        block.code for block in blocks(ROOT / "README.md") if "in-a-shell" in block.directives
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VIRTUAL_ENV"))}
    bin_dir = (Path(sys.prefix) / "bin").resolve()  # on PATH only if the block activates it
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if Path(part).resolve() != bin_dir
    )
    shell = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = shell.communicate(timeout=300)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    assert shell.returncode == 0, output
    shown = next(block for block in blocks(ROOT / "README.md") if block.language == "text")
    for line in shown.code.splitlines():  # the output the README shows is the real one
        assert line in output, (
            f"README.md:{shown.line} shows {line!r}; the quickstart printed\n{output}"
        )
