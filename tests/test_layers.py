"""The packages' imports point down only: ``classifier`` (the library) imports no other package of the project;
``training`` and ``service`` import ``classifier`` and never each other; ``laari`` (the command) may import all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("classifier", "training", "service", "laari")
ALLOWED = {"classifier": set(), "training": {"classifier"}, "service": {"classifier"},
           "laari": {"classifier", "training", "service"}}


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


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_only(package):
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = project_imports(path) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom training.batch import run_batch\nfrom . import x\n", encoding="utf-8")
    assert project_imports(module) == {"training"}
