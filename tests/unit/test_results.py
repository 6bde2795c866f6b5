"""Tekton results: file format and the 4096-byte termination-message budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tekton_mlops.errors import ResultsError
from tekton_mlops.results import RESULTS_BUDGET, termination_message_size, write_results


def test_results_are_written_without_trailing_newline(tmp_path: Path) -> None:
    write_results(tmp_path, {"passed": "true", "uri": {"uri": "s3://b/k", "digest": "sha256:1"}})
    assert (tmp_path / "passed").read_bytes() == b"true"
    assert json.loads((tmp_path / "uri").read_text()) == {"uri": "s3://b/k", "digest": "sha256:1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passed", "uri"]


def test_size_is_measured_as_tekton_encodes_it() -> None:
    # The entrypoint's termination message: [{"key":…,"value":…,"type":1}]
    assert termination_message_size({"a": "xy"}) == len('[{"key":"a","value":"xy","type":1}]')


def test_results_over_budget_write_nothing(tmp_path: Path) -> None:
    results = {"small": "ok", "big": "x" * RESULTS_BUDGET}
    with pytest.raises(ResultsError, match=r"over Tekton's 4096-byte budget; largest: big"):
        write_results(tmp_path / "results", results)
    assert not (tmp_path / "results").exists()


def test_results_just_under_budget_are_written(tmp_path: Path) -> None:
    overhead = termination_message_size({"r": ""})
    write_results(tmp_path, {"r": "x" * (RESULTS_BUDGET - overhead)})
    assert len((tmp_path / "r").read_text()) == RESULTS_BUDGET - overhead


def test_a_step_run_by_hand_prints_its_results_and_creates_nothing(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    assert not Path("/tekton").exists(), "this test needs a machine without /tekton"
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    cli = str(Path(sys.executable).with_name("tekton-mlops"))
    env = {k: v for k, v in os.environ.items() if k != "TEKTON_RESULTS_DIR"}
    done = subprocess.run(
        [cli, "fetch-data", f"--source=file://{data}", f"--output={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    printed = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert printed["file-count"] == "1"
    assert printed["dataset-digest"].startswith("sha256:")
    assert not Path("/tekton").exists()


def test_tekton_results_dir_from_the_environment(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    cli = str(Path(sys.executable).with_name("tekton-mlops"))
    env = {**os.environ, "TEKTON_RESULTS_DIR": str(tmp_path / "results")}
    done = subprocess.run(
        [cli, "fetch-data", f"--source=file://{data}", f"--output={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert (tmp_path / "results" / "file-count").read_text() == "1"
