"""Imports follow DESIGN.md's layer table; only agents/worker.py imports faust.

Every module of our packages is parsed (``ast``), including imports inside
functions and under ``TYPE_CHECKING``: a dependency is a dependency even when
it is deferred.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agents", "recorder", "tools", "contracts", "replay", "flightrec")

# package -> packages of ours it may import (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "contracts": frozenset(),
    "tools": frozenset({"contracts"}),
    "recorder": frozenset({"contracts"}),
    "agents": frozenset({"contracts", "tools"}),
    "replay": frozenset({"contracts", "tools", "agents"}),
    "flightrec": frozenset(PACKAGES),
}
# module -> extra packages it alone may import.
EXCEPTIONS: dict[str, frozenset[str]] = {"agents.worker": frozenset({"recorder"})}
FAUST_MODULES = frozenset({"agents.worker"})


def _imported_modules(module: str, tree: ast.AST, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``tree``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = module.split(".")
                # A package's __init__ is its own anchor; a module's is its parent.
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if node.module is None:
                # `from . import x`: x may be a submodule, count each one.
                found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, base))
    return found


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """Layering violations of ``module`` (dotted name) given its source text."""
    package = module.split(".")[0]
    allowed = ALLOWED[package] | EXCEPTIONS.get(module, frozenset()) | {package}
    problems: list[str] = []
    for line, name in _imported_modules(module, ast.parse(source), is_package):
        top = name.split(".")[0]
        if top in ALLOWED and top not in allowed:
            problems.append(f"{module}:{line} imports {name} ({package} may not import {top})")
        if top == "faust" and module not in FAUST_MODULES:
            problems.append(f"{module}:{line} imports faust (only agents.worker may)")
    return problems


def _modules() -> list[tuple[str, Path]]:
    modules: list[tuple[str, Path]] = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append((".".join(parts), path))
    return modules


def test_every_package_is_scanned() -> None:
    scanned = {name.split(".")[0] for name, _ in _modules()}
    assert scanned == set(PACKAGES)
    assert any(name == "agents.worker" for name, _ in _modules())


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_layer_table(package: str) -> None:
    problems: list[str] = []
    for module, path in _modules():
        if module.split(".")[0] != package:
            continue
        source = path.read_text("utf-8")
        problems.extend(violations(module, source, is_package=path.name == "__init__.py"))
    assert problems == []


# -- the checker itself -------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("contracts.codec", "import agents.runner"),
        ("contracts.codec", "from tools.base import ToolOutcome"),
        ("tools.http", "from recorder import kafka"),
        ("recorder.kafka", "def f():\n    from agents.context import RunContext\n"),
        ("agents.runner", "from recorder.pii import PiiGuard"),
        ("agents.runner", "import faust"),
        ("replay.reader", "from flightrec.cli import main"),
        ("replay.reader", "from recorder.chain import verify"),
        ("tools.toolset", "from ..agents import steps"),
        ("recorder.kafka", "from faust import App"),
        (
            "agents.steps",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import recorder\n",
        ),
    ],
)
def test_checker_flags_a_bad_import(module: str, source: str) -> None:
    assert violations(module, source) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("agents.worker", "import faust\nfrom recorder.kafka import KafkaRecorder"),
        (
            "agents.runner",
            "from contracts.events import Thought\nfrom tools.base import ToolOutcome",
        ),
        ("replay.replayer", "from agents.runner import run\nfrom . import history"),
        ("flightrec.cli", "import agents.worker, recorder, replay"),
        ("contracts.codec", "import json\nfrom .events import Thought\nimport confluent_kafka"),
    ],
)
def test_checker_accepts_an_allowed_import(module: str, source: str) -> None:
    assert violations(module, source) == []


def test_relative_imports_resolve_against_the_package() -> None:
    tree = ast.parse("from . import steps\nfrom ..contracts import events\nfrom .x import y")
    names = [name for _, name in _imported_modules("agents.runner", tree, is_package=False)]
    assert names == ["agents.steps", "contracts", "agents.x"]
    names = [
        name for _, name in _imported_modules("agents", ast.parse("from . import runner"), True)
    ]
    assert names == ["agents.runner"]
