"""The package's shape: the import graph has no cycle, the shared layer imports no stage, pure
modules import no Dagster, and each stage's assets sit in the group named after its folder. The
tests' shape: no test module imports another or conftest; what they share is in support/."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import dagster as dg
import pytest

from flywheel_tests.support.cli import ROOT

PACKAGE = ROOT / "flywheel_assets"
SHARED = {"lake", "contract", "catalog", "governance", "settings", "gcpause", "reports"}
SHARED_DAGSTER = {"resources", "metadata"}  # the shared layer's Dagster side
STAGES = {"ingest", "privacy", "curation", "monitoring", "training", "versioning", "operations"}
# The Dagster file names of a stage folder; every other module of a stage is plain logic.
DAGSTER_FILES = {"assets", "checks", "jobs", "sensors", "schedules", "resources", "defs"}


def _module_name(path: Path) -> str:
    parts = ["flywheel_assets", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str) -> set[str]:
    """Every project module `module` imports, at the top or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m in MODULES}


GRAPH = {m: imports_of(m) for m in MODULES}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_shared_layer_imports_no_stage_and_nothing_above_it():
    allowed = SHARED | SHARED_DAGSTER
    for module, targets in GRAPH.items():
        layer = _top(module)
        if layer in SHARED:
            bad = {t for t in targets if _top(t) not in SHARED}
        elif layer in SHARED_DAGSTER:
            bad = {t for t in targets if _top(t) not in allowed}
        else:
            continue
        assert not bad, f"{module} imports {sorted(bad)}"


def test_stages_import_neither_the_cli_nor_the_code_location():
    above = {"cli", "definitions", "collector", "sample", "review"}
    for module, targets in GRAPH.items():
        if _top(module) in STAGES:
            bad = {t for t in targets if _top(t) in above}
            assert not bad, f"{module} imports {sorted(bad)}"


def _imports_dagster(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        if any(n == "dagster" or n.startswith("dagster.") for n in names):
            return True
    return False


def test_plain_logic_modules_import_no_dagster():
    for module, path in MODULES.items():
        layer = _top(module)
        plain = layer in SHARED or (layer in STAGES and path.stem not in DAGSTER_FILES)
        if plain:
            assert not _imports_dagster(path), f"{module} imports dagster"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stages_assets_are_in_the_group_named_after_its_folder(stage):
    defs = importlib.import_module(f"flywheel_assets.{stage}.defs").defs
    for asset in defs.assets or []:
        specs = asset.specs if isinstance(asset, dg.AssetsDefinition) else [asset]
        for spec in specs:
            assert spec.group_name == stage, f"{spec.key.to_user_string()} in {spec.group_name}"


def test_every_module_says_what_it_is_for():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        if path.name == "__main__.py":
            continue
        assert ast.get_docstring(tree), f"{module} has no module docstring"


TESTS = ROOT / "flywheel_tests"
# A hook named by string, "package.module:function", as load_judge and the safety classifier take.
HOOK = re.compile(r"flywheel_tests(?:\.\w+)+:\w+")


def _is_test_module(dotted: str) -> bool:
    return any(part == "conftest" or part.startswith("test_") for part in dotted.split("."))


def imports_of_tests(source: str) -> list[str]:
    """What `source` imports, or names as a hook, that is a test module or conftest; sorted."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if _is_test_module(module.lstrip(".")):
                found.append(module)
            else:  # `from . import test_cli` imports the module under its own name
                base = module if module.endswith(".") else f"{module}."
                found += [base + a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            hook = HOOK.fullmatch(node.value)
            if hook and _is_test_module(node.value.partition(":")[0]):
                found.append(node.value)
    return sorted(found)


def test_the_test_import_finder_flags_test_modules_and_conftest():
    # Joined here, so this module holds no hook string that names a test module itself.
    hook = ":".join(["flywheel_tests.training.test_training_gate", "length_judge"])
    source = (
        "from .conftest import feedback\n"
        "import flywheel_tests.cli.test_cli\n"
        "from . import test_ingest_assets\n"
        "from ..ingest.test_ingest import run\n"
        "def f():\n"
        "    from flywheel_tests.conftest import lake\n"
        f"JUDGE = {hook!r}\n"
    )
    assert imports_of_tests(source) == sorted(
        [
            ".conftest",
            "flywheel_tests.cli.test_cli",
            ".test_ingest_assets",
            "..ingest.test_ingest",
            "flywheel_tests.conftest",
            hook,
        ]
    )
    helpers = (
        "from flywheel_tests.support.cli import flywheel\n"
        "import testing, conftest_like\n"
        "JUDGE = 'flywheel_tests.support.retrain:length_judge'\n"
    )
    assert imports_of_tests(helpers) == []


def test_no_test_module_imports_another_test_module_or_conftest():
    modules = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)
    assert TESTS / "conftest.py" in modules and len(modules) > 40
    for path in modules:
        found = imports_of_tests(path.read_text())
        assert not found, f"{path.relative_to(ROOT)} imports {found}; shared helpers go in support/"


def test_every_test_folder_is_a_package():
    # Without __init__.py, test modules of one basename in two folders collide at collection.
    folders = {p.parent for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts}
    assert {TESTS / "support", TESTS / "ingest"} <= folders
    for folder in sorted(folders):
        assert (folder / "__init__.py").is_file(), f"{folder.relative_to(ROOT)} has no __init__.py"
