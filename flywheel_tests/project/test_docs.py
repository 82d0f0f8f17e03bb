"""The docs are tested like code: their examples work, and they name every table, reason code and
command the code has."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from flywheel_assets.privacy.pii import Detector, PatternSpec
from flywheel_tests.support.cli import ROOT, flywheel

DOCS = ROOT / "docs"
README_MAX_LINES = 150
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_patterns_example_in_the_privacy_docs_loads_and_redacts():
    match = re.search(r"```json\n(.*?)```", _read(DOCS / "privacy.md"), re.S)
    assert match is not None, "docs/privacy.md has no ```json block"
    detector = Detector([PatternSpec.from_dict(p) for p in json.loads(match.group(1))])
    text, counts = detector.redact("I am EMP-123456, acct 4111111111111111 please")
    assert text == "I am [EMPLOYEE_ID], acct [ACCOUNT] please"
    assert counts == {"employee_id": 1, "account": 1}


def test_every_reason_code_is_documented_in_the_contract():
    from flywheel_assets.contract import Reason

    contract = _read(DOCS / "CONTRACT.md")
    assert list(Reason)
    for reason in Reason:
        assert f"`{reason.value}`" in contract, reason


def test_every_table_is_described_in_the_tables_page():
    from flywheel_assets.catalog import TABLES

    tables = _read(DOCS / "tables.md")
    assert TABLES
    for entry in TABLES:
        assert f"| `{entry.name}` |" in tables, entry.name


def _subcommands() -> dict[str, str | None]:
    """Every `flywheel` subcommand with its help text, from the real parser."""
    from flywheel_assets.cli import build_parser

    commands: dict[str, str | None] = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name in action.choices:
                commands[name] = helps.get(name)
    return commands


def test_every_cli_command_is_documented_and_has_help():
    commands = _subcommands()
    assert commands, "the parser has no subcommands"
    cli = _read(DOCS / "cli.md")
    for name, help_text in commands.items():
        # `flywheel rollback` must not pass on the strength of `flywheel rollback-model` alone.
        assert re.search(rf"`flywheel {re.escape(name)}(?![\w-])", cli), name
        assert help_text and help_text.strip(), f"flywheel {name} has no help text"


def _relative_links(text: str) -> list[str]:
    # Code blocks and inline code hold examples, not links.
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s), mailto and same-page anchors
        targets.append(target.split("#", 1)[0])
    return targets


def test_the_link_finder_sees_links_and_images_but_not_urls_or_code():
    text = (
        "[a](docs/a.md#part) ![b](images/b.png) [c](https://example.com) [d](#here)\n"
        "`[e](not/a/link.md)`\n```\n[f](also/not.md)\n```\n"
    )
    assert _relative_links(text) == ["docs/a.md", "images/b.png"]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file_that_exists(page):
    missing = [t for t in _relative_links(_read(page)) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_readme_is_a_front_door():
    lines = _read(ROOT / "README.md").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_links_every_docs_page():
    readme = _read(ROOT / "README.md")
    linked = set(_relative_links(readme))
    for page in sorted(DOCS.glob("*.md")):
        assert f"docs/{page.name}" in linked, page.name


@pytest.mark.slow
def test_the_readme_summary_is_what_make_run_prints(tmp_path):
    readme = _read(ROOT / "README.md")
    block = readme[readme.index("```\nsample landing zone written") + 4 :]
    block = block[: block.index("```")]
    landing, lake = str(tmp_path / "data" / "landing"), str(tmp_path / "data" / "lake")
    sample = flywheel("sample", "--if-empty", "--landing", landing, "--start", "2026-11-01")
    run = flywheel("run", "--landing", landing, "--lake", lake)
    assert sample.returncode == 0 and run.returncode == 0, run.stderr
    printed = (sample.stdout + run.stdout).replace(landing, "data/landing")
    assert printed.strip() == block.strip()
