"""The HTML report: a self-contained file, and its behaviour in a real headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
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

    def show(self, view: str) -> None:
        """Switch to a view (the page opens on the summary)."""
        self.page.click(f'#views button[data-view="{view}"]')

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
    view.show("grid")
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
    view.show("grid")
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
    view.show("grid")
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
    view.show("grid")
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
    assert (a_name, b_name) == ("a", "b")  # by what varies: the model is fixed
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


# ---------------------------------------------------------------------------- the verdict

SCORED: dict[str, Any] = {
    **ANIMALS,
    "name": "scored",
    "scores": {"polite": {"icontains": "please"}, "short": {"max_length": 40}},
}
WEATHER = json.dumps([{"id": "c1", "type": "function", "name": "get_weather",
                       "arguments": '{"city": "Paris", "days": 3}'}])  # fmt: skip


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """12 scored calls (plain is polite, terse is not), the plain prompt priced higher, and
    the terse prompt's cat calls answered by a tool call. (Its own store: cached calls say
    nothing of a price.)"""
    df = promptgrid.run(SCORED, results_dir=tmp_path_factory.mktemp("scored"), progress=False)
    df["cost_usd"] = [0.002 if p == "plain" else 0.0004 for p in df["prompt"]]
    tool = (df["prompt"] == "terse") & (df["animal"] == "cat")
    df.loc[tool, "tool_calls"] = WEATHER
    df.loc[tool, "response"] = None
    return df


def test_the_report_carries_the_decision_every_view_prints(scored: pd.DataFrame) -> None:
    from promptgrid.exports.report.data import build

    data = build([scored], {})
    decision = promptgrid.decide(scored)
    assert data["decision"]["verdicts"] == decision.verdicts()
    assert data["decision"]["factors"] == ["prompt", "animal", "temperature"]
    [pair] = [p for p in data["decision"]["pairs"]
              if p["factor"] == "prompt" and p["score"] == "score_polite"]  # fmt: skip
    assert pair["verdict"] == "plain beats terse: +100 points, p = 0.031"
    assert pair["p_value_text"] == "0.031"
    front = {(lv["level"], lv["pareto"]) for lv in data["decision"]["levels"]
             if lv["factor"] == "prompt" and lv["score"] == "score_polite"}  # fmt: skip
    assert front == {("plain", True), ("terse", True)}  # better, or cheaper
    heat = data["decision"]["heatmap"]
    assert (heat["x"], heat["y"], heat["x_levels"]) == ("prompt", "animal", ["plain", "terse"])
    assert heat["mean"][0] == [1.0, 1.0, 1.0] and heat["mean"][1] == [0.0, 0.0, 0.0]


@pytest.mark.slow
def test_the_report_command_decides_without_importing_scipy_stats(tmp_path: Path) -> None:
    # Importing scipy.stats takes 1.5-3 s, the report's whole budget (benchmarks/README.md,
    # issue 21): its intervals and exact tests come from scipy.special.
    df = promptgrid.run(SCORED, results_dir=tmp_path, progress=False)
    out = tmp_path / "page.html"
    code = (
        "import sys; from promptgrid.cli import main\n"
        f"try: main(['report', {str(df['run_id'][0])!r}, '--results-dir', {str(tmp_path)!r},"
        f" '-o', {str(out)!r}])\n"
        "except SystemExit as done: assert not done.code, done.code\n"
        "print([m for m in ('scipy.stats', 'scipy.optimize') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.stdout.strip().endswith("[]"), done.stdout + done.stderr
    pairs = embedded(out)["decision"]["pairs"]
    assert "plain beats terse: +100 points, p = 0.031" in [p["verdict"] for p in pairs]


def test_each_call_carries_its_scores_and_tool_calls_and_they_filter(
    scored: pd.DataFrame,
) -> None:
    from promptgrid.exports.report.data import build

    data = build([scored], {})
    calls, levels = data["calls"], data["levels"]
    polite = next(s for s in data["scores"] if s["name"] == "polite")
    assert polite["kind"] == "bool" and polite["values"] == [p == "plain" for p in scored["prompt"]]
    tools = [t for t in calls["tools"] if t is not None]
    assert tools == ['→ get_weather(city="Paris", days=3)'] * 2
    assert [f["key"] for f in data["resultFilters"]] == ["score_polite", "tool"]
    assert levels["score_polite"] == ["pass", "fail", "no score"]
    assert levels["tool"] == ["(no tool call)", "get_weather"]
    assert sorted(set(calls["tool"])) == [0, 1] and calls["tool"].count(1) == 2


def test_run_against_run_decides_on_the_run(
    first: pd.DataFrame, second: pd.DataFrame, tmp_path: Path
) -> None:
    from promptgrid.exports.report.data import build

    a = first.assign(score_long=first["response"].str.len() > 30)
    b = second.assign(score_long=second["response"].str.len() > 30)
    data = build([a, b], {})
    decision = data["decision"]
    assert decision["factors"][0] == "run_id"
    ids = [str(a["run_id"][0]), str(b["run_id"][0])]
    assert [lv["level"] for lv in decision["levels"] if lv["factor"] == "run_id"] == ids
    together = promptgrid.decide(pd.concat([a, b]), factors=["run_id"])
    assert decision["verdicts"][: len(together.verdicts())] == together.verdicts()


@pytest.mark.slow
def test_the_report_opens_on_the_verdict(
    browser: Any, scored: pd.DataFrame, tmp_path: Path
) -> None:
    view = Page(browser, promptgrid.report(scored, tmp_path / "r.html"))
    page = view.page
    assert page.is_visible("#summary-view") and page.is_hidden("#grid-view")
    verdict = page.locator(".verdicts li", has_text="polite by prompt")
    assert verdict.text_content() == "polite by prompt: plain beats terse: +100 points, p = 0.031"
    box = verdict.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 900  # on the first screen
    # a forest plot per factor and score, each level a point with its interval
    assert view.count(".factor") == 3 and view.count("svg.forest") == 6
    forest = '.factor[data-factor="prompt"] .block[data-score="score_polite"]'
    assert view.count(f"{forest} svg.forest circle.point") == 2
    assert view.count(f"{forest} svg.forest circle.point.best") == 1
    assert "p (Holm)" in (page.text_content(f"{forest} table.pairs") or "")
    # cost against quality: both prompts on the front (one better, one cheaper), joined
    assert view.count(f"{forest} svg.cost circle.point.front") == 2
    assert view.count(f"{forest} svg.cost polyline.front") == 1
    heat = page.eval_on_selector_all(".heatmap tbody tr", "rows => rows.map(r => r.textContent)")
    assert heat == ["plain100% (2)100% (2)100% (2)", "terse0% (2)0% (2)0% (2)"]
    assert view.errors == []


@pytest.mark.slow
def test_answers_show_score_marks_and_tool_calls_and_filters_work(
    browser: Any, scored: pd.DataFrame, tmp_path: Path
) -> None:
    view = Page(browser, promptgrid.report(scored, tmp_path / "r.html"))
    page = view.page
    view.show("grid")
    assert view.count("#grid .mark.pass") == 6 + 12  # polite (plain), short (every answer)
    assert view.count("#grid .mark.fail") == 6
    fail = page.text_content('#grid td[data-col="2"] .mark.fail') or ""
    assert fail == "✗ polite"
    tools = page.eval_on_selector_all("#grid .tools", "xs => xs.map(x => x.textContent)")
    assert tools == ['tool call→ get_weather(city="Paris", days=3)'] * 2
    # only failures: every row has a failing (terse) call, and the long view shows just those
    page.check("#failed-only")
    assert len(view.row_labels()) == 3
    view.show("long")
    assert view.count("#long tbody tr") == 6
    page.uncheck("#failed-only")
    # by score: untick "pass" of polite, then by tool: only the calls that called get_weather
    page.click('input[data-filter="score_polite"][value="0"]')
    assert view.count("#long tbody tr") == 6 and view.count("#long .mark.pass") == 6  # short
    page.click('input[data-filter="tool"][value="0"]')
    assert view.count("#long tbody tr") == 2 and view.count("#long .tools") == 2
    page.fill("#search", "get_weather")  # a tool call is searched like an answer
    page.press("#search", "Enter")
    assert view.count("#long tbody tr") == 2
    assert view.errors == []


@pytest.mark.slow
def test_run_against_run_opens_on_the_verdict_between_the_runs(
    browser: Any, first: pd.DataFrame, second: pd.DataFrame, tmp_path: Path
) -> None:
    a = first.assign(score_long=first["response"].str.len() > 30)
    b = second.assign(score_long=second["response"].str.len() > 30)
    view = Page(browser, promptgrid.report([a, b], tmp_path / "ab.html"))
    first_line = view.page.text_content(".verdicts li") or ""
    assert first_line.startswith("long by run: ")
    assert view.count('.factor[data-factor="run_id"] svg.forest circle.point') == 2
    assert view.errors == []


def test_a_numeric_score_filters_by_value_or_by_quartile(first: pd.DataFrame) -> None:
    from promptgrid.exports.report.data import build

    few = first.assign(score_stars=[1, 2, 3] * 4)
    data = build([few], {})
    assert data["levels"]["score_stars"] == ["1", "2", "3", "no score"]
    many = first.assign(score_length=[float(n) for n in range(12)])
    many.loc[0, "score_length"] = None
    levels = build([many], {})["levels"]["score_length"]
    assert levels == [f"{n}.0" for n in range(1, 12)] + ["no score"]  # 11 values: one level each
    spread = first.assign(score_length=[1.5 * n for n in range(12)])
    spread = pd.concat([spread, spread.assign(score_length=spread["score_length"] + 0.25)])
    data = build([spread], {})
    assert data["levels"]["score_length"] == [
        "≤ 4.1875", "4.1875 – 8.375", "8.375 – 12.5625", "12.5625 – 16.75", "no score"
    ]  # fmt: skip
    codes = data["calls"]["score_length"]
    assert [codes.count(k) for k in range(5)] == [6, 6, 6, 6, 0]  # a quarter of the calls each


@pytest.mark.slow
def test_a_raced_runs_report_draws_its_race(browser: Any, tmp_path: Path) -> None:
    # The race tab's script runs after the page's own (it reads its constants): a report of a
    # raced run opens clean on the verdict, and its Race tab draws a lane per variant.
    source = Path(__file__).parents[1] / "experiments"
    df = promptgrid.run(source / "racing.yaml", results_dir=tmp_path / "r", progress=False)
    view = Page(browser, promptgrid.report(df, tmp_path / "race.html", results_dir=tmp_path / "r"))
    page = view.page
    assert page.is_visible("#summary-view") and page.is_visible("#race-tab")
    view.show("race")
    assert page.is_visible("#race-view") and "winner" in (page.text_content(".race-summary") or "")
    assert view.count(".race-chart svg .lane") == 5  # the five prompts of racing.yaml
    assert view.errors == []
