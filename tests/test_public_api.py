"""The package's shape: a curated namespace, typed signatures, and imports that flow one way."""

from __future__ import annotations

import ast
import functools
import inspect
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import promptgrid
from promptgrid import errors

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


def _error_classes() -> list[type]:
    return [value for value in vars(errors).values()
            if isinstance(value, type) and value.__module__ == errors.__name__]  # fmt: skip


def test_every_class_of_errors_is_public() -> None:
    # What the API raises (and warns, and the values they carry) is importable from promptgrid.
    missing = {cls.__name__ for cls in _error_classes()} - set(promptgrid.__all__)
    assert not missing, f"add to promptgrid.__all__ (src/promptgrid/__init__.py): {missing}"
    for cls in _error_classes():
        assert getattr(promptgrid, cls.__name__) is cls


def _drawn_tree() -> dict[str, str | None]:
    """Class name -> its parent's name, as the tree in errors.py's docstring draws them."""
    assert errors.__doc__ is not None
    drawn: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column, name) of the branch being drawn
    for line in errors.__doc__.split("::", 1)[1].splitlines()[1:]:
        if line and not line[0].isspace():
            break  # the end of the drawing
        match = re.match(r"([\s│├└─]*)([A-Z]\w+)", line)
        if match is None:
            continue
        column = len(match.group(1))
        while stack and stack[-1][0] >= column:
            stack.pop()
        drawn[match.group(2)] = stack[-1][1] if stack else None
        stack.append((column, match.group(2)))
    return drawn


def test_the_errors_docstring_draws_the_whole_tree() -> None:
    # The docs' errors page is made from this drawing: each error under its own parent.
    drawn = _drawn_tree()
    for cls in _error_classes():
        if issubclass(cls, errors.PromptgridError):
            parent = None if cls is errors.PromptgridError else cls.__bases__[0].__name__
            assert drawn.get(cls.__name__, "missing") == parent, cls.__name__
    assert "PromptgridWarning" in (errors.__doc__ or "")


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
        "merge",
    ],
)
def test_options_are_explicit_keyword_only_and_typed(name: str) -> None:
    signature = inspect.signature(getattr(promptgrid, name))
    positional = 2 if name == "score" else 1  # score(run_or_table, scores=None, *, ...)
    kinds = {p.kind for p in list(signature.parameters.values())[positional:]}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}  # no **options, no positional options
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())
    assert getattr(promptgrid, name).__doc__


@pytest.mark.parametrize("name", ["run", "arun", "plan"])
def test_experiment_methods_spell_the_keywords_of_their_functions(name: str) -> None:
    # Experiment(...).run(max_cost=1) takes what promptgrid.run(experiment, max_cost=1) does:
    # the same names, kinds, defaults and types (no **options for an IDE to guess at).
    method = list(inspect.signature(getattr(promptgrid.Experiment, name)).parameters.values())
    function = list(inspect.signature(getattr(promptgrid, name)).parameters.values())
    assert method[0].name == "self" and method[1:] == function[1:]
    assert inspect.iscoroutinefunction(getattr(promptgrid.Experiment, name)) == (name == "arun")


def test_every_error_names_its_exit_code() -> None:
    # The docs' errors page lists each error with its exit code, read from its docstring.
    for cls in _error_classes():
        if not issubclass(cls, errors.PromptgridError):
            continue
        doc = " ".join((cls.__doc__ or "").split())
        if not issubclass(cls, errors.ProviderError):
            expected = {cls.exit_code}  # raised: the command exits with it
        elif cls.stops_run or cls is errors.BatchUnknown:
            expected = {errors.ExitCode.STOPPED}  # stops the run
        elif cls in (errors.ProviderError, errors.FatalError):
            expected = {errors.ExitCode.ERROR_ROWS, errors.ExitCode.STOPPED}  # either, by kind
        else:
            expected = {errors.ExitCode.ERROR_ROWS}  # its cell's error row
        for code in expected:
            assert f"Exit code {int(code)}" in doc or f"exit code {int(code)}" in doc, cls


#: What the CLI may import of the library: the public API's modules (their public names), the
#: operations layer made for it, and the terminal it prints to.
CLI_MAY_IMPORT = {
    "promptgrid.api": set(promptgrid.__all__),
    "promptgrid.analysis": set(promptgrid.__all__),
    "promptgrid.errors": set(promptgrid.__all__),
    "promptgrid.operations": None,  # its __all__
    "promptgrid.terminal": {"print_frame", "visible"},
}


