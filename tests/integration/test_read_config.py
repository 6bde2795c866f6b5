"""read-config: settings from a config file in git at one revision, over the params."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def repo_with(tmp_path: Path, config: str | None) -> tuple[Path, str]:
    work = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README.md").write_text("a model\n")
    if config is not None:
        (work / ".tekton-mlops.yaml").write_text(config)
    git = ["git", "-C", str(work), "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "config"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return work, sha.stdout.strip()


def test_the_file_wins_over_the_params_and_names_the_commit(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    work, sha = repo_with(
        tmp_path, "dataset-uri: s3://d/iris.csv\ntarget-column: species\nseed: 7\n"
    )
    read = run_step(
        "read-config", f"--repo-url={work.as_uri()}", f"--revision={sha}",
        "--estimator=random-forest-classifier", "--seed=1", "--target-column=label",
    )  # fmt: skip
    assert read.exit_code == 0, read.output
    assert read.results["dataset-uri"] == "s3://d/iris.csv"
    assert read.results["target-column"] == "species"  # the file wins
    assert read.results["seed"] == "7"
    assert read.results["estimator"] == "random-forest-classifier"  # the param, not set in the file
    assert read.results["CHAINS-GIT_URL"] == work.as_uri()
    assert read.results["CHAINS-GIT_COMMIT"] == sha
    assert read.results["config-digest"].startswith("sha256:")


def test_without_a_repository_the_params_pass_through(run_step) -> None:  # type: ignore[no-untyped-def]
    read = run_step("read-config", "--dataset-uri=file:///d.csv", "--target-column=y")
    assert read.exit_code == 0, read.output
    assert read.results["thresholds"] == '{"accuracy":">=0.9"}'
    assert read.results["CHAINS-GIT_COMMIT"] == ""


@pytest.mark.parametrize(
    ("config", "phrase"),
    [
        ("estimator: svm\n", ": estimator='svm': must be one of"),
        ("learning-rate: 3\n", "unknown setting(s) learning-rate"),
        ("[1, 2\n", "not YAML"),
        ("- a\n- b\n", "must be a mapping of settings"),
        (None, "no such file at that revision"),
        ("dataset-uri: ftp://x/y\n", ": dataset-uri='ftp://x/y': must be"),
    ],
)
def test_a_bad_config_fails_with_one_clear_line(run_step, tmp_path, config, phrase) -> None:  # type: ignore[no-untyped-def]
    work, sha = repo_with(tmp_path, config)
    read = run_step(
        "read-config", f"--repo-url={work}", f"--revision={sha}", "--target-column=y",
        "--dataset-uri=file:///d.csv",
    )  # fmt: skip
    assert read.exit_code == 1
    assert phrase in read.output
    assert read.results == {}


def test_an_unknown_revision_is_named(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    work, _ = repo_with(tmp_path, "seed: 1\n")
    read = run_step("read-config", f"--repo-url={work}", "--revision=nope")
    assert read.exit_code == 1
    assert "no commit, branch or tag 'nope'" in read.output
