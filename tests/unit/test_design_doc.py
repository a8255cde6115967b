"""docs/design.md cites only tests that exist.

The document ties each guarantee to the tests that prove it, as
``tests/<path>.py::<test name>``, and names test files and folders by path. A
test renamed, moved or deleted would leave a citation that proves nothing, so
every cited file must exist and every cited test must be defined in it (read
with ``ast``, so nothing is imported or run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DESIGN = REPO_ROOT / "docs" / "design.md"

# tests/<path>.py, optionally ::name (::Class::method); or a folder tests/<path>/.
# Not preceded by a path character, so "xtests/..." or "a/tests/..." are no citation.
_CITATION = re.compile(r"(?<![\w/.])(tests/(?:[\w-]+/)*[\w-]+\.py)((?:::\w+)*)")
_FOLDER = re.compile(r"(?<![\w/.])(tests/(?:[\w-]+/)+)(?![\w*.])")
_GUARANTEE = re.compile(r"^### \d+\. ", re.MULTILINE)


def citations(text: str) -> set[tuple[str, tuple[str, ...]]]:
    """Every ``(file, names)`` cited in ``text``; ``names`` is empty for a bare path."""
    return {
        (path, tuple(filter(None, names.split("::")))) for path, names in _CITATION.findall(text)
    }


def folders(text: str) -> set[str]:
    """Every test folder cited in ``text`` (``tests/unit/``)."""
    return set(_FOLDER.findall(text))


def _defines(scope: list[ast.stmt], names: tuple[str, ...]) -> bool:
    """Whether ``names`` (a function, or a class then its members) is defined in ``scope``."""
    first, rest = names[0], names[1:]
    for node in scope:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == first:
            return not rest
        if isinstance(node, ast.ClassDef) and node.name == first:
            return bool(rest) and _defines(node.body, rest)
    return False


def problems(text: str, root: Path = REPO_ROOT) -> list[str]:
    """What ``text`` cites that ``root`` does not hold."""
    found: list[str] = []
    trees: dict[str, ast.Module] = {}
    for path, names in sorted(citations(text)):
        file = root / path
        if not file.is_file():
            found.append(f"{path}: no such file")
            continue
        if not names:
            continue
        tree = trees.get(path)
        if tree is None:
            tree = trees[path] = ast.parse(file.read_text(encoding="utf-8"), filename=path)
        if not _defines(tree.body, names):
            found.append(f"{path}::{'::'.join(names)}: not defined in {path}")
    found.extend(
        f"{folder}: no such folder"
        for folder in sorted(folders(text))
        if not (root / folder).is_dir()
    )
    return found


def test_every_cited_test_file_and_folder_exists() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    assert problems(text) == []


def test_every_guarantee_cites_tests() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    starts = [m.start() for m in _GUARANTEE.finditer(text)]
    assert starts, "no guarantee sections (### N. ...) found"
    ends = [*starts[1:], text.find("\n## ", starts[-1])]
    for start, end in zip(starts, ends, strict=True):
        section = text[start:end]
        heading = section.splitlines()[0]
        assert any(names for _path, names in citations(section)), f"{heading}: cites no test"


def test_a_missing_file_a_missing_test_and_a_missing_folder_are_flagged() -> None:
    this = "tests/unit/test_design_doc.py"
    text = (
        f"`{this}::test_every_guarantee_cites_tests` and `{this}` exist; "
        f"`{this}::no_such_test`, `tests/unit/no_such_file.py::test_x`, "
        f"`{this}::problems::inner` and `tests/no_such_folder/` do not; "
        "`tests/replay/golden/*.jsonl` is no test citation."
    )
    assert problems(text) == [
        "tests/unit/no_such_file.py: no such file",
        f"{this}::no_such_test: not defined in {this}",
        f"{this}::problems::inner: not defined in {this}",
        "tests/no_such_folder/: no such folder",
    ]
