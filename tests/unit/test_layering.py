"""Imports follow the layer table of docs/design.md; only flightrec.agents.worker imports faust.

Every module of our packages is parsed (``ast``), including imports inside
functions and under ``TYPE_CHECKING``: a dependency is a dependency even when
it is deferred.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The layers. The first five are repository folders installed as
# flightrec.<layer> (linked from flightrec/); kafka and testing live in flightrec/.
LINKED_LAYERS = ("agents", "recorder", "tools", "contracts", "replay")
LAYERS = (*LINKED_LAYERS, "kafka", "testing")
# The composition root: every module of flightrec that is in no layer.
ROOT = "flightrec"

# layer -> layers it may import (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "contracts": frozenset(),
    "kafka": frozenset({"contracts"}),
    "tools": frozenset({"contracts"}),
    "recorder": frozenset({"contracts", "kafka"}),
    "agents": frozenset({"contracts", "tools"}),
    "replay": frozenset({"contracts", "tools", "agents", "kafka"}),
    # The dev stack and test doubles stand beside the composition root: they
    # may use every layer, and no layer may use them.
    "testing": frozenset(LAYERS),
    ROOT: frozenset({*LAYERS, ROOT}),
}
# module -> extra layers it alone may import: the worker and its attempt
# ledger do Kafka I/O; the pipeline writes through the contracts' RecordWriter
# protocol, and the runner, models and steps never touch Kafka.
EXCEPTIONS: dict[str, frozenset[str]] = {
    "flightrec.agents.worker": frozenset({"recorder", "kafka"}),
    "flightrec.agents.attempts": frozenset({"kafka"}),
}
FAUST_MODULES = frozenset({"flightrec.agents.worker"})


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to; None when it is not ours."""
    parts = module.split(".")
    if parts[0] != ROOT:
        return None
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return ROOT


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
    layer = layer_of(module)
    assert layer is not None, module
    allowed = ALLOWED[layer] | EXCEPTIONS.get(module, frozenset()) | {layer}
    problems: list[str] = []
    for line, name in _imported_modules(module, ast.parse(source), is_package):
        target = layer_of(name)
        if target is not None and target not in allowed:
            problems.append(f"{module}:{line} imports {name} ({layer} may not import {target})")
        if name.split(".")[0] == "faust" and module not in FAUST_MODULES:
            problems.append(f"{module}:{line} imports faust (only flightrec.agents.worker may)")
    return problems


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, file) of every module we ship, read from the real folders."""
    modules: list[tuple[str, Path]] = []
    root_dir = REPO_ROOT / ROOT
    for path in sorted(root_dir.rglob("*.py")):
        if path.relative_to(root_dir).parts[0] in LINKED_LAYERS:
            continue  # the layer symlinks: read from their own folders below
        modules.append((_dotted(path.relative_to(REPO_ROOT)), path))
    for layer in LINKED_LAYERS:
        for path in sorted((REPO_ROOT / layer).rglob("*.py")):
            modules.append((_dotted(Path(ROOT) / path.relative_to(REPO_ROOT)), path))
    return modules


def _dotted(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def test_every_layer_is_scanned() -> None:
    scanned = {layer_of(name) for name, _ in _modules()}
    assert scanned == {*LAYERS, ROOT}
    assert any(name == "flightrec.agents.worker" for name, _ in _modules())


@pytest.mark.parametrize("layer", [*LAYERS, ROOT])
def test_imports_follow_the_layer_table(layer: str) -> None:
    problems: list[str] = []
    for module, path in _modules():
        if layer_of(module) != layer:
            continue
        source = path.read_text("utf-8")
        problems.extend(violations(module, source, is_package=path.name == "__init__.py"))
    assert problems == []


# -- the checker itself -------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("flightrec.contracts.codec", "import flightrec.agents.runner"),
        ("flightrec.contracts.codec", "from flightrec.tools.base import ToolOutcome"),
        ("flightrec.tools.http", "from flightrec.recorder import kafka"),
        (
            "flightrec.recorder.kafka",
            "def f():\n    from flightrec.agents.context import RunContext\n",
        ),
        ("flightrec.agents.runner", "from flightrec.recorder.pii import PiiGuard"),
        ("flightrec.agents.runner", "import faust"),
        ("flightrec.replay.reader", "from flightrec.cli import main"),
        ("flightrec.replay.reader", "from flightrec.recorder.chain import verify"),
        ("flightrec.tools.toolset", "from ..agents import steps"),
        ("flightrec.recorder.kafka", "from faust import App"),
        ("flightrec.replay.reader", "from flightrec.testing import MemoryRecorder"),
        ("flightrec.contracts.codec", "from flightrec.kafka.producer import ConfirmedProducer"),
        ("flightrec.kafka.producer", "from flightrec.recorder import base"),
        ("flightrec.agents.runner", "from flightrec.kafka import topics"),
        ("flightrec.agents.pipeline", "from flightrec.kafka import ConfirmedProducer"),
        (
            "flightrec.agents.steps",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import flightrec.recorder\n",
        ),
    ],
)
def test_checker_flags_a_bad_import(module: str, source: str) -> None:
    assert violations(module, source) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        (
            "flightrec.agents.worker",
            "import faust\nfrom flightrec.recorder.kafka import KafkaRecorder",
        ),
        (
            "flightrec.agents.runner",
            "from flightrec.contracts.events import Thought\nfrom flightrec.tools.base import ToolOutcome",
        ),
        (
            "flightrec.replay.replayer",
            "from flightrec.agents.runner import run\nfrom . import history",
        ),
        ("flightrec.cli", "import flightrec.agents.worker, flightrec.recorder, flightrec.replay"),
        ("flightrec.testing.memory", "from flightrec.recorder.sealing import ScrubbingSealer"),
        ("flightrec.recorder.kafka_recorder", "from flightrec.kafka import ConfirmedProducer"),
        (
            "flightrec.contracts.codec",
            "import json\nfrom .events import Thought\nimport confluent_kafka",
        ),
    ],
)
def test_checker_accepts_an_allowed_import(module: str, source: str) -> None:
    assert violations(module, source) == []


def test_relative_imports_resolve_against_the_package() -> None:
    tree = ast.parse("from . import steps\nfrom ..contracts import events\nfrom .x import y")
    names = [
        name for _, name in _imported_modules("flightrec.agents.runner", tree, is_package=False)
    ]
    assert names == ["flightrec.agents.steps", "flightrec.contracts", "flightrec.agents.x"]
    names = [
        name
        for _, name in _imported_modules(
            "flightrec.agents", ast.parse("from . import runner"), True
        )
    ]
    assert names == ["flightrec.agents.runner"]
