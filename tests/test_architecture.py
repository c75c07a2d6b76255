"""The layout rules of docs/user_guide/architecture.rst, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pdmer", "pdmer_datasets")
MAX_LINES = 500


def modules() -> dict:
    """Dotted module name -> path, for every module of the two packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def package_of(name: str, paths: dict) -> str:
    """The package a module belongs to (itself for a package's __init__)."""
    return name if paths[name].name == "__init__.py" else name.rpartition(".")[0]


def imports(name: str, paths: dict):
    """``(line, imported module, imported names)`` of every absolute import in a module."""
    tree = ast.parse(paths[name].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                # "from package import module" imports a module.
                sub = f"{node.module}.{alias.name}"
                if sub in paths:
                    yield node.lineno, sub, []
                else:
                    yield node.lineno, node.module, [alias.name]


def import_graph() -> dict:
    paths = modules()
    graph = {name: set() for name in paths}
    for name in paths:
        for _, target, _ in imports(name, paths):
            if target in paths and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    # Imports inside functions count too: a lazy import only hides a cycle.
    assert cycles(import_graph()) == []


def test_the_cycle_check_can_fail():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_imports_across_packages():
    paths = modules()
    offences = []
    for name in paths:
        here = package_of(name, paths)
        for line, target, names in imports(name, paths):
            if not target.startswith(PACKAGES) or target.split(".")[0] not in PACKAGES:
                continue
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_")]
            # A private module is private to the package that holds it.
            owner = ".".join(parts[: private[0]]) if private else None
            if owner is not None and not (here + ".").startswith(owner + "."):
                offences.append(f"{paths[name].relative_to(ROOT)}:{line}: {target}")
            owner_of_names = package_of(target, paths) if target in paths else target
            for imported in names:
                if imported.startswith("_") and not imported.startswith("__") and not (
                        here + ".").startswith(owner_of_names + "."):
                    offences.append(f"{paths[name].relative_to(ROOT)}:{line}: "
                                    f"{target}.{imported}")
    assert offences == []


def test_private_scikit_learn_imports_stay_in_the_adapter():
    paths = modules()
    users = sorted({name for name in paths for _, target, names in imports(name, paths)
                    if target.split(".")[0] == "sklearn" and any(
                        part.startswith("_") for part in target.split(".") + names)})
    assert users == ["pdmer.sklearn_compat"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_over_the_size_limit(package):
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
             for path in (ROOT / package).rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


ESTIMATOR_HOOKS = {
    # The network session and the training steps take what they need as arguments.
    "_session.py": set(),
    "_training.py": set(),
    # Personalization: the hooks its docstring names, and its own methods.
    "_personalization.py": {"_session", "_songs", "_check_listener"},
}


@pytest.mark.parametrize("module", sorted(ESTIMATOR_HOOKS))
def test_the_estimator_helpers_use_only_their_documented_hooks(module):
    tree = ast.parse((ROOT / "pdmer" / "estimators" / module).read_text())
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "self" and node.attr.startswith("_")
            and not node.attr.startswith("__")}
    assert used <= ESTIMATOR_HOOKS[module]


def test_the_core_library_does_not_import_the_data_sets():
    # import pdmer stays free of mirdata: only experiments and applications
    # (cli, app, demo) read pdmer_datasets.
    graph = import_graph()
    allowed = ("pdmer.experiments", "pdmer.cli", "pdmer.app", "pdmer.demo")
    users = sorted(name for name, targets in graph.items()
                   if name.startswith("pdmer.") and not name.startswith(allowed)
                   and any(t.startswith("pdmer_datasets") for t in targets))
    assert users == []
