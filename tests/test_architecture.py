"""The package's shape: no import cycle (module-level or inside functions), and nothing outside
``models/`` names a published model."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import hccprog
from hccprog.models import model_names

ROOT = Path(hccprog.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = ("hccprog", *f.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (top level or inside a function)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hccprog"):
                targets = [[f"{node.module}.{a.name}", node.module] for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [[a.name] for a in node.names if a.name.startswith("hccprog")]
            else:
                continue
            for options in targets:
                hit = next((t for t in options if t in mods and t != name), None)
                if hit:
                    graph[name].add(hit)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    graph = _import_graph()
    assert "hccprog.training.engine" in graph["hccprog.training.train"] or any(
        "hccprog.training.engine" in graph[m] for m in graph)  # the graph sees imports at all
    assert _cycles(graph) == []


def _code_strings(path: Path) -> list[str]:
    """Identifiers and string constants of a module, without docstrings and ``help=`` texts."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            skip.add(id(first.value))
        if isinstance(node, ast.keyword) and node.arg == "help":
            skip.update(id(n) for n in ast.walk(node.value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            out.append(node.value)
        elif isinstance(node, ast.Name):
            out.append(node.id)
        elif isinstance(node, ast.Attribute):
            out.append(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.alias):
            out.append(node.name)
    return out


def test_training_reports_and_cli_name_no_model():
    """What is specific to a model lives in its module under ``models/``."""
    from hccprog.models.registry import get_model

    families = sorted({get_model(n).config.__module__.rsplit(".", 1)[-1] for n in model_names()})
    assert {"crnn", "dlop", "cldca", "progswin", "dmmgnet", "radiomics"} <= set(families)
    pattern = re.compile("|".join(families), re.IGNORECASE)
    files = [*sorted((ROOT / "training").glob("*.py")), *sorted((ROOT / "reports").glob("*.py")), ROOT / "cli.py"]
    named = {str(f.relative_to(ROOT)): sorted({s for s in _code_strings(f) if pattern.search(s)}) for f in files}
    assert {k: v for k, v in named.items() if v} == {}
