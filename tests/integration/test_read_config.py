"""read-config: settings from a config file in git at one revision, over the params."""

from __future__ import annotations

import hashlib
import json
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
    assert read.results["CHAINS-GIT_COMMIT"] == sha  # git rev-parse HEAD of that repository
    config = (work / ".tekton-mlops.yaml").read_bytes()
    assert read.results["config-digest"] == "sha256:" + hashlib.sha256(config).hexdigest()


def test_a_branch_resolves_to_its_commit_and_the_file_at_it(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    work, first = repo_with(tmp_path, "seed: 1\n")
    (work / ".tekton-mlops.yaml").write_text("seed: 2\n")
    git = ["git", "-C", str(work), "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    subprocess.run([*git, "commit", "-qam", "seed 2"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "main"], check=True, capture_output=True, text=True
    ).stdout.strip()
    common = [f"--repo-url={work}", "--dataset-uri=file:///d.csv", "--target-column=y"]
    latest = run_step("read-config", *common, "--revision=main")
    assert latest.exit_code == 0, latest.output
    assert (latest.results["CHAINS-GIT_COMMIT"], latest.results["seed"]) == (head, "2")
    assert latest.results["config-digest"] == "sha256:" + hashlib.sha256(b"seed: 2\n").hexdigest()
    pinned = run_step("read-config", *common, f"--revision={first}")
    assert (pinned.results["CHAINS-GIT_COMMIT"], pinned.results["seed"]) == (first, "1")
    assert pinned.results["config-digest"] == "sha256:" + hashlib.sha256(b"seed: 1\n").hexdigest()


def test_settings_and_lineage_in_the_output_folder(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = "dataset-uri: s3://d/iris.csv\ntarget-column: species\nseed: 7\n"
    work, sha = repo_with(tmp_path, config)
    out = tmp_path / "config"
    read = run_step("read-config", f"--repo-url={work}", f"--revision={sha}", f"--output={out}")
    assert read.exit_code == 0, read.output
    settings = json.loads((out / "settings.json").read_text())
    # The file holds exactly the settings the results carry.
    carried = {k: v for k, v in read.results.items() if k in settings}
    assert settings == carried
    assert set(read.results) - set(settings) == {
        "config-digest", "CHAINS-GIT_URL", "CHAINS-GIT_COMMIT",
    }  # fmt: skip
    record = json.loads((out / ".mlops/lineage/read-config.intoto.json").read_text())
    assert record["predicate"]["buildDefinition"]["resolvedDependencies"] == [
        {"name": "repository", "uri": f"git+{work}", "digest": {"gitCommit": sha}},
        {"name": "config", "uri": f"git+{work}@{sha}#.tekton-mlops.yaml",
         "digest": {"sha256": hashlib.sha256(config.encode()).hexdigest()}},
    ]  # fmt: skip
    assert record["subject"] == [
        {"name": "settings", "digest": {"sha256": sha256_of(out / "settings.json")}}
    ]


def test_without_an_output_folder_nothing_is_written(run_step, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    read = run_step("read-config", "--dataset-uri=file:///d.csv", "--target-column=y")
    assert read.exit_code == 0, read.output
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("results-")] == []


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
