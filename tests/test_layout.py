"""The house keeps its floors (docs/architecture.md): imports point down, never in a loop, and utils/ is a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# each home of mlplab (a package, or a module at the top) and its floor; a home imports only homes below it
FLOORS = {
    "utils": 0,
    "models": 1,
    "loggers": 1,
    "distributed": 1,
    "data": 2,
    "config": 3,
    "callbacks": 3,
    "checkpoints": 4,
    "run": 5,
    "eval": 6,
    "predict": 6,
    "sweeps": 6,
    "train": 7,
    "bench": 8,
    "hydra_plugins": 8,
}


def _home(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return "hydra_plugins" if len(parts) > 1 and parts[1].startswith("mlplab") else None
    return parts[1] if parts[0] == "mlplab" and len(parts) > 1 else None


def _imports(path: Path) -> set[str]:
    """Every mlplab module `path` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _sources() -> list[tuple[str, Path]]:
    files = [*(SRC / "mlplab").rglob("*.py"), *(SRC / "hydra_plugins").rglob("*.py")]
    return [(".".join(p.relative_to(SRC).with_suffix("").parts), p) for p in sorted(files)]


def test_every_home_has_a_floor() -> None:
    homes = {_home(module) for module, _ in _sources()} - {None, "__init__"}
    assert homes <= set(FLOORS), f"a new home needs its floor here and in docs/architecture.md: {homes - set(FLOORS)}"


@pytest.mark.parametrize(("module", "path"), _sources(), ids=[m for m, _ in _sources()])
def test_imports_point_down(module: str, path: Path) -> None:
    home = _home(module)
    if home is None or home == "__init__":
        return
    upward = sorted(
        f"{imported} (floor {FLOORS[_home(imported)]})"
        for imported in _imports(path)
        if _home(imported) in FLOORS and _home(imported) != home and FLOORS[_home(imported)] >= FLOORS[home]
    )
    assert not upward, f"{module} (floor {FLOORS[home]}) imports a home on its own floor or above: {upward}"


def test_utils_imports_nothing_else_of_mlplab() -> None:
    for module, path in _sources():
        if _home(module) == "utils":
            others = sorted(m for m in _imports(path) if m.startswith("mlplab.") and _home(m) != "utils")
            assert not others, f"{module} imports {others}: utils/ holds leaf helpers only"


def test_no_two_modules_import_each_other() -> None:
    names = {module for module, _ in _sources()}
    graph = {
        module: {m for m in _imports(path) if m in names and m != module and not m.endswith("__init__")}
        for module, path in _sources()
    }
    loops = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets if a in graph.get(b, ()) and a < b)
    assert not loops, f"import loops: {loops}"
