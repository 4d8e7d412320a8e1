"""The CLI: thin commands, one message per error, exit codes, nothing written on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from promptgrid.cli import cli, main


def invoke(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess (no API key in its environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, "-c", "from promptgrid.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=60,
    )  # fmt: skip


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    found = [([name], command) for name, command in cli.commands.items()]
    for path, command in found:  # groups' commands too (promptgrid batch status, ...)
        if isinstance(command, click.Group):
            found += [([*path, name], sub) for name, sub in command.commands.items()]
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert command.help and "Example" in command.help, f"{path} has no example"


@pytest.mark.slow
def test_run_validate_plan_show_export(animals: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = invoke("validate", str(animals))
    assert done.returncode == 0 and "ok (12 calls)" in done.stdout
    plan = invoke("plan", str(animals), "--results-dir", str(out))
    assert plan.returncode == 0 and "total calls" in plan.stdout
    run = invoke("run", str(animals), "--results-dir", str(out), "--format", "csv,jsonl")
    assert run.returncode == 0, run.stderr
    run_id = run.stdout.split()[1].rstrip(":")
    assert (out / "animals" / run_id / "results.csv").is_file()
    assert (out / "animals" / run_id / "results.jsonl").is_file()
    show = invoke("show", run_id, "--results-dir", str(out), "--columns", "prompt,response")
    assert "echo: Please give me five dog names" in show.stdout
    runs = invoke("runs", "--results-dir", str(out))
    assert run_id in runs.stdout and "finished" in runs.stdout
    target = tmp_path / "animals.xlsx"
    export = invoke("export", run_id, "--results-dir", str(out), "--format", "xlsx",
                    "-o", str(target))  # fmt: skip
    assert export.returncode == 0 and target.is_file()


@pytest.mark.slow
def test_bad_input_exits_2_with_one_message_and_writes_nothing(write_yaml, tmp_path: Path) -> None:
    path = write_yaml("prompts: {p: 'hi {{ x }}'}\nprovider: echo\nparams: {model: m}\n")
    result = invoke("run", str(path), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "undefined template variable 'x'" in result.stderr
    assert f"{path}:1 prompts.p" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["run", "missing.yaml"], "no such file", id="missing-file"),
        pytest.param(["show", "nope"], "no run", id="unknown-run"),
        pytest.param(["run", "{animals}", "--format", "docx"], "unknown format", id="bad-format"),
        pytest.param(
            ["run", "{animals}", "--provider", "nope"], "unknown provider", id="bad-provider"
        ),
        pytest.param(["run", "{animals}", "--resume"], "no unfinished run", id="nothing-to-resume"),
    ],
)
def test_usage_errors_exit_2(animals: Path, tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.replace("{animals}", str(animals)) for a in args]
    result = invoke(*args, "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_api_key_suggests_echo(write_yaml, tmp_path: Path) -> None:
    path = write_yaml("prompts: {p: hi}\nparams: {model: gpt-4o-mini}\n")
    result = invoke("run", str(path), "--results-dir", str(tmp_path / "r"))
    assert result.returncode == 2, result.stderr
    assert "OPENAI_API_KEY" in result.stderr and "--provider echo" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()


def test_schema_is_json() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    schema = json.loads(result.output)
    assert schema["title"] == "promptgrid experiment" and "params" in schema["properties"]


@pytest.mark.slow
def test_validate_reports_each_file(write_yaml, animals: Path) -> None:
    bad = write_yaml("prompts: {}\nparams: {model: m}\n", "bad.yaml")
    result = invoke("validate", str(animals), str(bad))
    assert result.returncode == 2
    assert "ok (12 calls)" in result.stdout and "bad.yaml:1 prompts" in result.stderr


@pytest.mark.slow
def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from promptgrid.cli import main\n"
        "try: main(['--help'])\nexcept SystemExit: pass\n"
        "names = ('pandas', 'openai', 'pyarrow', 'pydantic', 'jinja2')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("[]"), out.stdout


@pytest.mark.slow
def test_the_api_and_its_operations_import_no_table_library() -> None:
    # `promptgrid validate`, `plan` and `import promptgrid; promptgrid.Experiment` need no
    # pandas or pyarrow: the operations layer under the CLI imports them only when called.
    code = (
        "import sys, promptgrid.api, promptgrid.operations\n"
        "print([m for m in ('pandas', 'pyarrow', 'openai') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr


def test_main_turns_errors_into_exit_codes(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["show", "--results-dir", str(tmp_path)])
    assert info.value.code == 2 and "no runs" in capsys.readouterr().err


def test_a_file_name_that_is_not_utf8_is_one_clear_error(
    animals: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What Python makes of a name with the byte 0xff (in argv, or from os.listdir).
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/an\xffimals.yaml"))
    odd.write_text(animals.read_text())
    results = tmp_path / "r"
    for args in (["validate", str(odd)], ["plan", str(odd), "--results-dir", str(results)],
                 ["run", str(odd), "--results-dir", str(results)]):  # fmt: skip
        with pytest.raises(SystemExit) as done:
            main(args)
        err = capsys.readouterr().err
        assert done.value.code == 2 and "Traceback" not in err, (args, err)
        assert "an\\udcffimals.yaml" in err and "not valid UTF-8" in err and "rename" in err
    assert not results.exists()
    bad_results = Path(os.fsdecode(bytes(tmp_path) + b"/r\xff"))
    with pytest.raises(SystemExit) as done:
        main(["run", str(animals), "--results-dir", str(bad_results)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "not valid UTF-8" in err and not bad_results.exists()
