"""Each package's ``__init__`` is its public surface, tested the way httpx tests
its own (``tests/test_exported_members.py``): ``__all__`` lists exactly the
public names the package holds, and every exported name is defined inside the
package. A name added to a package without being exported fails, and so does
a name exported that does not exist.

Importing a package stays cheap: only ``flightrec.agents.worker`` imports
Faust, and ``flightrec.contracts`` loads the schema-registry client only when
its codec or governance is used. Those run in a fresh interpreter, where no
other test's imports can hide what a package pulls in.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

PACKAGES = (
    "flightrec",
    "flightrec.agents",
    "flightrec.agents.models",
    "flightrec.contracts",
    "flightrec.kafka",
    "flightrec.recorder",
    "flightrec.replay",
    "flightrec.testing",
    "flightrec.testing.registry",
    "flightrec.tools",
)


def public_names(module: types.ModuleType) -> list[str]:
    """Public names the module holds, its submodules aside.

    ``dir()`` rather than ``vars()``, so names a package loads on first use
    (its module ``__dir__`` lists them) count as well.
    """
    namespace = vars(module)
    return sorted(
        name
        for name in dir(module)
        if not name.startswith("_") and not isinstance(namespace.get(name), types.ModuleType)
    )


def defined_in(package: str, name: str, value: object) -> bool:
    """Whether ``value`` comes from ``package`` or one of its modules."""
    if inspect.isclass(value) or inspect.isroutine(value):
        module = getattr(value, "__module__", "")
        return module == package or module.startswith(package + ".")
    # Constants and type aliases carry no module of their own: some module of
    # the package must bind the very same object under that name.
    return any(
        vars(module).get(name) is value
        for module_name, module in list(sys.modules.items())
        if module_name.startswith(package + ".") and module is not None
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_all_lists_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    exported: list[str] = module.__all__
    assert len(set(exported)) == len(exported), "a name is exported twice"
    assert sorted(exported) == public_names(module)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_exists_and_is_defined_in_the_package(package: str) -> None:
    module = importlib.import_module(package)
    foreign = [
        name for name in module.__all__ if not defined_in(package, name, getattr(module, name))
    ]
    assert foreign == []


def test_a_stray_a_missing_and_a_foreign_name_are_caught() -> None:
    module = types.ModuleType("flightrec.example")
    thing = type("Thing", (), {"__module__": "flightrec.example.things"})
    module.__dict__.update(Thing=thing, helper=len, __all__=["Thing"])
    assert public_names(module) == ["Thing", "helper"]  # helper is not exported
    module.__dict__.update(__all__=["Thing", "Missing", "helper"])
    assert sorted(module.__all__) != public_names(module)  # Missing does not exist
    assert defined_in("flightrec.example", "Thing", thing)
    assert not defined_in("flightrec.example", "helper", len)  # a builtin, not ours


def _fresh_interpreter(probe: str) -> object:
    """Run ``probe`` in a new interpreter that imports flightrec from this checkout."""
    path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def test_only_the_worker_imports_faust() -> None:
    probe = (
        "import importlib, json, sys\n"
        f"packages = {list(PACKAGES)!r}\n"
        "brought = {}\n"
        "for name in packages + ['flightrec.agents.worker']:\n"
        "    importlib.import_module(name)\n"
        "    brought[name] = 'faust' in sys.modules\n"
        "print(json.dumps(brought))\n"
    )
    brought = _fresh_interpreter(probe)
    # Each package is imported after the ones before it, so the first True
    # names the package that brought Faust in.
    assert brought == {**{name: False for name in PACKAGES}, "flightrec.agents.worker": True}


def test_contracts_load_the_registry_client_only_when_the_codec_is_used() -> None:
    probe = (
        "import json, sys\n"
        "import flightrec.contracts\n"
        "def loaded():\n"
        "    return 'confluent_kafka.schema_registry' in sys.modules\n"
        "before = loaded()\n"
        "codec = flightrec.contracts.Codec\n"
        "print(json.dumps([before, loaded(), codec.__module__]))\n"
    )
    assert _fresh_interpreter(probe) == [False, True, "flightrec.contracts.codec"]
