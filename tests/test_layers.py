"""The import direction of the house (issue 11, point 5), read from the source with ``ast`` — nothing is imported.

Layers, lowest first (docs/ARCHITECTURE.md); a module may import its own layer and lower ones only:

    0  errors, seeding, checks, devices      the ground (and noisebrush/__init__.py at module level)
    1  diffusion                             the engine: torch, the standard library and noisebrush.errors only
    2  nets, data, io, models                siblings; io imports neither nets nor data
    3  train, paint                          siblings that never import each other
    4  eval
    5  workflows
    6  bench                                 benchmarks; only the apps import them (``noisebrush bench NAME``)
    7  apps (and noisebrush/__main__.py)     noisebrush/__init__.py is an app-level facade: it may import
                                             anything lazily (``noisebrush.load`` → paint), but at module level
                                             only the ground, because every ``import noisebrush.x`` runs it

Checked: (a) no import reaches a higher layer or breaks a sibling rule (imports inside functions included: a lazy
upward import is still upward); (b) no cycle among module-level imports of noisebrush modules (``if
TYPE_CHECKING:`` blocks aside); (c) every import inside a function carries a ``# lazy: reason`` comment on its line
or the line before; (d) the engine imports only torch, the standard library, noisebrush.errors and itself.

    python -m pytest -q tests/test_layers.py      # each failure lists every offending import as file:line
"""
from __future__ import annotations

import ast
import io
import sys
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "noisebrush"

LAYERS = {
    "errors": 0, "seeding": 0, "checks": 0, "devices": 0,
    "diffusion": 1,
    "nets": 2, "data": 2, "io": 2, "models": 2,
    "train": 3, "paint": 3,
    "eval": 4,
    "workflows": 5,
    "bench": 6,
    "apps": 7, "__main__": 7,
}
FACADE = 7  # the layer of noisebrush/__init__.py's lazy imports
NEVER = [("train", "paint"), ("paint", "train"), ("io", "nets"), ("io", "data")]  # (importer, imported) siblings
ENGINE_MAY_IMPORT = {"torch", "__future__"}


@dataclass(frozen=True)
class Import:
    module: str          # the importing module, e.g. noisebrush.paint.pipeline
    line: int
    target: str          # a noisebrush module (package __init__ or file), or a top-level third-party name
    internal: bool       # target is a noisebrush module
    lazy: bool           # inside a function body
    typing_only: bool    # under ``if TYPE_CHECKING:``

    def where(self) -> str:
        return f"{path_of(self.module).relative_to(SRC.parent)}:{self.line}"


@cache
def modules() -> dict[str, Path]:
    """{module name: file} of every module under src/noisebrush."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def path_of(module: str) -> Path:
    return modules()[module]


def is_package(module: str) -> bool:
    return path_of(module).name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import statement loads: the named submodule where there is one, else the module itself."""
    known = modules()
    if isinstance(node, ast.Import):
        out = []
        for alias in node.names:
            name = alias.name
            while name not in known and "." in name and name.startswith(PACKAGE + "."):
                name = name.rsplit(".", 1)[0]
            out.append(name)
        return out
    base = _resolve(module, node)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    tree = ast.parse(path_of(module).read_text(encoding="utf-8"), filename=str(path_of(module)))
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, child):
                    internal = target == PACKAGE or target.startswith(PACKAGE + ".")
                    found.append(Import(module, child.lineno, target if internal else target.split(".")[0],
                                        internal, lazy, typing_only))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True, typing_only)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for part in child.body:
                    visit(ast.Module(body=[part], type_ignores=[]), lazy, True)
                for part in child.orelse:
                    visit(ast.Module(body=[part], type_ignores=[]), lazy, typing_only)
            else:
                visit(child, lazy, typing_only)

    visit(tree, False, False)
    return tuple(found)


def all_imports() -> list[Import]:
    return [imp for m in modules() for imp in imports_of(m)]


