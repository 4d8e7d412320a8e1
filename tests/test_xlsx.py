"""The XLSX workbook: four sheets, their structure and formats, and a LibreOffice render."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

import promptgrid
from promptgrid.exports import export
from promptgrid.store import Store
from promptgrid.table import resolve_run

#: 2 prompts × 2 animals × 2 temperatures × 2 repeats; the long prompt can never pass a
#: 1,000-token-per-minute limit, so its 8 calls are error rows.
EXPERIMENT: dict[str, Any] = {
    "name": "book",
    "provider": "echo",
    "prompts": {"short": "Hi {{ animal }}", "long": "Hi {{ animal }} " + "word " * 1200},
    "vars": {"animal": ["dog", "=1+1"]},
    "params": {"model": "m", "temperature": [0.0, 1.0], "max_tokens": 10},
    "repeats": 2,
    "limits": {"tpm": 1000},
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The results folder, the run's workbook, and its run id."""
    results = tmp_path_factory.mktemp("xlsx")
    df = promptgrid.run(EXPERIMENT, results_dir=results, formats="xlsx", progress=False)
    run_id = str(df["run_id"][0])
    return results, results / "book" / run_id / "results.xlsx", run_id


@pytest.fixture(scope="module")
def book(made: tuple[Path, Path, str]) -> Iterator[Any]:
    workbook = load_workbook(made[1])
    yield workbook
    workbook.close()


def header(sheet: Worksheet, row: int = 1) -> list[Any]:
    return [c.value for c in sheet[row]]


def column(sheet: Worksheet, name: str) -> list[Any]:
    """The cells of a results column below the header."""
    index = header(sheet).index(name)
    return [row[index] for row in sheet.iter_rows(min_row=2)]


def test_four_sheets_in_reading_order(book: Any) -> None:
    assert book.sheetnames == ["results", "compare", "summary", "run"]


def test_results_columns_put_inputs_first_and_bookkeeping_last(book: Any) -> None:
    names = header(book["results"])
    assert names[:7] == ["prompt", "animal", "temperature", "repeat", "response", "status",
                         "error_type"]  # fmt: skip
    assert names.index("prompt_tokens") < names.index("latency_s") < names.index("run_id")
    assert names[-3:] == ["model", "max_tokens", "messages"]  # fixed params, then messages
    assert book["results"].max_row == 17


def test_results_header_panes_filter_and_widths(book: Any) -> None:
    sheet = book["results"]
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.freeze_panes == "E2"  # the header and the four input columns stay in view
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}17"
    widths = {c: sheet.column_dimensions[c].width for c in ("A", "B", "E", "F")}
    assert 8 <= widths["A"] <= 30 and widths["F"] <= 10  # prompt, status: narrow
    assert 20 <= widths["E"] <= 60  # response: readable, capped
    response = column(sheet, "response")
    assert all(cell.alignment.wrap_text for cell in response)


def test_results_number_formats(book: Any) -> None:
    sheet = book["results"]
    assert {c.number_format for c in column(sheet, "cost_usd")} == {'"$"#,##0.000000'}
    assert {c.number_format for c in column(sheet, "latency_s")} == {'0.000" s"'}
    assert {c.number_format for c in column(sheet, "prompt_tokens")} == {"#,##0"}


def test_error_rows_are_red_from_end_to_end(book: Any) -> None:
    sheet = book["results"]
    status = header(sheet).index("status")
    rows = list(sheet.iter_rows(min_row=2))
    bad = [r for r in rows if r[status].value == "error"]
    good = [r for r in rows if r[status].value == "ok"]
    assert len(bad) == len(good) == 8
    assert all(c.fill.fgColor.rgb.endswith("FFC7CE") for r in bad for c in r if c.has_style)
    assert all(r[status].font.b for r in bad)
    assert not any(c.fill.fill_type for r in good for c in r)


def test_formula_looking_text_stays_text_in_every_sheet(book: Any) -> None:
    for sheet in book.worksheets:
        cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
        assert all(c.data_type != "f" for c in cells), sheet.title
    assert "=1+1" in [c.value for c in column(book["results"], "animal")]
    assert "=1+1" in [row[0].value for row in book["compare"].iter_rows(min_row=3)]


