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
#: 1,000-token-per-minute limit, so its 8 calls are error rows. The dog's answers pass the
#: score ``dog``, the other animal's fail it.
EXPERIMENT: dict[str, Any] = {
    "name": "book",
    "provider": "echo",
    "prompts": {"short": "Hi {{ animal }}", "long": "Hi {{ animal }} " + "word " * 1200},
    "vars": {"animal": ["dog", "=1+1"]},
    "params": {"model": "m", "temperature": [0.0, 1.0], "max_tokens": 10},
    "repeats": 2,
    "limits": {"tpm": 1000},
    "scores": {"dog": {"icontains": "dog"}},
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
    assert names[:8] == ["prompt", "animal", "temperature", "repeat", "response", "score_dog",
                         "status", "error_type"]  # fmt: skip
    assert names.index("prompt_tokens") < names.index("latency_s") < names.index("run_id")
    assert names[-3:] == ["model", "max_tokens", "messages"]  # fixed params, then messages
    assert names.index("score_errors") > names.index("run_id")  # why a score is missing: apart
    assert book["results"].max_row == 17


def test_results_header_panes_filter_and_widths(book: Any) -> None:
    sheet = book["results"]
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.freeze_panes == "E2"  # the header and the four input columns stay in view
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}17"
    widths = {c: sheet.column_dimensions[c].width for c in ("A", "B", "E", "G")}
    assert 8 <= widths["A"] <= 30 and widths["G"] <= 10  # prompt, status: narrow
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
    score = header(sheet).index("score_dog")  # green or red: the score's verdict
    assert not any(c.fill.fill_type for r in good for c in r if c.column != score + 1)


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
    # two repeats stacked in one cell, each with its score
    assert answer.value == "echo: Hi dog\n✓ dog\n───\necho: Hi dog\n✓ dog"
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
        assert sheet.max_column == 9 and sheet.cell(4, 2).value == "echo: Hi dog\n✓ dog"
    finally:
        book.close()


def test_summary_sheet_blocks_and_formats(book: Any) -> None:
    sheet = book["summary"]
    titles = [row[0].value for row in sheet.iter_rows() if row[0].font.sz == 13]
    assert titles == ["Verdict", "Levels (pass rate or mean, 95% interval)",
                      "Each level against the best (paired)", "By prompt × temperature",
                      "By prompt", "By temperature", "All calls"]  # fmt: skip
    rows = {
        (r[0].value, r[1].value): r for r in sheet.iter_rows() if r[0].value in ("short", "long")
    }
    start = next(r[0].row for r in sheet.iter_rows() if r[0].value == "By prompt × temperature")
    head = header(sheet, start + 1)
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) not installed: "
                    "apt-get install libreoffice-calc to render the workbook")  # fmt: skip
def test_the_results_sheet_prints_on_one_page_not_dozens(
    made: tuple[Path, Path, str], tmp_path: Path
) -> None:
    book = load_workbook(made[1])  # the results sheet alone, printed as LibreOffice prints it
    for name in [n for n in book.sheetnames if n != "results"]:
        del book[name]
    book.save(tmp_path / "results.xlsx")
    profile = f"-env:UserInstallation=file://{tmp_path / 'profile'}"
    subprocess.run(
        ["soffice", profile, "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path),
         str(tmp_path / "results.xlsx")],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert _pages(tmp_path / "results.pdf") == 1  # 16 rows (every column printed: 37 pages)


def _pages(pdf: Path) -> int:
    """Pages of a PDF by pdfinfo (poppler-utils), else by counting page objects."""
    if shutil.which("pdfinfo"):
        out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        return int(next(line.split()[-1] for line in out.splitlines() if line.startswith("Pages")))
    import re

    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


# ---------------------------------------------------------------------------- scores


def test_results_scores_sit_beside_the_answer_in_colour(book: Any) -> None:
    sheet = book["results"]
    rows = [(r[4].value, r[5]) for r in sheet.iter_rows(min_row=2) if r[6].value == "ok"]
    assert {(answer, cell.value) for answer, cell in rows} == {
        ("echo: Hi dog", True), ("echo: Hi =1+1", False)
    }  # fmt: skip
    for answer, cell in rows:
        fill = cell.fill.fgColor.rgb
        assert fill.endswith("C6EFCE" if cell.value else "FFC7CE") and cell.font.b, answer


def test_the_results_sheet_prints_its_reading_columns_one_page_wide(book: Any) -> None:
    sheet = book["results"]
    error = header(sheet).index("error") + 1
    assert sheet.print_area == f"'results'!$A$1:${sheet.cell(1, error).column_letter}$17"
    assert sheet.page_setup.fitToWidth in (None, 1) and sheet.page_setup.fitToHeight == 0
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert sheet.print_title_rows == "$1:$1" and sheet.page_setup.orientation == "landscape"


def test_compare_answers_carry_their_scores_in_colour(made: tuple[Path, Path, str]) -> None:
    book = load_workbook(made[1], rich_text=True)
    try:
        sheet = book["compare"]
        dog, other = sheet["B3"].value, sheet["B4"].value
        assert str(dog) == "echo: Hi dog\n✓ dog\n───\necho: Hi dog\n✓ dog"
        assert str(other) == "echo: Hi =1+1\n✗ dog\n───\necho: Hi =1+1\n✗ dog"

        def marks(rich: Any) -> set[tuple[str, str]]:
            bold = [b for b in rich if getattr(b, "font", None) is not None and b.font.b]
            return {(b.text, b.font.color.rgb) for b in bold}

        assert marks(dog) == {("✓ dog", "FF006100")} and marks(other) == {("✗ dog", "FF9C0006")}
        assert sheet["D3"].value.startswith("[")  # an error shows no scores
    finally:
        book.close()


def test_the_summary_opens_on_the_verdict_decide_gives(book: Any, made: tuple[Path, ...]) -> None:
    sheet = book["summary"]
    df = promptgrid.load(made[2], results_dir=made[0])
    decision = promptgrid.decide(df)
    lines = [r[0].value for r in sheet.iter_rows(min_row=2, max_row=1 + len(decision.verdicts()))]
    assert lines == decision.verdicts() and lines[0].startswith("score_dog by prompt: no pairs")
    rows = {(r[0].value, r[1].value): [c.value for c in r] for r in sheet.iter_rows()}
    level = rows[("dog by animal", "dog")]
    assert level[2:5] == [2, 4, 1.0] and level[9] == "yes"  # cells, samples, rate; best
    pair = rows[("dog by animal", "=1+1 vs dog")]
    assert pair[2:5] == [2, 2, -1.0] and pair[7] == "0.5" and pair[9] == "too_few"
