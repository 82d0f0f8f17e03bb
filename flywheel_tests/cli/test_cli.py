"""The `flywheel` command as a user runs it: a real subprocess over real files and tables."""

from __future__ import annotations

import pytest

from flywheel_assets.cli import build_parser
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.cli import flywheel, parse_table
from flywheel_tests.support.records import interaction, write_lines


@pytest.mark.slow
def test_run_on_the_sample_prints_the_exact_summary(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    manifest = write_sample_landing(landing, n_interactions=300, seed=3)

    out = flywheel("run", "--landing", str(landing), "--lake", str(lake))

    assert out.returncode == 0, out.stderr
    tables = parse_table(out.stdout, "table")
    assert tables["raw_logs"][1:] == [
        str(manifest.valid["interactions"]),
        f"+{manifest.valid['interactions']}",
    ]
    assert tables["raw_feedback"][1] == str(manifest.valid["feedback"])
    quarantined = sum(sum(m.values()) for m in manifest.malformed.values())
    assert tables["quarantine"][1] == str(quarantined)
    streams = parse_table(out.stdout, "stream")
    for stream, cells in streams.items():
        files, lines, valid, bad, dups, erased = map(int, cells)
        assert files == len(manifest.files[stream])
        assert lines == manifest.lines[stream]
        assert (valid, bad, dups, erased) == (
            manifest.valid[stream],
            sum(manifest.malformed[stream].values()),
            manifest.duplicates[stream],
            0,
        )

    # The sample's users are unhappy enough to trip the drift monitor, whose events go straight
    # into drift_events: the next run tags the rows in their windows, the one after has nothing new.
    assert "drift_monitor stored" in out.stdout
    assert int(tables["drift_events"][1]) > manifest.valid["drift_events"]
    monitor_run = flywheel("run", "--landing", str(landing), "--lake", str(lake))
    assert monitor_run.returncode == 0, monitor_run.stderr
    assert "nothing committed" in monitor_run.stdout
    retagged = parse_table(monitor_run.stdout, "table")
    assert int(retagged["tagged_rows"][0]) > int(tables["tagged_rows"][0])
    again = flywheel("run", "--landing", str(landing), "--lake", str(lake))
    assert again.returncode == 0, again.stderr
    assert "nothing committed" in again.stdout
    final = parse_table(again.stdout, "table")
    for table in ("raw_logs", "tagged_rows", "drift_monitor", "drift_events"):
        assert final[table][0] == retagged[table][0], table

    listed = flywheel("tables", "--lake", str(lake))
    assert parse_table(listed.stdout, "table")["raw_logs"] == tables["raw_logs"][:2]


@pytest.mark.slow
def test_environment_variables_choose_landing_and_lake(tmp_path):
    landing, lake = tmp_path / "in", tmp_path / "out"
    write_lines(landing, "interactions/a.jsonl", [interaction("r1")])
    out = flywheel("run", env={"FLYWHEEL_LANDING": str(landing), "FLYWHEEL_LAKE": str(lake)})
    assert out.returncode == 0, out.stderr
    assert parse_table(out.stdout, "table")["raw_logs"][1] == "1"
    assert (lake / "raw_logs" / "_delta_log").is_dir()


@pytest.mark.slow
def test_select_runs_only_the_selection(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    write_lines(landing, "interactions/a.jsonl", [interaction("r1")])
    out = flywheel("run", "--landing", str(landing), "--lake", str(lake), "--select", "raw_logs")
    assert out.returncode == 0, out.stderr
    assert "raw_logs" in parse_table(out.stdout, "table")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--select", "no_such_table"], "no_such_table"),
        (["run", "--select", "group:"], "invalid --select"),
    ],
)
def test_failures_exit_non_zero_with_one_line(tmp_path, args, message):
    out = flywheel(*args, "--landing", str(tmp_path / "l"), "--lake", str(tmp_path / "k"))
    assert out.returncode == 1
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flywheel run: error:") and message in err[0]


@pytest.mark.slow
def test_a_failing_check_fails_the_run_with_its_name(tmp_path):
    from deltalake import write_deltalake

    from flywheel_assets.lake.tables import Lake

    landing, lake_dir = tmp_path / "landing", tmp_path / "lake"
    write_lines(landing, "interactions/a.jsonl", [interaction("r1")])
    assert flywheel("run", "--landing", str(landing), "--lake", str(lake_dir)).returncode == 0
    lake = Lake(str(lake_dir))
    write_deltalake(lake.uri("raw_logs"), lake.read("raw_logs"), mode="append")

    out = flywheel("run", "--landing", str(landing), "--lake", str(lake_dir))

    assert out.returncode == 1
    assert "ids_are_unique" in out.stderr and "raw_logs" in out.stderr


def test_sample_if_empty_leaves_existing_landing_alone(tmp_path, capsys):
    from flywheel_assets.cli import main

    landing = tmp_path / "landing"
    write_lines(landing, "interactions/a.jsonl", [interaction("r1")])
    assert main(["sample", "--landing", str(landing), "--if-empty"]) == 0
    assert "left as it is" in capsys.readouterr().out
    assert sorted(p.name for p in landing.rglob("*.jsonl*")) == ["a.jsonl"]


def test_sample_writes_every_stream(tmp_path, capsys):
    from flywheel_assets.cli import main

    assert main(["sample", "--landing", str(tmp_path / "l"), "--n", "50"]) == 0
    assert {p.name for p in (tmp_path / "l").iterdir()} == {
        "interactions",
        "feedback",
        "annotations",
        "drift_events",
    }


def subcommands() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_every_command_has_a_description_and_every_option_help():
    # That each is documented in docs/cli.md is test_docs' to check.
    commands = subcommands()
    assert {"run", "tables", "sample"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, name
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.dest} has no help"


def test_help_lists_every_command():
    out = flywheel("--help")
    assert out.returncode == 0
    for name in subcommands():
        assert name in out.stdout


def test_the_sample_ends_today_unless_a_start_is_given(tmp_path, capsys):
    import json as _json
    from datetime import UTC, datetime, timedelta

    from flywheel_assets.cli import main

    assert main(["sample", "--landing", str(tmp_path / "a"), "--n", "30", "--days", "3"]) == 0
    stamps = []
    for path in (tmp_path / "a" / "interactions").glob("*.jsonl"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                stamps.append(datetime.fromisoformat(_json.loads(line)["ts"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # the sample's malformed lines
    now = datetime.now(UTC)
    assert stamps and all(now - timedelta(days=4) <= s <= now + timedelta(days=1) for s in stamps)

    args = ["sample", "--landing", str(tmp_path / "b"), "--n", "30", "--start", "2026-01-01"]
    assert main(args) == 0
    first = (tmp_path / "b" / "interactions").glob("*.jsonl")
    assert any('"ts": "2026-01-' in p.read_text(errors="replace") for p in first)
    with pytest.raises(SystemExit):
        main(["sample", "--start", "yesterday"])
    assert "not a YYYY-MM-DD date" in capsys.readouterr().err
