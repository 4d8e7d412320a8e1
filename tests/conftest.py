"""Shared fixtures: experiment files written into a temporary folder; the number of workers."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ANIMALS = """\
name: animals
provider: echo
prompts:
  plain:
    - {role: system, content: You are a helpful assistant.}
    - {role: user, content: "Please give me five {{ animal }} names"}
  terse: "List five {{ animal }} names."
vars:
  animal: [dog, cat, horse]
params:
  model: gpt-4o-mini
  temperature: [0.0, 1.0]
  max_tokens: 50
"""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers a core. Most of the suite's time is spent waiting on child
    processes and loopback servers; on 2 busy cores, 4 workers took the suite from 178 s to
    157 s (100 s either way on idle cores)."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a YAML experiment (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def animals(write_yaml: Callable[[str, str], Path]) -> Path:
    """The animal-names experiment on the echo provider (12 cells)."""
    return write_yaml(ANIMALS, "animals.yaml")
