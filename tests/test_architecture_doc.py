"""docs/architecture.md names modules, classes and functions: each must still be there, so the
walk a newcomer follows never leads to a room that was moved."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import PROJECT

DOC = (PROJECT / "docs" / "architecture.md").read_text()
PATHS = sorted(set(re.findall(r"`(lgsp_adapter/[\w/]*?(?:\.py|/))`", DOC)))
# `Class.method` and `function` as the walk names them, in backticks.
DOTTED = sorted(set(re.findall(r"`([A-Z]\w+)\.(\w+)`", DOC)))
LAYERS = sorted(set(re.findall(r"\| `lgsp_adapter/(\w+)/` \|", DOC)))


def _definitions() -> tuple[dict[str, set[str]], set[str]]:
    """Every class of the package with its members, and every function's name."""
    classes: dict[str, set[str]] = {}
    functions: set[str] = set()
    for path in (PROJECT / "lgsp_adapter").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                members = classes.setdefault(node.name, set())
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        members.add(item.name)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.add(node.name)
    return classes, functions


CLASSES, FUNCTIONS = _definitions()


def test_the_document_names_modules_and_the_walk() -> None:
    assert len(PATHS) > 20
    assert len(DOTTED) > 10
    assert len(PLACED) > 10


@pytest.mark.parametrize("path", PATHS)
def test_every_module_path_it_names_exists(path: str) -> None:
    assert (PROJECT / path).exists(), f"docs/architecture.md names {path}, which is gone"


@pytest.mark.parametrize(("owner", "member"), DOTTED, ids=lambda v: str(v))
def test_every_method_it_names_exists(owner: str, member: str) -> None:
    # A protocol's methods count: `Store.accept` is what both stores implement.
    assert owner in CLASSES, f"docs/architecture.md names class {owner}, which is gone"
    assert member in CLASSES[owner], f"{owner} has no {member}"


def test_every_layer_is_in_the_table() -> None:
    packages = {
        p.name for p in (PROJECT / "lgsp_adapter").iterdir() if (p / "__init__.py").is_file()
    }
    assert set(LAYERS) == packages


# "`lgsp_adapter/http/app.py` `submit`": a module, then what it defines.
PLACED = sorted(set(re.findall(r"`(lgsp_adapter/[\w/]+\.py)` `(\w+)(?:\.\w+)?`", DOC)))


@pytest.mark.parametrize(("path", "name"), PLACED, ids=lambda v: str(v))
def test_what_it_places_in_a_module_is_defined_there(path: str, name: str) -> None:
    tree = ast.parse((PROJECT / path).read_text())
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    assert name in defined, f"docs/architecture.md places {name} in {path}"
