"""The HTML report: a self-contained file, and its behaviour in a real headless Chromium."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import promptgrid
from promptgrid.exports import formats_present

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ANIMALS: dict[str, Any] = {
    "name": "animals",
    "provider": "echo",
    "prompts": {
        "plain": "Please give me five {{ animal }} names",
        "terse": "List five {{ animal }} names.",
    },
    "vars": {"animal": ["dog", "cat", "horse"]},
    "params": {"model": "gpt-4o-mini", "temperature": [0.0, 1.0]},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def first(results: Path) -> pd.DataFrame:
    """12 calls: 2 prompts × 3 animals × 2 temperatures, with report.html written at run time."""
    return promptgrid.run(ANIMALS, results_dir=results, formats="html", progress=False)


@pytest.fixture(scope="module")
def second(results: Path) -> pd.DataFrame:
    """The same experiment with the terse prompt reworded: its 6 answers change."""
    prompts = {**ANIMALS["prompts"], "terse": "Name five {{ animal }}s, one per line."}
    return promptgrid.run({**ANIMALS, "prompts": prompts}, results_dir=results, progress=False)


def embedded(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="promptgrid-data">(.*?)</script>',
                      text, re.S)  # fmt: skip
    assert match
    data: dict[str, Any] = json.loads(match.group(1))
    return data


# ---------------------------------------------------------------------------- the file


def test_html_format_writes_report_html_in_the_run_folder(
    first: pd.DataFrame, results: Path
) -> None:
    folder = results / "animals" / str(first["run_id"][0])
    assert (folder / "report.html").is_file() and formats_present(folder) == ("html",)
    data = embedded(folder / "report.html")
    assert data["mode"] == "grid" and data["filters"] == ["prompt", "animal", "temperature"]
    assert data["grid"]["rowNames"] == ["animal"]
    assert data["grid"]["colNames"] == ["prompt", "temperature"]
    assert data["grid"]["rows"] == [["dog"], ["cat"], ["horse"]] and len(data["grid"]["cols"]) == 4
    assert data["fixed"] == {"model": "gpt-4o-mini"}
    assert data["runs"][0]["experiment"] == "animals" and "prompts:" in data["runs"][0]["spec"]
    assert [c["label"] for c in data["charts"]] == ["Mean latency", "Mean tokens per call",
                                                    "Cost", "Error rate"]  # fmt: skip


def test_report_is_self_contained_and_answers_cannot_break_out(tmp_path: Path) -> None:
    hostile = "</script><script>alert(1)</script> <img src=x onerror=alert(2)>"
    df = promptgrid.run({**ANIMALS, "name": "hostile", "vars": {"animal": [hostile]}},
                        results_dir=tmp_path, progress=False)  # fmt: skip
    path = promptgrid.report(df, tmp_path / "r.html", results_dir=tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.count("<script") == 2 and text.count("</script>") == 2  # the data and the page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched
    assert '<link rel="stylesheet"' not in text
    assert embedded(path)["calls"]["response"][0] == f"echo: Please give me five {hostile} names"


def test_report_of_a_table_without_its_store_has_no_settings(
    first: pd.DataFrame, tmp_path: Path
) -> None:
    path = promptgrid.report(first, tmp_path / "r.html", results_dir=tmp_path / "nowhere")
    run = embedded(path)["runs"][0]
    assert "settings" not in run and dict((k, v) for k, v, _ in run["totals"])["errors"] == 0


def test_two_runs_are_aligned_run_against_run(
    first: pd.DataFrame, second: pd.DataFrame, tmp_path: Path, results: Path
) -> None:
    path = promptgrid.report([first, second], tmp_path / "ab.html", results_dir=results)
    data = embedded(path)
    assert data["mode"] == "runs" and data["filters"][0] == "run"
    assert data["grid"]["rowNames"] == ["prompt", "animal", "temperature"]
    assert len(data["grid"]["rows"]) == 12 and len(data["grid"]["cols"]) == 2
    assert data["title"] == "animals: run against run" and len(data["runs"]) == 2
    both = pd.concat([first, second])  # one table holding two runs is split the same way
    assert embedded(promptgrid.report(both, tmp_path / "c.html"))["grid"] == data["grid"]


def test_report_command_writes_the_page(first: pd.DataFrame, results: Path) -> None:
    from click.testing import CliRunner

    from promptgrid.cli import cli

    run_id = str(first["run_id"][0])
    out = results / "cli.html"
    done = CliRunner().invoke(
        cli, ["report", run_id, "--results-dir", str(results), "-o", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip() == str(out) and embedded(out)["runs"][0]["id"] == run_id


# ---------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: apt-get install chromium to run the browser tests")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed: pip install -e '.[test]'"
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A report opened in the browser, with every console error and page error collected."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())

    def row_labels(self) -> list[str]:
        labels: list[str] = self.page.eval_on_selector_all(
            "#grid tbody tr", "rows => rows.map(r => r.querySelector('th').textContent)"
        )
        return labels

    def count(self, selector: str) -> int:
        return int(self.page.locator(selector).count())


@pytest.mark.slow
def test_page_loads_clean_and_filters_hide_the_right_rows(
    browser: Any, first: pd.DataFrame, tmp_path: Path
) -> None:
    view = Page(browser, promptgrid.report(first, tmp_path / "r.html"))
    assert view.row_labels() == ["dog", "cat", "horse"]
    assert view.count("#grid tbody td") == 12
    view.page.click('input[data-filter="animal"][value="0"]')  # untick dog
    assert view.row_labels() == ["cat", "horse"]
    view.page.click('input[data-filter="prompt"][value="1"]')  # untick terse: its columns go
    assert view.count("#grid thead th[data-col]") == 3  # "plain" over its two temperatures
    assert view.count("#grid tbody td") == 4
    assert view.page.text_content("#count") == "2 of 3 rows"
    assert view.errors == []


@pytest.mark.slow
def test_search_finds_an_answer_and_marks_it(
    browser: Any, first: pd.DataFrame, tmp_path: Path
) -> None:
    view = Page(browser, promptgrid.report(first, tmp_path / "r.html"))
    view.page.fill("#search", "HORSE names")
    view.page.press("#search", "Enter")
    assert view.row_labels() == ["horse"]
    assert set(view.page.eval_on_selector_all("mark", "m => m.map(x => x.textContent)")) == {
        "horse names"
    }
    view.page.click('#views button[data-view="long"]')  # the long view searches calls
    assert view.count("#long tbody tr") == 4
    view.page.fill("#search", "no such words")
    view.page.press("#search", "Enter")
    assert view.count("#long tbody tr") == 0 and view.errors == []


@pytest.mark.slow
def test_run_against_run_changed_only_and_word_diff(
    browser: Any, first: pd.DataFrame, second: pd.DataFrame, tmp_path: Path
) -> None:
    view = Page(browser, promptgrid.report([first, second], tmp_path / "ab.html"))
    assert len(view.row_labels()) == 12
    view.page.check("#changed-only")
    rows = view.page.eval_on_selector_all(
        "#grid tbody tr",
        "rows => rows.map(r => [...r.querySelectorAll('th')].map(t => t.textContent))",
    )
    assert len(rows) == 6 and {r[0] for r in rows} == {"terse"}
    view.page.check("#diff")
    inserted = view.page.eval_on_selector_all("#grid ins", "xs => xs.map(x => x.textContent)")
    assert "Name" in inserted and view.count("#grid del") > 0
    assert view.errors == []


@pytest.mark.slow
def test_views_render_and_the_screenshot_is_not_blank(
    browser: Any, first: pd.DataFrame, tmp_path: Path, results: Path
) -> None:
    view = Page(browser, promptgrid.report(first, tmp_path / "r.html", results_dir=results))
    view.page.click('#views button[data-view="charts"]')
    assert view.count("#charts-view svg") == 4
    view.page.click('#views button[data-view="settings"]')
    assert "prompts:" in (view.page.text_content("#settings-view pre") or "")
    assert view.page.is_hidden("#sidebar")  # filters belong to the two table views
    view.page.click('#views button[data-view="grid"]')
    view.page.check("#markdown")
    assert view.count("#grid .answer.md") == 12
    png = view.page.screenshot()
    variance = view.page.evaluate(
        """async (src) => {
            const img = new Image(); img.src = src; await img.decode();
            const canvas = document.createElement("canvas");
            canvas.width = img.width; canvas.height = img.height;
            const g = canvas.getContext("2d"); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, img.width, img.height).data;
            let sum = 0, squares = 0;
            for (let i = 0; i < d.length; i += 4) {
                const v = (d[i] + d[i + 1] + d[i + 2]) / 3; sum += v; squares += v * v;
            }
            const n = d.length / 4, mean = sum / n;
            return squares / n - mean * mean;
        }""",
        "data:image/png;base64," + base64.b64encode(png).decode(),
    )
    assert variance > 100  # a blank (one-colour) page is 0
    assert view.errors == []


@pytest.mark.slow
def test_pass_rates_of_scores_are_charted_with_their_interval(tmp_path: Path) -> None:
    from promptgrid.exports.report.data import build

    exp = {
        "provider": "echo",
        "prompts": {"a": "say {{ x }}", "b": "no"},
        "vars": {"x": ["yes", "maybe"]},
        "params": {"model": "m"},
        "scores": {"said_yes": {"contains": "yes"}},
    }
    df = promptgrid.run(exp, results_dir=tmp_path, progress=False)
    charts = {c["label"]: c for c in build([df], {})["charts"]}
    chart = charts["Pass rate of said_yes (95% interval)"]
    assert chart["kind"] == "rate"
    (a_name, a_rate, a_low, a_high), (b_name, b_rate, *_) = chart["bars"]
    assert (a_name, b_name) == ("a · m", "b · m")
    assert (a_rate, b_rate) == (0.5, 0.0) and 0 < a_low < a_rate < a_high < 1


def test_a_report_into_a_read_only_folder_exits_5_saying_what_to_do(
    first: pd.DataFrame, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno
    from unittest import mock

    from promptgrid.cli import main

    denied = PermissionError(errno.EACCES, "Permission denied")
    out = results / "locked" / "page.html"
    with mock.patch.object(Path, "write_text", side_effect=denied), \
            pytest.raises(SystemExit) as done:  # fmt: skip
        main(["report", str(first["run_id"][0]), "--results-dir", str(results), "-o", str(out)])
    err = capsys.readouterr().err
    assert done.value.code == 5 and "Traceback" not in err, err
    assert f"error: {out} cannot be written" in err and "make it and its folder writable" in err
    assert not list(out.parent.glob("*.tmp"))
