"""The package's shape (docs/architecture.md): layers, each a subpackage that says its job,
with imports running one way, down."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import PROJECT

PACKAGE = PROJECT / "lgsp_adapter"
# Besides the layers, only these sit at the top: what every layer shares.
TOP_LEVEL_MODULES = {"__init__.py", "__main__.py", "errors.py"}


def _layers() -> list[str]:
    config = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [str(layer) for layer in layers]


def test_imports_run_down_the_layers() -> None:
    # The contract in pyproject.toml, as `make lint` checks it: no module imports a layer above
    # its own, directly or through another module. In a process of its own: import-linter sets
    # up logging with dictConfig, which would silence every logger of the tests after it.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [lint_imports, "--no-cache"], cwd=PROJECT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_top_level_holds_only_layers_and_what_they_share() -> None:
    modules = {p.name for p in PACKAGE.glob("*.py")}
    assert modules == TOP_LEVEL_MODULES
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == {layer for layer in _layers() if layer != "errors"}


@pytest.mark.parametrize("layer", [layer for layer in _layers() if layer != "errors"])
def test_each_layer_says_its_job_and_what_it_may_import(layer: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
    assert docstring is not None
    assert "import" in docstring, f"{layer}/__init__.py does not say what it may import"
