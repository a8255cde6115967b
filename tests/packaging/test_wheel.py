"""The built wheel installs one top-level name, ``flightrec``, and every layer
imports from that installed copy (not from the repository's folders).

The repository keeps one folder per layer; ``flightrec/<layer>`` links to it
(docs/design.md, "Repository layout"). These tests prove the link becomes real
files in the wheel and that nothing else leaks to the top level, where it would
clash with an application's own ``agents`` or ``tools`` package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("agents", "recorder", "tools", "contracts", "replay", "kafka", "testing")


def _pip(command: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", command, "--quiet", "--no-deps", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools builds in the source tree, and a stale
    # build/ folder there would carry deleted modules into the next wheel.
    source = tmp_path_factory.mktemp("source") / "flightrec"
    shutil.copytree(
        REPO_ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".flightrec", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    # No build isolation: the build backend comes from the dev extras, so the
    # test needs no index.
    _pip("wheel", "--no-build-isolation", "--wheel-dir", str(out), str(source))
    (built,) = out.glob("flightrec-*.whl")
    return built


def test_the_wheel_has_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == {"flightrec"}
    for layer in LAYERS:
        assert f"flightrec/{layer}/__init__.py" in names
        assert f"flightrec/{layer}/py.typed" in names
    assert "flightrec/contracts/schemas/cot_event.avsc" in names


def test_every_layer_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    _pip("install", "--no-index", "--target", str(target), str(wheel))
    installed = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")}
    assert installed - {"bin"} == {"flightrec"}
    probe = (
        "import importlib, json\n"
        f"layers = {list(LAYERS)!r}\n"
        "files = {n: importlib.import_module('flightrec.' + n).__file__ for n in layers}\n"
        "import flightrec.agents.worker, flightrec.cli\n"
        "from flightrec.contracts.schema_files import load_schemas\n"
        "files['schemas'] = ' '.join(sorted(load_schemas()))\n"
        "print(json.dumps(files))\n"
    )
    # Run from an empty folder with only the installed copy first on the path:
    # the repository's folders are not importable from there.
    env = {**os.environ, "PYTHONPATH": str(target)}
    files = json.loads(
        subprocess.check_output([sys.executable, "-c", probe], cwd=tmp_path, env=env, text=True)
    )
    for layer in LAYERS:
        assert Path(files[layer]).is_relative_to(target / "flightrec" / layer), files[layer]
        assert not Path(files[layer]).is_symlink()
    assert "cot_event" in files["schemas"].split()
