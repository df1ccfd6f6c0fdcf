"""The house rules of docs/architecture.md, checked on the source (its syntax trees, nothing imported):

- no import cycle among the package's modules, imports inside functions included;
- no private name (``_x``) imported from another module of the package;
- no module over MAX_MODULE_LINES lines, no function over MAX_FUNCTION_LINES lines, except the
  measured kernels listed in KERNELS (each with the reason it stays whole).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("audit", "probes", "dashboard")
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100

# Functions allowed to be longer than MAX_FUNCTION_LINES: "module:qualified.name" -> why.
KERNELS: dict[str, str] = {
    "audit.attention:chunked_attention": (
        "the one loop over query blocks that computes a layer's output and its statistics together;"
        " split, a dozen tensors would pass between helpers per block (bench/bench_long_attention.py)"
    ),
}

# What the refactor of issue 10 has not yet reached; each entry must still be a violation (a fixed one
# has to be removed from here), and the lists only shrink.
KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_PRIVATE_IMPORTS: set[str] = set()
KNOWN_LONG_MODULES: set[str] = set()
KNOWN_LONG_FUNCTIONS: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


MODULES = source_files()
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The module an ``from ... import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(module: str) -> Iterator[tuple[str, str | None, int]]:
    """(imported module of the package, the name taken from it or None, line) for every import
    statement anywhere in the module, inside functions too."""
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    yield submodule, None, node.lineno
                elif source in MODULES:
                    yield source, alias.name, node.lineno


def import_graph() -> dict[str, set[str]]:
    return {m: {target for target, _, _ in imports(m) if target != m} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def private_imports() -> set[str]:
    return {
        f"{module}:{line} imports {name} from {source}"
        for module in MODULES
        for source, name, line in imports(module)
        if name is not None and name.startswith("_") and not name.startswith("__") and source != module
    }


def long_modules() -> set[str]:
    return {
        name
        for name, path in MODULES.items()
        if len(path.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES
    }


def functions(module: str) -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function and method of the module."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                yield name, (child.end_lineno or child.lineno) - child.lineno + 1
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from walk(TREES[module], "")


def long_functions() -> set[str]:
    return {
        f"{module}:{name}"
        for module in MODULES
        for name, lines in functions(module)
        if lines > MAX_FUNCTION_LINES and f"{module}:{name}" not in KERNELS
    }


def check(found: set, known: set, what: str) -> None:
    new = sorted(map(str, found - known))
    assert not new, f"{what}:\n" + "\n".join(new)
    stale = sorted(map(str, known - found))
    assert not stale, (
        f"fixed, so remove from the known list in tests/test_architecture.py ({what}):\n" + "\n".join(stale)
    )


def test_no_import_cycles() -> None:
    check(set(cycles(import_graph())), KNOWN_CYCLES, "import cycles among the package's modules")


def test_no_private_names_imported_across_modules() -> None:
    check(private_imports(), KNOWN_PRIVATE_IMPORTS, "private names imported from another module")


def test_modules_stay_small() -> None:
    check(long_modules(), KNOWN_LONG_MODULES, f"modules over {MAX_MODULE_LINES} lines")


def test_functions_stay_short() -> None:
    check(long_functions(), KNOWN_LONG_FUNCTIONS, f"functions over {MAX_FUNCTION_LINES} lines")


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_kernels_exist(kernel: str) -> None:
    module, name = kernel.split(":")
    assert name in dict(functions(module)), f"{kernel} is listed in KERNELS but no longer exists"


def test_the_checks_see_a_cycle_and_a_private_import() -> None:
    """The checker itself: a planted cycle and private import are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    tree = ast.parse("def f():\n    from audit.errors import _hidden\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert absolute("audit.cli", node) == "audit.errors"
