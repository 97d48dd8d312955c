"""The shape of the house: no import circles, training/ knows no algorithm by name, short modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kerasdojo"
ALGORITHMS = {
    "ppo",
    "ppo_lstm",
    "recurrent",
    "her",
    "a2c",
    "dqn",
    "sac",
    "td3",
    "native",
    "random_agent",
    "onpolicy",
    "offpolicy_ac",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every kerasdojo module ``name`` imports anywhere: top level, in functions, under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    # A package's own submodules are not edges of the package (it does not import them back).
    return {m for m in found if m in mods and m != name and not m.startswith(name + ".")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path of imports from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_module_imports_one_that_imports_it_back(graph: dict[str, set[str]]) -> None:
    cycles = [c for m in sorted(graph) if (c := _cycle_from(m, graph))]
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_training_finds_algorithms_through_the_registry(graph: dict[str, set[str]]) -> None:
    reached = {
        (m, d)
        for m, deps in graph.items()
        if m.startswith("kerasdojo.training")
        for d in deps
        if d.startswith("kerasdojo.agents.") and d.rsplit(".", 1)[1] in ALGORITHMS
    }
    assert not reached, f"training/ imports algorithm modules: {sorted(reached)}"


def test_the_halves_of_the_house_stay_apart(graph: dict[str, set[str]]) -> None:
    crossing = {
        (m, d)
        for m, deps in graph.items()
        for d in deps
        if (m.startswith(("kerasdojo.agents", "kerasdojo.envs", "kerasdojo.supervised", "kerasdojo.networks")))
        and d.startswith(("kerasdojo.cli", "kerasdojo.training", "kerasdojo.experiments"))
    }
    crossing |= {
        (m, d)
        for m, deps in graph.items()
        for d in deps
        if m.startswith(("kerasdojo.envs", "kerasdojo.supervised")) and d.startswith("kerasdojo.agents")
    }
    assert not crossing, f"imports against the flow (CLI -> training -> agents/envs): {sorted(crossing)}"


def test_no_module_is_longer_than_400_lines() -> None:
    long = {
        p.relative_to(PACKAGE.parent).as_posix(): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"modules over 400 lines: {long}"