def area(module: str) -> str:
    """The top-level part of noisebrush a module belongs to ("" for noisebrush/__init__.py itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str, *, importing_lazily: bool = False) -> int:
    if module == PACKAGE:  # the facade: ground-level at module level, app-level in its lazy imports
        return FACADE if importing_lazily else 0
    return LAYERS[area(module)]


def _fmt(lines: list[str]) -> str:
    return f"{len(lines)} found:\n  " + "\n  ".join(lines)


# -- the checks ------------------------------------------------------------------------------------------------------


def test_every_module_has_a_layer():
    assert len(modules()) > 40  # the walk found the package
    unknown = sorted(m for m in modules() if m != PACKAGE and area(m) not in LAYERS)
    assert not unknown, f"modules outside every layer (add them to LAYERS here and in docs/ARCHITECTURE.md): {unknown}"


def layer_violations(imports: list[Import] | None = None) -> list[str]:
    bad = []
    for imp in all_imports() if imports is None else imports:
        if not imp.internal or imp.target == imp.module:
            continue
        src, dst = imp.module, imp.target
        lo, hi = layer(src, importing_lazily=imp.lazy), layer(dst)
        a, b = area(src), area(dst)
        if hi > lo:
            bad.append(f"{imp.where()}: {src} (layer {lo}) imports {dst} (layer {hi})")
        elif (a, b) in NEVER:
            bad.append(f"{imp.where()}: {src} imports {dst} ({a} must not import {b})")
        elif b == "bench" and a not in ("bench", "apps"):
            bad.append(f"{imp.where()}: {src} imports {dst} (only the apps import bench)")
    return bad


def test_no_module_imports_a_higher_layer():
    bad = layer_violations()
    assert not bad, "upward or forbidden imports, " + _fmt(bad)


def import_cycles(imports: list[Import] | None = None) -> list[list[str]]:
    """Strongly connected components (more than one module) of the module-level noisebrush import graph."""
    imports = all_imports() if imports is None else imports
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for imp in imports:
        if imp.internal and not imp.lazy and not imp.typing_only and imp.target != imp.module:
            graph[imp.module].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def strongconnect(v: str) -> None:  # Tarjan (1972); recursion depth ≤ number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(out)


def _cycle_edges(comp: list[str]) -> list[str]:
    inside = set(comp)
    return [f"{imp.where()}: {imp.module} → {imp.target}" for m in comp for imp in imports_of(m)
            if imp.internal and not imp.lazy and not imp.typing_only and imp.target in inside
            and imp.target != m]


def test_no_import_cycles():
    cycles = import_cycles()
    lines = [f"{' ↔ '.join(c)} — edges: {'; '.join(_cycle_edges(c))}" for c in cycles]
    assert not cycles, "module-level import cycles, " + _fmt(lines)


@cache
def comments(module: str) -> dict[int, str]:
    """{line: comment text} of a module."""
    text = path_of(module).read_text(encoding="utf-8")
    return {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.COMMENT}


def unexplained_lazy_imports() -> list[str]:
    bad = []
    for imp in all_imports():
        if not imp.lazy:
            continue
        notes = comments(imp.module)
        if not any(notes.get(line, "").startswith("# lazy:") for line in (imp.line, imp.line - 1)):
            bad.append(f"{imp.where()}: {imp.module} imports {imp.target} inside a function")
    return sorted(set(bad))


def test_function_level_imports_say_why():
    bad = unexplained_lazy_imports()
    assert not bad, "imports inside functions without a '# lazy: reason' comment, " + _fmt(bad)


def test_the_engine_imports_only_torch_and_errors():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for imp in all_imports():
        if area(imp.module) != "diffusion":
            continue
        if imp.internal:
            ok = imp.target == f"{PACKAGE}.errors" or area(imp.target) == "diffusion"
        else:
            ok = imp.target in stdlib or imp.target in ENGINE_MAY_IMPORT
        if not ok:
            bad.append(f"{imp.where()}: {imp.module} imports {imp.target}")
    assert not bad, "the engine imports more than torch and noisebrush.errors, " + _fmt(bad)


# -- the checker itself --------------------------------------------------------------------------------------------


def test_the_checker_reads_imports_as_python_does():
    """Relative imports, submodules named in ``from … import``, lazy and TYPE_CHECKING imports are told apart."""
    got = {(i.target, i.lazy, i.typing_only) for i in imports_of(f"{PACKAGE}.nets.unet")}
    assert (f"{PACKAGE}.nets.mp", False, False) in got and ("torch", False, False) in got
    node = ast.parse("from . import mp\nfrom .mp import MPConv\nfrom .. import errors").body
    assert _targets(f"{PACKAGE}.nets.unet", node[0]) == [f"{PACKAGE}.nets.mp"]
    assert _targets(f"{PACKAGE}.nets.unet", node[1]) == [f"{PACKAGE}.nets.mp"]
    assert _targets(f"{PACKAGE}.nets", node[2]) == [f"{PACKAGE}.errors"]
    assert _targets(f"{PACKAGE}.nets.unet", ast.parse("import noisebrush.nets.unet").body[0]) == \
        [f"{PACKAGE}.nets.unet"]
    assert layer(PACKAGE) == 0 and layer(PACKAGE, importing_lazily=True) == FACADE


def test_the_checker_finds_what_it_should():
    """Made-up imports (never written to a file) of each kind the checks must catch, and some they must allow."""
    def imp(src, dst, lazy=False, typing_only=False):
        return Import(f"{PACKAGE}.{src}" if src else PACKAGE, 1, f"{PACKAGE}.{dst}" if dst else PACKAGE, True,
                      lazy, typing_only)

    assert len(layer_violations([imp("diffusion.sample", "nets.unet"), imp("nets.unet", "paint.pipeline", lazy=True),
                                 imp("train.loop", "paint.pipeline"), imp("paint.pipeline", "train.loop"),
                                 imp("io.png", "nets.unet"), imp("io.png", "data.folder"),
                                 imp("bench.train", "apps.cli.app"), imp("", "paint.pipeline"),
                                 imp("workflows.finetune", "bench.train", lazy=True)])) == 9
    assert not layer_violations([imp("nets.lora", "io.atomic"), imp("paint.pipeline", "nets.unet"),
                                 imp("", "paint.pipeline", lazy=True), imp("apps.cli.info", "bench.train"),
                                 imp("diffusion.sample", "errors"), imp("io.png", ""),
                                 imp("bench.train", "bench.quality")])
    loop = [imp("nets.unet", "nets.mp"), imp("nets.mp", "nets.text"), imp("nets.text", "nets.unet")]
    assert import_cycles(loop) == [[f"{PACKAGE}.nets.mp", f"{PACKAGE}.nets.text", f"{PACKAGE}.nets.unet"]]
    assert not import_cycles(loop[:2] + [imp("nets.text", "nets.unet", lazy=True)])
    assert not import_cycles(loop[:2] + [imp("nets.text", "nets.unet", typing_only=True)])
