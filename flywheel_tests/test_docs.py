"""The README's examples work as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flywheel_assets.privacy.pii import Detector, PatternSpec

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_patterns_example_loads_and_redacts():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```json\n(.*?)```", readme, re.S).group(1)
    detector = Detector([PatternSpec.from_dict(p) for p in json.loads(block)])
    text, counts = detector.redact("I am EMP-123456, acct 4111111111111111 please")
    assert text == "I am [EMPLOYEE_ID], acct [ACCOUNT] please"
    assert counts == {"employee_id": 1, "account": 1}


def test_every_reason_code_is_documented_in_the_contract():
    from flywheel_assets.ingest.contract import Reason

    contract = (ROOT / "docs" / "CONTRACT.md").read_text()
    for reason in Reason:
        assert f"`{reason.value}`" in contract, reason


def test_every_table_is_described_in_the_readme():
    from flywheel_assets.runner import dataset_tables

    readme = (ROOT / "README.md").read_text()
    for table in dataset_tables():
        assert f"| `{table}` |" in readme, table


@pytest.mark.slow
def test_the_readme_summary_is_what_make_run_prints(tmp_path):
    from .test_cli import flywheel

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("```\nsample landing zone written") + 4 :]
    block = block[: block.index("```")]
    landing, lake = str(tmp_path / "data" / "landing"), str(tmp_path / "data" / "lake")
    sample = flywheel("sample", "--if-empty", "--landing", landing, "--start", "2026-11-01")
    run = flywheel("run", "--landing", landing, "--lake", lake)
    assert sample.returncode == 0 and run.returncode == 0, run.stderr
    printed = (sample.stdout + run.stdout).replace(landing, "data/landing")
    assert printed.strip() == block.strip()
