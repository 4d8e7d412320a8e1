"""Shared fixtures (experiment files written into a temporary folder), and how the suite runs.

- **Parallel by default**: when pytest-xdist is loaded and none of ``-n``, ``--dist``, ``--tx``
  is given, :func:`pytest_cmdline_main` asks for ``-n auto`` (two workers a core). It is not in
  ``addopts``, so ``pytest -p no:xdist`` (no xdist at all) and ``pytest -n 0`` (one process)
  both work.
- **``slow`` is enforced**: a test that starts a process (``subprocess``, ``asyncio``'s
  subprocesses, ``multiprocessing``: a CLI run, a scoring worker, a kernel, a browser) or a
  :class:`~promptgrid.testing.FaultServer` must be marked ``@pytest.mark.slow``; unmarked, it
  fails at that call (:func:`only_slow_tests_start_processes`), so ``-m "not slow"`` stays the
  fast inner loop. The openai SDK's first request asks ``platform.platform()``, which runs
  ``uname -p`` once per process: the suite asks it first, at import, so which test happens to
  be the process's first request does not decide whether that test "starts a process".
- **Bytecode caches are written** even where ``PYTHONDONTWRITEBYTECODE`` is set (container
  images often set it): without them every run, and every xdist worker of it, compiles the
  package again and pytest rewrites the asserts of every test module and of hypothesis (its
  plugin's package): about 20 CPU seconds of collection a worker instead of 10.
"""

from __future__ import annotations

import multiprocessing.process
import os
import platform
import subprocess
import sys
import textwrap
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.dont_write_bytecode = False  # before promptgrid and the test modules are imported
platform.platform()  # cached for the process: the SDK's User-Agent probe (see the docstring)

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


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    """``-n auto`` unless the command line chose otherwise (a wrapper: it runs before
    xdist's own ``pytest_cmdline_main`` reads the option). xdist's workers (``workerinput``)
    run this hook too, and must stay single."""
    chosen = (config.getoption(name, None) for name in ("numprocesses", "tx"))
    if (
        config.pluginmanager.hasplugin("xdist")
        and not hasattr(config, "workerinput")
        and config.getoption("dist", "no") == "no"
        and not any(value is not None and value != [] for value in chosen)
    ):
        config.option.numprocesses = "auto"
    return (yield)


@pytest.hookimpl(optionalhook=True)  # with ``-p no:xdist`` the hook does not exist
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers a core. Most of the suite's time is spent waiting on child
    processes and loopback servers; on 2 busy cores, 4 workers took the suite from 178 s to
    157 s (100 s either way on idle cores). Without the slow tests (``-m "not slow"``) nothing
    waits: every test is CPU, and each worker pays the whole collection again (about 10 CPU
    seconds of imports), so one worker a core (2 workers: 105 CPU s for the fast subset; 4:
    128 CPU s)."""
    cores = os.cpu_count() or 1
    return cores if "not slow" in (config.option.markexpr or "") else 2 * cores


@pytest.fixture(autouse=True)
def only_slow_tests_start_processes(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fail a test that is not marked ``slow`` at the moment it starts a process or a server."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            pytest.fail(f"{request.node.nodeid} starts {what}: mark it @pytest.mark.slow")

        return refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("a process"))
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse("a process"))
    from promptgrid.testing import FaultServer  # after the line above that enables caches

    monkeypatch.setattr(FaultServer, "start", refuse("a FaultServer"))
    yield


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
