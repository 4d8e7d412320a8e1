"""The package's shape: a curated namespace, typed signatures, and imports that flow one way."""

from __future__ import annotations

import ast
import inspect
import pkgutil
from pathlib import Path

import pytest

import promptgrid

SRC = Path(promptgrid.__file__).parent


def test_all_is_sorted_complete_and_importable() -> None:
    assert promptgrid.__all__ == sorted(promptgrid.__all__)
    for name in promptgrid.__all__:
        assert getattr(promptgrid, name) is not None, name
    assert set(dir(promptgrid)) == {*promptgrid.__all__, "__version__"}


def test_no_public_name_is_also_a_submodule() -> None:
    submodules = {m.name for m in pkgutil.iter_modules([str(SRC)])}
    assert not submodules & set(promptgrid.__all__)


def test_public_functions_stay_callable_after_a_run(animals: Path, tmp_path: Path) -> None:
    # Importing a submodule binds its name on the package: a submodule named like a function
    # would replace the function (promptgrid.retry once did).
    df = promptgrid.run(animals, results_dir=tmp_path, progress=False)
    promptgrid.plan(animals, results_dir=tmp_path)
    promptgrid.retry(df["run_id"][0], results_dir=tmp_path, progress=False)
    promptgrid.score(df, {"said": {"contains": "echo"}}, results_dir=tmp_path, progress=False)
    names = ("run", "arun", "plan", "retry", "load", "compare", "varying", "summary", "score")
    for name in (*names, "contrast", "decide", "report"):
        assert inspect.isfunction(getattr(promptgrid, name)), name


@pytest.mark.parametrize(
    "name",
    [
        "run",
        "arun",
        "plan",
        "retry",
        "load",
        "collect",
        "batch_status",
        "cancel_batches",
        "score",
        "contrast",
        "decide",
        "replay",
    ],
)
def test_options_are_explicit_keyword_only_and_typed(name: str) -> None:
    signature = inspect.signature(getattr(promptgrid, name))
    positional = 2 if name == "score" else 1  # score(run_or_table, scores=None, *, ...)
    kinds = {p.kind for p in list(signature.parameters.values())[positional:]}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}  # no **options, no positional options
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())
    assert getattr(promptgrid, name).__doc__


def test_run_accepts_a_mapping(tmp_path: Path) -> None:
    df = promptgrid.run(
        {"name": "m", "provider": "echo", "prompts": {"p": "hi"}, "params": {"model": "x"}},
        results_dir=tmp_path,
        progress=False,
    )
    assert list(df["response"]) == ["echo: hi"]


# ------------------------------------------------------------------ imports flow one way


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """promptgrid modules ``path`` imports at run time (anywhere in the file, lazy imports
    included; ``if TYPE_CHECKING:`` blocks left out)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            if base.startswith("promptgrid"):
                names = {f"{base}.{alias.name}" for alias in node.names}
                found.update(names)
                # ``from . import module`` imports the module, not its package's names
                if node.module or not all(_is_module(n) for n in names):
                    found.add(base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("promptgrid"))
    return found


def test_imports_have_no_cycle() -> None:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in files and m != name}
             for name, path in files.items()}  # fmt: skip
    cycle: list[str] = []

    def visit(node: str, stack: list[str], done: set[str]) -> bool:
        if node in stack:
            cycle.extend([*stack[stack.index(node) :], node])
            return True
        if node in done:
            return False
        stack.append(node)
        found = any(visit(nxt, stack, done) for nxt in sorted(graph[node]))
        stack.pop()
        done.add(node)
        return found

    done: set[str] = set()
    assert not any(visit(n, [], done) for n in sorted(graph)), " -> ".join(cycle)


def test_spec_imports_nothing_from_run_time() -> None:
    run_time = ("config", "grid", "engine", "store", "runner", "api", "providers", "exports")
    for path in (SRC / "spec").rglob("*.py"):
        for module in _imports(path):
            top = module.split(".")[1] if module.count(".") else ""
            assert top not in run_time, (path.name, module)  # promptgrid.apis is not .api
