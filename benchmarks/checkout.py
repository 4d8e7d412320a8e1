"""The ``src`` of another commit, for benchmarks that time this code against a baseline commit
in the same run (put the returned folder first on ``PYTHONPATH``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def source_at(commit: str, folder: Path) -> Path:
    """Extract ``commit``'s ``src`` into ``folder`` (made if missing) with ``git archive``;
    the extracted ``src`` folder."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"
