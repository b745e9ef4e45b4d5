"""The packages' imports point down only: ``classifier`` (the library) imports no other package of the project;
``training``, ``batch`` and ``service`` import ``classifier`` and never each other; ``laari`` (the command) may
import all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("classifier", "training", "batch", "service", "laari")
ALLOWED = {"classifier": set(), "training": {"classifier"}, "batch": {"classifier"}, "service": {"classifier"},
           "laari": {"classifier", "training", "batch", "service"}}


def project_imports(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute imports; relative ones stay inside the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES)
    return found


def upward_imports(package: str, root: Path = ROOT) -> dict[str, list[str]]:
    """Modules of ``package`` under ``root`` that import a project package they may not, with what they import."""
    wrong = {}
    for path in sorted((root / package).rglob("*.py")):
        bad = project_imports(path) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(root))] = sorted(bad)
    return wrong


def test_every_package_is_checked():
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks", "scripts"}
    assert found <= set(PACKAGES), f"packages without an import rule: {sorted(found - set(PACKAGES))}"


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_only(package):
    assert (ROOT / package / "__init__.py").exists()
    assert upward_imports(package) == {}


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom training.pipeline import train\nfrom . import x\n", encoding="utf-8")
    assert project_imports(module) == {"training"}


@pytest.mark.parametrize("package, imports", [("batch", "from training.datasets import load_labelled"),
                                              ("training", "import batch.run"),
                                              ("classifier", "from service.core import Service"),
                                              ("service", "from batch.run import run_batch")])
def test_the_check_fails_a_package_that_imports_sideways_or_up(tmp_path, package, imports):
    (tmp_path / package).mkdir()
    (tmp_path / package / "m.py").write_text(f"{imports}\n", encoding="utf-8")
    assert upward_imports(package, tmp_path) == {f"{package}/m.py": [imports.split()[1].split(".")[0]]}
