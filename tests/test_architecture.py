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
    assert "hccprog.experiment.engine" in graph["hccprog.training.run"] or any(
        "hccprog.experiment.engine" in graph[m] for m in graph)  # the graph sees imports at all
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
    files = [*sorted((ROOT / "training").glob("*.py")), *sorted((ROOT / "reports").glob("*.py")),
             *sorted((ROOT / "cli").glob("*.py"))]
    named = {str(f.relative_to(ROOT)): sorted({s for s in _code_strings(f) if pattern.search(s)}) for f in files}
    assert {k: v for k, v in named.items() if v} == {}


_LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_the_layers_contract_holds():
    """import-linter's layers contract of pyproject.toml: every package imports only from the packages
    below it (imports inside functions included)."""
    import subprocess
    import sys

    pyproject = ROOT.parents[1] / "pyproject.toml"
    assert '"hccprog.survival",' in pyproject.read_text()
    done = subprocess.run([sys.executable, "-c", _LINT, "--config", str(pyproject), "--no-cache"],
                          capture_output=True, text=True, cwd=pyproject.parent)
    assert done.returncode == 0 and "1 kept, 0 broken" in done.stdout, done.stdout + done.stderr


def test_a_layer_violation_is_caught(tmp_path):
    """The contract is not vacuous: a module of a low layer that imports a higher one breaks it."""
    import subprocess
    import sys

    pkg = tmp_path / "pkgx"
    for name, body in {"__init__.py": "", "low.py": "def f():\n    from pkgx import high\n    return high\n",
                       "high.py": "from pkgx import low\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(body)
    cfg = tmp_path / "setup.cfg"
    cfg.write_text("[importlinter]\nroot_package = pkgx\n\n[importlinter:contract:1]\nname = layers\n"
                   "type = layers\nlayers =\n    pkgx.high\n    pkgx.low\n")
    done = subprocess.run([sys.executable, "-c", _LINT, "--config", str(cfg), "--no-cache"],
                          capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout + done.stderr


def test_no_in_function_import_of_hccprog_outside_the_cli():
    """Imports of hccprog modules sit at the top of a module, where the layers are visible; the only
    exceptions carry a ``# lazy: <reason>`` comment (a heavy optional dependency)."""
    found = []
    for f in sorted(ROOT.rglob("*.py")):
        if f.parent.name == "cli":  # the command line imports lazily so that --help stays quick
            continue
        lines = f.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                module = (inner.module if isinstance(inner, ast.ImportFrom) else
                          next((a.name for a in inner.names), "") if isinstance(inner, ast.Import) else None)
                if module and module.startswith("hccprog") and "# lazy:" not in lines[inner.lineno - 1]:
                    found.append(f"{f.relative_to(ROOT)}:{inner.lineno}")
    assert found == []


def test_a_plugin_registered_first_does_not_hide_the_built_in_models(monkeypatch):
    from hccprog.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_BUILTINS", {"loaded": False, "names": set()})
    builtin = registry.get_model("crnn")  # a fresh registry
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_BUILTINS", {"loaded": False, "names": set()})
    registry.register(registry.ModelSpec("my-plugin", "a plugin", builtin.config, builtin.build))
    assert "crnn" in registry.model_names() and "my-plugin" in registry.model_names()


def test_one_scoring_vocabulary():
    """Scorers speak fit / predict_risk / predict_survival / state / from_state
    (:mod:`hccprog.survival.protocols`): no class defines another verb for the same act."""
    other_verbs = {"risk", "predict", "survival"}
    found = []
    for f in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                found += [f"{f.relative_to(ROOT)}:{item.lineno} {node.name}.{item.name}" for item in node.body
                          if isinstance(item, ast.FunctionDef) and item.name in other_verbs]
    assert found == []
    scorers = 0
    for f in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
                scorers += bool({"predict_risk", "predict_survival"} & names)
    assert scorers >= 10  # the vocabulary is in use (Cox, fusion, Breslow, objectives, pipelines, trainers)
