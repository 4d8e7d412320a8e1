"""The CLI: thin commands, one message per error, exit codes, nothing written on bad input."""

from __future__ import annotations

import contextlib
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


@pytest.mark.slow
def test_a_runs_code_imports_no_numerical_library() -> None:
    # What a run imports before its export (spec, store, engine, providers): numpy, pandas,
    # scipy and pyarrow cost ~0.5 s and ~40 MB; the export imports pyarrow while calls wait
    # (exports.prefetch), the DataFrame pandas, a race numpy (issue 24).
    code = (
        "import sys, promptgrid.cli, promptgrid.api, promptgrid.operations, promptgrid.runner\n"
        "import promptgrid.providers.openai, promptgrid.providers.echo\n"
        "print([m for m in ('numpy', 'pandas', 'scipy', 'pyarrow') if m in sys.modules])"
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


# ------------------------------------------------------------ what the CLI says (issue 21)

SCORED = """
    name: scored
    provider: echo
    prompts:
      plain: "Name a {{ animal }}."
      loud: "NAME A {{ animal }}!"
    vars:
      animal: [dog, cat, cow, hen, pig, ant, bee, elk]
    params: {model: m}
    scores:
      lower: {regex: "[a-z]{3}\\\\."}
"""


@pytest.mark.slow
def test_show_and_the_run_point_to_the_verdict(write_yaml, tmp_path: Path) -> None:
    results = tmp_path / "r"
    path = write_yaml(SCORED)
    done = CliRunner().invoke(cli, ["run", str(path), "--results-dir", str(results),
                                    "--format", "csv", "--no-progress"])  # fmt: skip
    assert done.exit_code == 0, done.output
    run_id = done.output.split()[1].rstrip(":")
    pointer = f"the verdict in full: promptgrid contrast {run_id} --results-dir {results}"
    assert pointer in done.output
    shown = CliRunner().invoke(cli, ["show", run_id, "--results-dir", str(results)])
    assert shown.exit_code == 0, shown.output
    verdict = shown.output.split("verdict:\n", 1)[1]
    assert verdict.startswith("  score_lower by prompt: plain beats loud")
    assert f"promptgrid report {run_id} --results-dir {results}" in verdict


def test_runs_shows_where_the_calls_went_without_credentials(animals: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from promptgrid.operations import _endpoints

    results = tmp_path / "r"
    assert CliRunner().invoke(cli, ["run", str(animals), "--results-dir", str(results),
                                    "--format", "csv", "--no-progress"]).exit_code == 0  # fmt: skip
    listed = CliRunner().invoke(cli, ["runs", "--results-dir", str(results)])
    assert listed.exit_code == 0 and " echo " in listed.output, listed.output
    recorded = {"openai": "https://me:sk-secret-123456@api.example.com/v1?api-key=topsecret99",
                "local": "http://127.0.0.1:8123/v1", "echo": "echo"}  # fmt: skip
    shown = _endpoints(SimpleNamespace(options={"endpoints": recorded}, spec={}))
    assert shown == "openai api.example.com, local 127.0.0.1:8123, echo"
    old = _endpoints(SimpleNamespace(options={}, spec={"provider": "echo"}))  # before records
    assert old == "echo"


def test_a_cancelled_run_is_told_to_resume_with_the_cli(
    animals: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptgrid import _sync, operations

    def cancel(coro: object, handle: _sync.RunHandle) -> None:  # a second Ctrl-C, at once
        coro.close()  # type: ignore[attr-defined]
        handle.run_id = "20261207-000000.000-abcd"
        raise KeyboardInterrupt(_sync.cancelled_message(handle))

    monkeypatch.setattr(operations, "run_sync", cancel)
    done = CliRunner().invoke(cli, ["run", str(animals), "--results-dir", str(tmp_path / "r")])
    assert done.exit_code == 130
    assert "run 20261207-000000.000-abcd cancelled; its completed rows are saved" in done.output
    assert "resume=True" not in done.output and "resume with: promptgrid run" in done.output


def test_money_shows_digits_until_it_is_not_zero() -> None:
    from promptgrid.money import usd

    assert usd(0) == "$0" and usd(None) == "-" and usd(float("nan")) == "-"
    assert usd(0.000042) == "$0.000042" and usd(0.0000123) == "$0.000012"
    assert usd(0.0099) == "$0.0099" and usd(1234.5) == "$1,234.5000" and usd(-5e-05) == "-$0.000050"
    assert usd(1e-15) == "$1e-15"  # never "$0.000000000000"


def test_the_command_gives_arrow_the_c_allocator_unless_the_user_chose(monkeypatch) -> None:
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    with contextlib.suppress(SystemExit):
        main(["--help"])
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    with contextlib.suppress(SystemExit):
        main(["--help"])
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "jemalloc"
