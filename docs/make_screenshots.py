"""Make the README's screenshots from the offline example experiment.

    .venv/bin/python docs/make_screenshots.py

Needs LibreOffice (`soffice`), poppler (`pdftoppm`), Chromium (`/usr/bin/chromium`) and
Playwright (`pip install -e ".[test]"`); the Carlito font (`fonts-crosextra-carlito`) makes
LibreOffice lay Calibri out as Excel does. Writes, next to this file:

- xlsx-results.png, xlsx-compare.png, xlsx-summary.png, xlsx-run.png: the first printed page
  of each sheet of the scored capitals run's `results.xlsx` (LibreOffice -> PDF -> PNG): the
  scores beside the answers, the verdict on the summary sheet;
- report.png: the HTML report as it opens, on the verdict (the capitals run);
- report-answers.png: its side-by-side view, each answer with its score marks;
- report-runs.png: two runs compared call by call, changed rows only, with the word diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import promptgrid

DOCS = Path(__file__).resolve().parent
EXPERIMENT = Path("experiments") / "animal_names.yaml"  # relative: the run sheet shows it
SCORED = Path("experiments") / "capitals.yaml"  # scored: the verdict and the marks
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
#: The part of each sheet's first page to keep, in pixels at 110 dpi: (x, y, width, height).
CROPS = {
    "results": (40, 40, 1130, 330),
    "compare": (40, 40, 1130, 220),
    "summary": (40, 40, 1130, 560),
    "run": (40, 40, 1130, 780),
}


def sheet_pngs(book: Path, work: Path) -> None:
    """One PNG per sheet: a copy of the workbook holding that sheet alone, printed to PDF."""
    from openpyxl import load_workbook

    for name, (x, y, width, height) in CROPS.items():
        copy = load_workbook(book)
        for other in [s for s in copy.sheetnames if s != name]:
            del copy[other]
        single = work / f"{name}.xlsx"
        copy.save(single)
        subprocess.run(
            ["soffice", f"-env:UserInstallation=file://{work / 'profile'}", "--headless",
             "--convert-to", "pdf", "--outdir", str(work), str(single)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        subprocess.run(
            ["pdftoppm", "-png", "-singlefile", "-r", "110", "-f", "1", "-l", "1",
             "-x", str(x), "-y", str(y), "-W", str(width), "-H", str(height),
             str(work / f"{name}.pdf"), str(DOCS / f"xlsx-{name}")],
            check=True,
        )  # fmt: skip
        print(DOCS / f"xlsx-{name}.png")


def report_pngs(
    scored: object, first: object, second: object, work: Path, results: Path
) -> None:
    from playwright.sync_api import sync_playwright

    single = promptgrid.report(scored, work / "report.html", results_dir=results)  # type: ignore[arg-type]
    both = promptgrid.report([first, second], work / "runs.html", results_dir=results)  # type: ignore[list-item]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 760})
        page.goto(single.as_uri())  # it opens on the verdict
        page.screenshot(path=str(DOCS / "report.png"))
        page.click('#views button[data-view="grid"]')
        page.screenshot(path=str(DOCS / "report-answers.png"))
        page.goto(both.as_uri())
        page.click('#views button[data-view="grid"]')  # it opens on the verdict between them
        page.check("#changed-only")
        page.check("#diff")
        page.screenshot(path=str(DOCS / "report-runs.png"))
        browser.close()
    for name in ("report", "report-answers", "report-runs"):
        print(DOCS / f"{name}.png")


def main() -> None:
    for tool in ("soffice", "pdftoppm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install libreoffice-calc poppler-utils")
    os.chdir(DOCS.parent)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = work / "results"
        scored = promptgrid.run(SCORED, results_dir=results, formats="xlsx", progress=False)
        first = promptgrid.run(EXPERIMENT, results_dir=results, progress=False)
        exp = promptgrid.Experiment.from_yaml(EXPERIMENT).to_dict()
        exp["prompts"]["terse"] = "Name five {{ animal }}s, comma separated, no other words."
        second = promptgrid.Experiment.from_dict(exp, base_dir=EXPERIMENT.parent)
        other = promptgrid.run(second, results_dir=results, progress=False)
        book = results / "capitals" / str(scored["run_id"][0]) / "results.xlsx"
        sheet_pngs(book, work)
        report_pngs(scored, first, other, work, results)


if __name__ == "__main__":
    main()
