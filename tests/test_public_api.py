"""The package's shape: a curated namespace, typed signatures, and imports that flow one way."""

from __future__ import annotations

import ast
import inspect
import pkgutil
import sys
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


@pytest.mark.slow
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


# ------------------------------------------------------------- dependencies' public APIs only

#: Names with a leading underscore that are public API: namedtuple's methods, os._exit, and
#: the request id the openai SDK documents on every object it returns.
PUBLIC_UNDERSCORED = {
    "_asdict", "_field_defaults", "_fields", "_make", "_replace", "_request_id",
    "_exit",  # os._exit: documented, the way a child process ends without running cleanup
}  # fmt: skip


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _third_party(module: str) -> bool:
    top = module.partition(".")[0]
    return top != "promptgrid" and top not in sys.stdlib_module_names


def _private_imports(path: Path, tree: ast.Module) -> list[str]:
    """``import dep._x``, ``from dep._x import y``, ``from dep import _y`` of a third-party
    ``dep``; and ``dep._x`` reached through the name an ``import dep`` bound."""
    found: list[str] = []
    modules: set[str] = set()  # local names bound to a third-party module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _third_party(alias.name):
                    modules.add(alias.asname or alias.name.partition(".")[0])
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{path}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and _third_party(node.module):
            names = [a.name for a in node.names]
            if not node.level and any(_private(p) for p in [*node.module.split("."), *names]):
                found.append(f"{path}:{node.lineno}: from {node.module} import {', '.join(names)}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root: ast.expr = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def _defined(tree: ast.Module) -> set[str]:
    """Every name ``tree`` defines: functions, classes, variables, attributes, arguments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.rpartition(".")[2])
    return names


def test_src_uses_no_private_name_of_a_dependency() -> None:
    """A dependency's ``_private`` modules and attributes may change in any release, and no
    version floor or type checker guards them: promptgrid uses public, documented APIs only.

    Flagged: a private module or name imported from a third-party package (anything not
    promptgrid and not the standard library); a private attribute reached through such a
    package's module; and ``obj._name`` where ``_name`` is defined nowhere in promptgrid, so
    ``obj`` is someone else's object.
    """
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in SRC.rglob("*.py")}
    ours = set().union(*(_defined(tree) for tree in trees.values())) | PUBLIC_UNDERSCORED
    found: list[str] = []
    for path, tree in sorted(trees.items()):
        where = path.relative_to(SRC.parent)
        found += _private_imports(where, tree)
        found += [f"{where}:{node.lineno}: {ast.unparse(node)}" for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and _private(node.attr)
                  and node.attr not in ours]  # fmt: skip
    assert not found, (
        "private names of dependencies (they may change in any release; use the library's "
        "public, documented API instead):\n" + "\n".join(sorted(set(found)))
    )


@pytest.mark.parametrize(
    ("code", "flagged"),
    [
        pytest.param("from openai._models import construct_type", True, id="private-module"),
        pytest.param("from openpyxl.worksheet import _writer", True, id="private-name"),
        pytest.param("import pandas._libs.lib", True, id="import-private-module"),
        pytest.param("import openai\nopenai._models.construct_type", True, id="through-module"),
        pytest.param("import xlsxwriter as x\nx.utility._x", True, id="through-alias"),
        pytest.param("from openai.types.chat import ChatCompletion", False, id="public"),
        pytest.param("from concurrent.futures import _base", False, id="standard-library"),
        pytest.param("from ._atomic import temp_path", False, id="promptgrid-relative"),
        pytest.param("import openai\nopenai.__version__", False, id="dunder"),
    ],
)
def test_the_private_name_check_catches_what_it_says(code: str, flagged: bool) -> None:
    assert bool(_private_imports(Path("x.py"), ast.parse(code))) is flagged
