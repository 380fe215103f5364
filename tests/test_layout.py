"""The package's architecture holds: the layer order documented in docs/design.md, no import cycle, and the
product never importing the lab.

Imports are read from the source (``ast``), so a lazy import inside a function counts as much as a top-level one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PRODUCT, LAB = "maestro_lit", "maestro_lab"
MAX_LAYERS = 8


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports; ``from pkg import module`` counts as importing the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported_modules(name, path, known) for name, path in found.items()}


def documented_layers() -> list[list[str]]:
    """The ```layers block of docs/design.md: one line per layer, lowest first, names of top-level units."""
    block = re.search(r"```layers\n(.*?)```", (ROOT / "docs" / "design.md").read_text(encoding="utf-8"), re.S)
    assert block, "docs/design.md has no ```layers block"
    return [line.split() for line in block.group(1).splitlines() if line.strip()]


def unit(module: str) -> str | None:
    """The top-level unit of a product module (``maestro_lit.policy.model`` -> ``policy``); None for the root."""
    parts = module.split(".")
    return parts[1] if parts[0] == PRODUCT and len(parts) > 1 else None


def test_every_product_unit_has_a_documented_layer():
    layers = documented_layers()
    named = [name for layer in layers for name in layer]
    assert len(named) == len(set(named)), "a unit is named on two layers"
    units = {unit(m) for m in modules() if unit(m)}
    assert units == set(named), (
        f"undocumented: {sorted(units - set(named))}; documented but absent: {sorted(set(named) - units)}"
    )


def test_no_product_import_runs_upward_or_sideways():
    rank = {name: i for i, layer in enumerate(documented_layers()) for name in layer}
    wrong = []
    for module, targets in import_graph().items():
        if unit(module) is None:
            continue
        for target in targets:
            if unit(target) is not None and unit(target) != unit(module) and rank[unit(target)] >= rank[unit(module)]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layer order of docs/design.md:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_longest_import_chain_of_the_product_is_short():
    graph = {m: {t for t in ts if t.startswith(PRODUCT)} for m, ts in import_graph().items() if m.startswith(PRODUCT)}
    depth: dict[str, int] = {}

    def layers_below(module: str) -> int:
        if module not in depth:
            depth[module] = 1 + max((layers_below(t) for t in graph[module]), default=0)
        return depth[module]

    assert max(layers_below(m) for m in graph) <= MAX_LAYERS


def test_the_product_never_imports_the_lab():
    leaks = [
        f"{m} -> {t}" for m, ts in import_graph().items() if m.startswith(PRODUCT) for t in ts if t.startswith(LAB)
    ]
    assert not leaks, leaks


def test_the_checker_sees_imports_of_every_form(tmp_path):
    """The parser is what the layer tests rest on: absolute, relative, ``from pkg import module`` and lazy."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "high.py").write_text("def f():\n    from .. import low\n")
    known = {"pkg", "pkg.low", "pkg.sub", "pkg.sub.high"}
    assert imported_modules("pkg.sub.high", package / "sub" / "high.py", known) == {"pkg", "pkg.low"}
    (package / "sub" / "high.py").write_text("import pkg.low\nfrom pkg.sub import high\n")
    assert imported_modules("pkg.sub.high", package / "sub" / "high.py", known) == {"pkg.low", "pkg.sub"}
