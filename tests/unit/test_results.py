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


def test_values_are_encoded_as_tekton_reads_them() -> None:
    from tekton_mlops.results import encode

    assert encode("a b\n") == "a b\n"  # strings exactly as they are
    assert encode(["b", "a"]) == '["b","a"]'  # arrays keep their order
    assert encode({"uri": "s3://b/k", "digest": "sha256:1"}) == (
        '{"digest":"sha256:1","uri":"s3://b/k"}'  # objects compact, keys sorted
    )


def test_characters_cost_what_go_writes_for_them() -> None:
    # Tekton's entrypoint marshals with Go: <, > and & as \u003c-style escapes (6 bytes),
    # other non-ASCII as UTF-8; Python's default json would count both the other way.
    def size(value: str) -> int:
        return termination_message_size({"t": value})

    empty = size("")
    assert size(">=0.9") - empty == len("\\u003e=0.9")
    assert size("a<b&c") - empty == len("a\\u003cb\\u0026c")
    assert size("é") - empty == 2
    assert size("\u2028") - empty == 6
    assert size('"\\') - empty == 4  # quote and backslash escaped
    assert size("\udce9") - empty == 3  # an undecodable byte, U+FFFD in Go
    assert termination_message_size({"a": "x", "b": ["y"]}) == len(
        '[{"key":"a","value":"x","type":1},{"key":"b","value":"[\\"y\\"]","type":1}]'
    )


def test_the_budget_is_inclusive_and_names_the_three_largest(tmp_path: Path) -> None:
    from tekton_mlops.results import check_budget

    results = {"a": "x" * 10, "b": "y" * 30, "c": "z" * 20, "d": "w" * 5}
    exact = termination_message_size(results)
    check_budget(results, budget=exact)  # at the budget: fits
    with pytest.raises(ResultsError) as refused:
        check_budget(results, budget=exact - 1)
    assert str(refused.value) == (
        f"results take {exact} bytes, over Tekton's {exact - 1}-byte budget; "
        "largest: b (30 B), c (20 B), a (10 B). "
        "Large outputs belong in a workspace file, with its path or digest as the result"
    )


def test_sizes_in_the_message_are_bytes(tmp_path: Path) -> None:
    from tekton_mlops.results import check_budget

    with pytest.raises(ResultsError, match=r"largest: u \(200 B\), a \(1 B\)"):
        check_budget({"u": "é" * 100, "a": "x"}, budget=10)


def test_without_a_results_dir_a_pod_gets_tekton_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tekton_mlops.results as module

    pod_results = tmp_path / "tekton" / "results"
    pod_results.mkdir(parents=True)
    monkeypatch.setattr(module, "TEKTON_RESULTS", pod_results)
    write_results(None, {"passed": "true", "list": ["a"]})
    assert (pod_results / "passed").read_text() == "true"
    assert (pod_results / "list").read_text() == '["a"]'
    assert sorted(p.name for p in pod_results.iterdir()) == ["list", "passed"]  # no temp files
    assert capsys.readouterr().out == ""

    monkeypatch.setattr(module, "TEKTON_RESULTS", tmp_path / "absent")
    write_results(None, {"passed": "true", "uri": {"k": "v"}})
    assert capsys.readouterr().out == 'passed=true\nuri={"k":"v"}\n'
    assert not (tmp_path / "absent").exists()


def test_a_results_dir_is_created_and_results_replaced(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "results"
    write_results(target, {"r": "one"})
    write_results(target, {"r": "two"})
    assert (target / "r").read_text() == "two"
    assert [p.name for p in target.iterdir()] == ["r"]
