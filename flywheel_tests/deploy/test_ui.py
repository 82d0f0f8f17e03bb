"""The Dagster UI as a person sees it: a real dagster-webserver over a small lake, read through its
GraphQL API and in headless Chromium (Debian's package, which .ci/run installs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from flywheel_assets.collector.server import free_port
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.cli import ROOT, flywheel
from flywheel_tests.support.records import TEST_HASH_KEY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LINEAGE = [
    ("raw_logs", "redacted_logs"),
    ("redacted_logs", "tagged_rows"),
    *(("tagged_rows", s) for s in ("eval_cases", "sft_set", "dpo_set", "kto_set")),
    *((s, "training_snapshot") for s in ("eval_cases", "sft_set", "dpo_set", "kto_set")),
    ("training_snapshot", "lora_adapter"),
    ("lora_adapter", "candidate_eval"),
    ("candidate_eval", "model_registry"),
]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = {
        "DAGSTER_HOME": str(home),
        "FLYWHEEL_LANDING": str(root / "landing"),
        "FLYWHEEL_LAKE": str(root / "lake"),
        "FLYWHEEL_HASH_KEY": TEST_HASH_KEY,
    }
    write_sample_landing(root / "landing", n_interactions=300, seed=3)
    out = flywheel("run", env=env)  # recorded in DAGSTER_HOME, so the UI shows materializations
    assert out.returncode == 0, out.stderr[-2000:]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml"]
        + ["-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=open(root / "webserver.log", "wb"),  # noqa: SIM115 - owned by the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_code_location(url, process, root / "webserver.log")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the webserver's code-server child too
        process.wait()


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def _wait_for_code_location(url: str, process, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            nodes = _graphql(url, "{ assetNodes { id } }")["assetNodes"]
            if nodes:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the webserver did not load the code location: {log.read_text()[-3000:]}")


ASSETS_QUERY = """
{ assetNodes {
    assetKey { path } groupName description
    dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name description } } }
} }
"""


def test_graphql_draws_the_lineage_in_the_flywheels_groups(webserver):
    nodes = _graphql(webserver, ASSETS_QUERY)["assetNodes"]
    by_name = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    deps = {name: {"/".join(d["path"]) for d in n["dependencyKeys"]} for name, n in by_name.items()}
    for upstream, downstream in LINEAGE:
        assert upstream in deps[downstream], f"{upstream} -> {downstream} is not drawn"
    groups = {n["groupName"] for n in nodes}
    assert groups == {"ingest", "privacy", "curation", "monitoring", "training", "versioning"}
    for name, node in by_name.items():
        assert node["description"], f"{name} has no description"
        for check in node["assetChecksOrError"].get("checks", []):
            assert check["description"], f"check {check['name']} on {name} has no description"


def test_jobs_sensors_and_schedules_are_described_in_the_ui(webserver):
    query = """
    { repositoriesOrError { ... on RepositoryConnection { nodes {
        jobs { name description }
        sensors { name description }
        schedules { name description }
    } } } }
    """
    [repo] = _graphql(webserver, query)["repositoriesOrError"]["nodes"]
    for kind in ("jobs", "sensors", "schedules"):
        for item in repo[kind]:
            if item["name"] != "__ASSET_JOB":
                assert item["description"], f"{kind[:-1]} {item['name']} has no description"


def test_materializations_carry_version_counts_and_a_redacted_preview(webserver):
    query = """
    { assetOrError(assetKey: {path: ["redacted_logs"]}) { ... on Asset {
        assetMaterializations(limit: 1) { metadataEntries {
            label
            ... on MarkdownMetadataEntry { mdStr }
            ... on IntMetadataEntry { intValue }
        } }
    } } }
    """
    [mat] = _graphql(webserver, query)["assetOrError"]["assetMaterializations"]
    entries = {e["label"]: e for e in mat["metadataEntries"]}
    assert entries["delta_version"]["intValue"] >= 1
    assert entries["dagster/row_count"]["intValue"] > 0
    preview = entries["preview"]["mdStr"]
    # A personal table's preview shows ids, times and numbers only: erasure cannot reach the
    # event log, so no user's text, even redacted, is kept there.
    header = preview.splitlines()[0]
    assert header.startswith("| request_id |") and "prompt" not in header, header
    assert len(preview.splitlines()) == 2 + 5
    assert "@" not in preview
    raw = _graphql(webserver, query.replace("redacted_logs", "raw_logs"))["assetOrError"]
    labels = {e["label"] for e in raw["assetMaterializations"][0]["metadataEntries"]}
    assert "preview" not in labels  # raw text is never shown


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed")
def test_the_asset_graph_renders_in_a_real_browser(webserver, tmp_path):
    assert CHROMIUM, "chromium is not installed (.ci/run installs Debian's chromium)"
    # FLYWHEEL_SCREENSHOTS=docs/images refreshes the README's picture.
    folder = Path(os.environ.get("FLYWHEEL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "lineage.png"
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            "--virtual-time-budget=20000",
        ]
        groups = _render(flags, f"{webserver}/asset-groups")
        lineage_page = f"{webserver}/assets/model_registry?view=lineage&lineageScope=upstream"
        lineage = _render(flags, f"{lineage_page}&lineageDepth=10", screenshot=shot)
    # The global lineage: every group, collapsed.
    for group in ("ingest", "privacy", "curation", "monitoring", "training", "versioning"):
        assert f">{group}<" in groups, f"group {group} is not drawn on /asset-groups"
    # Everything model_registry was built from, one box per asset.
    for _, name in [(None, "raw_logs"), *LINEAGE]:
        assert f">{name}<" in lineage, f"{name} is not drawn upstream of model_registry"
    assert shot.exists() and shot.stat().st_size > 20_000


def _render(flags: list[str], page: str, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and, if asked, a screenshot of it)."""
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    if screenshot is not None:
        subprocess.run(
            [*flags, f"--screenshot={screenshot}", page], capture_output=True, timeout=120
        )
    return dom.stdout
