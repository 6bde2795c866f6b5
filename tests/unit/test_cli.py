"""The CLI contract: exit codes, one-line errors, env vars, cheap start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tekton_mlops.params import step_names
from tests.conftest import CLI

HEAVY = ("boto3", "botocore", "sklearn", "onnxruntime", "onnx", "numpy", "jsonschema")


@pytest.mark.parametrize("step", step_names())
def test_help_imports_nothing_heavy(step: str) -> None:
    probe = (
        "import sys, json\n"
        "from tekton_mlops.cli import main\n"
        f"try:\n    main([{step!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert "--results-dir" in done.stdout


def test_options_come_from_environment(run_step, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "d.csv"
    source.write_text("a,b\n1,2\n")
    outcome = run_step(
        "fetch-data",
        env={"PARAM_SOURCE": source.as_uri(), "PARAM_OUTPUT": str(tmp_path / "out")},
    )
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "out" / "d.csv").read_text() == "a,b\n1,2\n"
    assert outcome.results["file-count"] == "1"


def fetch_missing_file(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """A step that validates fine and then fails at run time."""
    return subprocess.run(
        [
            CLI,
            "fetch-data",
            f"--source=file://{tmp_path}/missing.csv",
            f"--output={tmp_path}/o",
            f"--results-dir={tmp_path}/r",
            *extra,
        ],
        capture_output=True,
        text=True,
    )


def test_runtime_failure_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = fetch_missing_file(tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: file://{tmp_path}/missing.csv: no such file or directory"]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
    assert not (tmp_path / "r").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = fetch_missing_file(tmp_path, "--debug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr


def test_invalid_params_exit_2_listing_all(tmp_path: Path) -> None:
    done = subprocess.run(
        [CLI, "train-model", "--seed=-1", "--test-size=0.9", f"--results-dir={tmp_path}/r"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "train-model: 5 invalid parameter(s)" in done.stderr
    for expected in (
        "--data=''",
        "--output=''",
        "--target-column=''",
        "--seed='-1'",
        "--test-size='0.9'",
    ):
        assert expected in done.stderr
    assert not (tmp_path / "r").exists()


def test_version() -> None:
    done = subprocess.run([CLI, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("tekton-mlops, version 0.1.0")


#: One broken parameter per step; "{out}" is where the step would write.
BAD_INPUT = {
    "fetch-data": ["--source=s3://bucket/k.csv", "--max-concurrency=0", "--output={out}"],
    "train-model": ["--data=d.csv", "--target-column=y", "--estimator=svm", "--output={out}"],
    "evaluate-model": ["--model-path=m", "--data=d.csv", "--thresholds=[1]", "--output={out}"],
    "sign-artifact": ["--path={out}", "--private-key=k.pem", "--attest-lineage=maybe"],
    "verify-artifact": ["--path={out}", "--public-key=k.pub", "--expected-digest=12"],
    "push-model": ["--path={out}", "--destination=oci://r.example/m:1", "--max-concurrency=0"],
    "deploy-model": ["--name=Iris", "--model-uri=file://{out}", "--target=local"],
    "check-slo": ["--url=http://127.0.0.1:1", "--model=m", "--output={out}", "--concurrency=0"],
    "check-golden": [
        "--url=http://127.0.0.1:1",
        "--model=m",
        "--golden={out}",
        "--expected-column=y",
        "--output={out}",
        "--min-agreement=2",
    ],
    "check-mirror": ["--state-dir={out}", "--name=iris", "--output={out}", "--min-agreement=2"],
    "detect-drift": ["--model-path=m", "--current=c.csv", "--output={out}", "--ks-threshold=2"],
    "read-config": ["--repo-url={out}", "--deploy-target=moon"],
    "prepare-data": ["--data=d.csv", "--output={out}", "--spec={{}}", "--overwrite=maybe"],
    "tune-model": ["--data=d.csv", "--target-column=y", "--search-space={{}}", "--workers=0"],
    "cut-out": ["--target=local", "--name=iris", "--state-dir={out}", "--reason= "],
    "revoke-dataset": [
        "--digests=sha256:1",
        "--store=s",
        "--reason=r",
        "--signing-key=k",
        "--output={out}",
    ],
    "prepare-training": [
        "--data=d.csv",
        "--target-column=y",
        "--image=trainer:1.4",
        '--command=["python3"]',
        "--work-dir={out}",
    ],
    "finish-training": [
        "--data=d.csv",
        "--output={out}",
        "--target-column=y",
        "--image=trainer@sha256:" + "0" * 64,
        '--command=["python3"]',
        "--format=pickle",
    ],
    "verify-policy": [
        "--model-path={out}",
        "--public-key=k.pub",
        "--output={out}",
        "--rule-timeout=0",
    ],
}


@pytest.mark.parametrize("step", step_names())
def test_bad_input_changes_nothing(step: str, run_step, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    args = [arg.format(out=out) for arg in BAD_INPUT[step]]
    outcome = run_step(step, *args)
    assert outcome.exit_code == 2
    assert f"error: {step}: 1 invalid parameter(s)" in outcome.output
    assert outcome.results == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no results directory