def test_the_cli_calls_only_the_public_api_and_the_operations_layer() -> None:
    from promptgrid import operations

    allowed = dict(CLI_MAY_IMPORT, **{"promptgrid.operations": set(operations.__all__)})
    tree = ast.parse((SRC / "cli.py").read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or "promptgrid" in (node.module or "")):
            module = "promptgrid." + (node.module or "") if node.level else node.module or ""
            names = {alias.name for alias in node.names}
            found.append(module)
            assert module in allowed, f"cli.py imports {module}: use the API or operations"
            assert names <= allowed[module], f"cli.py imports {names - allowed[module]}"
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("promptgrid") for a in node.names)
    assert "promptgrid.operations" in found  # the check looked at the real imports


def test_what_the_cli_calls_has_an_explicit_signature() -> None:
    # No **options and no untyped parameter in the operations the CLI calls.
    from promptgrid import operations

    for name in operations.__all__:
        value = getattr(operations, name)
        if not inspect.isfunction(value):
            continue
        parameters = inspect.signature(value).parameters.values()
        assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters), name
        assert all(p.annotation is not inspect.Parameter.empty for p in parameters), name
        assert value.__doc__, name


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


@functools.cache
def _nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of the file at ``path``, parsed and walked once per test process (the
    import and private-name checks below read the whole source tree several times)."""
    return tuple(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def _imports(path: Path, *, typing: bool = False) -> set[str]:
    """promptgrid modules ``path`` imports at run time (anywhere in the file, lazy imports
    included; ``if TYPE_CHECKING:`` blocks left out unless ``typing``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = _nodes(path)
    typing_only: set[int] = set()
    for node in nodes if not typing else ():
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in nodes:
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


def _cycle(paths: list[Path], *, typing: bool = False) -> str:
    """An import cycle among the modules of ``paths`` (``a -> b -> a``), or ``""``."""
    files = {_module_name(p): p for p in paths}
    graph = {name: {m for m in _imports(path, typing=typing) if m in files and m != name}
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
    any(visit(n, [], done) for n in sorted(graph))
    return " -> ".join(cycle)


def test_imports_have_no_cycle() -> None:
    assert not _cycle(list(SRC.rglob("*.py")))


def test_imports_have_no_cycle_even_for_types() -> None:
    # The package root imports every public module for the type checker: a module importing
    # the root (for __version__, say) closed a cycle mypy and a reader had to untangle.
    assert not _cycle(list(SRC.rglob("*.py")), typing=True)


def test_the_fault_servers_parts_import_one_way_even_for_types() -> None:
    # The test server's parts meet through Protocols (testing.batch.Answerer), not through
    # each other's classes: no cycle, not even among the imports made for the type checker.
    assert not _cycle(list((SRC / "testing").rglob("*.py")), typing=True)


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


def _private_imports(path: Path, nodes: tuple[ast.AST, ...]) -> list[str]:
    """``import dep._x``, ``from dep._x import y``, ``from dep import _y`` of a third-party
    ``dep``; and ``dep._x`` reached through the name an ``import dep`` bound."""
    found: list[str] = []
    modules: set[str] = set()  # local names bound to a third-party module
    for node in nodes:
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
    for node in nodes:
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root: ast.expr = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def _defined(nodes: tuple[ast.AST, ...]) -> set[str]:
    """Every name ``nodes`` define: functions, classes, variables, attributes, arguments."""
    names: set[str] = set()
    for node in nodes:
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
    trees = {path: _nodes(path) for path in SRC.rglob("*.py")}
    ours = set().union(*(_defined(nodes) for nodes in trees.values())) | PUBLIC_UNDERSCORED
    found: list[str] = []
    for path, nodes in sorted(trees.items()):
        where = path.relative_to(SRC.parent)
        found += _private_imports(where, nodes)
        found += [f"{where}:{node.lineno}: {ast.unparse(node)}" for node in nodes
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
    assert bool(_private_imports(Path("x.py"), tuple(ast.walk(ast.parse(code))))) is flagged


def test_the_docs_exit_code_table_is_the_exit_code_enum() -> None:
    # One table in the docs, one place in the code (errors.ExitCode): a code added to one
    # (merge's 7) must be in the other, with no code documented that the command never returns.
    page = (SRC.parents[1] / "docs" / "errors.md").read_text(encoding="utf-8")
    section = page.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {int(code) for row in rows for code in row.replace("`", "").split("/")}
    assert documented == {int(code) for code in promptgrid.ExitCode}
