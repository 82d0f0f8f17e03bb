"""The client distribution (`client/`) installs into an app without Flywheel's dependencies: its
modules import only the standard library, and its pyproject declares no dependencies."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from flywheel_tests.support.cli import ROOT

CLIENT = ROOT / "client"
PACKAGE = "flywheel_client"


def imported_top_level(source: str) -> set[str]:
    """The top-level package of every absolute import in `source`, wherever the import sits."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.partition(".")[0])
    return names


def non_stdlib_imports(package: Path) -> dict[str, set[str]]:
    """Module path -> what it imports from outside the standard library and the package itself."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        outside = imported_top_level(path.read_text(encoding="utf-8"))
        outside -= sys.stdlib_module_names | {PACKAGE}
        if outside:
            found[path.relative_to(package).as_posix()] = outside
    return found


def test_the_client_imports_only_the_standard_library():
    assert sorted((CLIENT / PACKAGE).rglob("*.py")), f"no modules under {CLIENT / PACKAGE}"
    assert non_stdlib_imports(CLIENT / PACKAGE) == {}


def test_the_import_check_reports_third_party_imports(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.py").write_text(
        "from __future__ import annotations\nimport json, urllib.request\n"
    )
    (tmp_path / "sub" / "bad.py").write_text(
        "from . import ok\nimport pyarrow.compute as pc\n\n"
        "def f():\n    from dagster import asset\n"
    )
    assert non_stdlib_imports(tmp_path) == {"sub/bad.py": {"pyarrow", "dagster"}}


def test_the_client_distribution_declares_no_dependencies():
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "flywheel-client"
    assert project.get("dependencies") == []