def test_compare_sheet_is_side_by_side_with_errors_apart(book: Any) -> None:
    sheet = book["compare"]
    top, names = header(sheet, 1), header(sheet, 2)
    assert top == [None, "short", None, "long", None]  # prompt over its temperatures, merged
    assert names == ["animal"] + ["temperature = 0.0", "temperature = 1.0"] * 2
    assert "B1:C1" in {str(r) for r in sheet.merged_cells.ranges}
    assert sheet.freeze_panes == "B3" and sheet.auto_filter.ref == "A2:E4"
    rows = list(sheet.iter_rows(min_row=3, values_only=False))
    assert [r[0].value for r in rows] == ["dog", "=1+1"]
    answer = rows[0][1]
    assert answer.value == "echo: Hi dog\n───\necho: Hi dog"  # two repeats stacked in one cell
    assert not answer.fill.fill_type and answer.alignment.wrap_text
    error = rows[0][3]
    assert error.value.startswith("[") and "echo:" not in error.value
    assert error.fill.fgColor.rgb.endswith("FFC7CE")


def test_compare_sheet_repeats_as_columns(made: tuple[Path, Path, str], tmp_path: Path) -> None:
    results, _, run_id = made
    with Store.in_dir(results, readonly=True) as store:
        run = resolve_run(store, run_id)
        [path] = export(store, run, tmp_path / "cols.xlsx", ["xlsx"], repeats="columns")
    book = load_workbook(path)
    try:
        sheet = book["compare"]
        assert header(sheet, 3)[:3] == ["animal", "repeat = 0", "repeat = 1"]
        assert sheet.max_column == 9 and sheet.cell(4, 2).value == "echo: Hi dog"
    finally:
        book.close()


def test_summary_sheet_blocks_and_formats(book: Any) -> None:
    sheet = book["summary"]
    titles = [row[0].value for row in sheet.iter_rows() if row[0].font.sz == 13]
    assert titles == ["By prompt × temperature", "By prompt", "By temperature", "All calls"]
    rows = {
        (r[0].value, r[1].value): r for r in sheet.iter_rows() if r[0].value in ("short", "long")
    }
    head = header(sheet, 2)
    rate = head.index("error rate")
    assert rows[("long", "0.0")][rate].value == 1.0 and rows[("short", "0.0")][rate].value == 0.0
    assert rows[("long", "0.0")][rate].number_format == "0.0%"
    assert rows[("long", "0.0")][rate].fill.fgColor.rgb.endswith("FFC7CE")
    assert rows[("short", "0.0")][head.index("cost")].number_format == '"$"#,##0.000000'


def test_run_sheet_has_settings_totals_version_and_experiment(
    book: Any, made: tuple[Path, Path, str]
) -> None:
    values = {row[0].value: row[1].value for row in book["run"].iter_rows() if row[0].value}
    assert values["Run " + made[2]] is None
    assert values["experiment"] == "book"
    assert values["results"] == "complete: every cell has a result"
    assert values["written by"] == f"promptgrid {promptgrid.__version__}"
    assert values["calls with a result"] == 16 and values["errors"] == 8
    assert values["error rate"] == 0.5 and values["endpoints"] == '{"echo": "echo"}'
    lines = [row[1].value for row in book["run"].iter_rows() if row[0].value is None]
    assert "name: book" in lines and "  temperature:" in lines


def test_an_empty_run_still_makes_a_workbook(tmp_path: Path) -> None:
    exp = {**EXPERIMENT, "name": "empty", "prompts": {"p": "x"}, "vars": {}, "repeats": 1}
    df = promptgrid.run(exp, results_dir=tmp_path, formats="csv", progress=False)
    with Store.in_dir(tmp_path) as store:
        run = resolve_run(store, str(df["run_id"][0]))
        with store.transaction():
            store.db.execute("DELETE FROM results")  # as if interrupted before any answer
        [path] = export(store, run, tmp_path / "empty.xlsx", ["xlsx"])
    book = load_workbook(path)
    try:
        assert book["compare"]["A1"].value == "No results yet."
        assert book["results"].max_row == 1
    finally:
        book.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) not installed: "
                    "apt-get install libreoffice-calc to render the workbook")  # fmt: skip
def test_libreoffice_renders_every_sheet(made: tuple[Path, Path, str], tmp_path: Path) -> None:
    profile = f"-env:UserInstallation=file://{tmp_path / 'profile'}"  # no clash with a user's
    done = subprocess.run(
        ["soffice", profile, "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path),
         str(made[1])],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    pdf = tmp_path / "results.pdf"
    assert done.returncode == 0 and pdf.is_file(), done.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    assert _pages(pdf) >= 4  # at least a page per sheet


def _pages(pdf: Path) -> int:
    """Pages of a PDF by pdfinfo (poppler-utils), else by counting page objects."""
    if shutil.which("pdfinfo"):
        out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        return int(next(line.split()[-1] for line in out.splitlines() if line.startswith("Pages")))
    import re

    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
