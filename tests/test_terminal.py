"""What reaches the terminal: data from answers, datasets and stores is shown, never obeyed.

Escape sequences (OSC 52 writes the clipboard, OSC 8 makes links, ``ESC[2J`` clears the
screen), C1 controls, carriage returns and bidirectional overrides from data are printed as
visible escapes (``\\x1b``); rich markup in data is printed as written. Each test reads what the
commands wrote (through the CLI's own entry point), not what a helper returns.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

import promptgrid
from promptgrid.cli import main
from promptgrid.terminal import visible

#: Sequences a terminal would act on, and rich markup that rich would interpret.
EVIL = {
    "osc52": "\x1b]52;c;ZWNobyBwd25lZA==\x07",  # write the clipboard
    "osc8": "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",  # a hyperlink
    "clear": "\x1b[2J\x1b[H",  # clear the screen
    "title": "\x1b]0;pwned\x07",  # the window title
    "csi-c1": "\x9b31m",  # an 8-bit CSI (C1 control)
    "overwrite": "safe\rEVIL",  # a carriage return rewrites the line
    "bidi": "abc\u202edcba",  # right-to-left override
}
MARKUP = "[bold red]not bold[/bold red] [link=http://evil.example]x[/link]"
RAW = ("\x1b", "\x9b", "\x07", "\r", "\u202e")


def experiment(values: list[str]) -> dict[str, object]:
    return {
        "name": "evil",
        "provider": "echo",
        "prompts": {"p": "{{ v }}"},
        "vars": {"v": values},
        "params": {"model": "m"},
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("results")
    promptgrid.run(experiment([*EVIL.values(), MARKUP]), results_dir=folder, progress=False)
    return folder


def printed(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Everything a command wrote to stdout and stderr."""
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    out = capsys.readouterr()
    return out.out + out.err


def assert_inert(text: str) -> None:
    found = [c for c in RAW if c in text]
    assert not found, f"raw {found!r} reached the terminal: {text!r}"


@pytest.mark.parametrize("command", ["show", "compare"])
def test_show_and_compare_print_escapes_from_answers_visibly(
    results: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    text = printed(capsys, command, "--results-dir", str(results))
    assert_inert(text)
    assert "\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in text.replace("\n", "").replace("│", "")
    assert "[bold red]not bold[/bold red]" in text.replace("\n", "")  # markup as written


def test_runs_prints_a_hostile_store_visibly(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    db = sqlite3.connect(copy / "promptgrid.sqlite")
    with db:
        db.execute("UPDATE runs SET experiment = ?", ("x" + EVIL["clear"] + EVIL["osc52"],))
    db.close()
    text = printed(capsys, "runs", "--results-dir", str(copy))
    assert_inert(text)
    assert "x\\x1b[2J\\x1b[H" in text


def test_messages_print_data_visibly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two runs whose model differs: compare names the change in a line of its own.
    a = promptgrid.run({**experiment(["a"]), "params": {"model": "m"}}, results_dir=tmp_path,
                       progress=False)  # fmt: skip
    b = promptgrid.run({**experiment(["a"]), "params": {"model": "m" + EVIL["title"]}},
                       results_dir=tmp_path, progress=False)  # fmt: skip
    runs = [str(df["run_id"].iloc[0]) for df in (a, b)]
    text = printed(capsys, "compare", *runs, "--results-dir", str(tmp_path))
    assert_inert(text)
    assert "changed: model: m -> m\\x1b]0;pwned\\x07" in text


def test_progress_shows_its_description_as_written() -> None:
    from rich.console import Console

    from promptgrid.progress import RichProgress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, color_system=None)
    bar = RichProgress("[red]run[/red]" + EVIL["clear"], console)
    bar.start(2)
    bar.advance(1)
    bar.close()
    shown = buffer.getvalue()
    assert "[red]run[/red]\\x1b[2J" in shown
    assert "\x1b[2J" not in shown.replace("\x1b[2K", "")  # rich's own line erasing aside


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain\ttab\nnew line", "plain\ttab\nnew line", id="tab-newline-kept"),
        pytest.param("a\r\nb", "a\nb", id="crlf-is-a-newline"),
        pytest.param("\x1b[31m", "\\x1b[31m", id="esc"),
        pytest.param("\x00\x7f\x85\x9f", "\\x00\\x7f\\x85\\x9f", id="c0-del-c1"),
        pytest.param("\u202e\u2066\u200f", "\\u202e\\u2066\\u200f", id="bidi"),
        pytest.param("\udcff", "\\udcff", id="lone-surrogate"),
        pytest.param("émoji 🙂 中文", "émoji 🙂 中文", id="unicode-kept"),
    ],
)
def test_visible(text: str, expected: str) -> None:
    assert visible(text) == expected
