"""Arrows point down only: no module of omt/ or actions/ imports a layer above its own.

Bottom to top: omt.core < omt.rasa < omt.channels < omt.ops < omt.bench. The core is pure
(no Rasa, no web server, no other layer), so every rule about what a patient is told is
tested as plain functions; actions/ (run by rasa_sdk's action server) use the core only.
Imports are read with `ast`, so an import inside a function (a lazy one) counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("omt.core", "omt.rasa", "omt.channels", "omt.ops", "omt.bench")
# Rasa, its SDK and the web frameworks they run on: never in the core.
RASA_WORLD = ("rasa", "rasa_sdk", "sanic", "socketio", "engineio")


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = REPO) -> list[tuple[int, list[str]]]:
    """(line, modules) for every import statement in the file, at any depth.

    Relative imports are made absolute; `from omt import ops` names both omt and omt.ops,
    since the imported name may be a module.
    """
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, [base, *(f"{base}.{a.name}" for a in node.names)]))
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if within(module, layer)), None)


def problem(name: str, target: str) -> str | None:
    """Why module `name` may not import `target`, or None."""
    own, target_layer = layer_of(name), layer_of(target)
    if within(target, "actions") and not within(name, "actions"):
        return "nothing under omt/ may import actions/"
    if within(name, "actions"):
        return "actions/ may import omt.core only" if target_layer not in (None, 0) or within(target, "rasa") else None
    if name == "omt":
        return "the omt package itself imports no layer" if within(target, "omt.") else None
    if own == 0 and any(within(target, w) for w in RASA_WORLD):
        return "omt.core is pure (no Rasa, rasa_sdk or web server)"
    if own is not None and target_layer is not None and target_layer > own:
        return f"{LAYERS[own]} is below {LAYERS[target_layer]}"
    return None


def violations(path: Path, root: Path = REPO) -> list[str]:
    """Every import statement of `path` that points up, named with its line and why."""
    name = module_name(path, root)
    found = []
    for line, targets in imported(path, root):
        for target in targets:
            if why := problem(name, target):
                found.append(f"{path.relative_to(root)}:{line} imports {target}: {why}")
                break
    return found


def modules() -> list[Path]:
    return sorted([*(REPO / "omt").rglob("*.py"), *(REPO / "actions").rglob("*.py")])


def test_every_module_has_a_layer() -> None:
    for path in modules():
        name = module_name(path)
        assert name in ("omt", "actions") or within(name, "actions") or layer_of(name) is not None, name


def test_arrows_point_down_only() -> None:
    problems = [p for path in modules() for p in violations(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("where", "source", "why"),
    [
        ("omt/channels/x.py", "def f():\n    from omt.ops import web\n", "omt.channels is below omt.ops"),
        ("omt/core/x.py", "import rasa.core.agent\n", "omt.core is pure"),
        ("omt/core/x.py", "from sanic import Blueprint\n", "omt.core is pure"),
        ("omt/core/x.py", "from omt import rasa\n", "omt.core is below omt.rasa"),
        ("omt/rasa/x.py", "from ..bench import scoring\n", "omt.rasa is below omt.bench"),
        ("omt/ops/x.py", "from actions import actions\n", "nothing under omt/ may import actions/"),
        ("actions/x.py", "from omt.rasa.faults import guarded\n", "actions/ may import omt.core only"),
        ("actions/x.py", "from rasa.shared.core.events import SlotSet\n", "actions/ may import omt.core only"),
    ],
)
def test_an_upward_import_is_named(tmp_path: Path, where: str, source: str, why: str) -> None:
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    found = violations(path, tmp_path)
    assert len(found) == 1 and why in found[0], found


def test_downward_and_outside_imports_pass(tmp_path: Path) -> None:
    path = tmp_path / "omt" / "bench" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text("import json\nfrom omt.ops import stack\nfrom omt.core.contract import ALL_IDS\n", encoding="utf-8")
    assert violations(path, tmp_path) == []
