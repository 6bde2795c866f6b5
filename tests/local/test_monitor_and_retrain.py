"""The monitor-and-retrain loop on one machine: a live model, then rounds of current data.

A model trained on one month's data is deployed (the local target: a stable server whose
state lives in the claim model-deployments). Each round runs the catalog's local sample
through the executor with that month's labelled data:

1. the same distribution: nothing after detect-drift runs, the live server is untouched;
2. the features moved and the labels follow another rule (a concept shift): the model retrained
   on it beats the live one on held-out rows, is promoted, and the live endpoint now gets this
   month's rows right;
3. the features moved again under the same rule: drift, a retrained candidate, but no
   significant win over the model promoted in round 2, so the canary is rolled back.

Round 3 checks drift against what round 2's model was trained on, found through its lineage:
the training part the pipeline kept, so the loop closes on its own output. The Pipeline and its
Tasks resolve through the git resolver from a repository holding this checkout's catalog.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CLI, REPO

pytestmark = pytest.mark.integration

PROJECT_URL = "https://github.com/tekton-mlops/tekton-mlops.git"
SAMPLE = REPO / "catalog" / "pipeline" / "monitor-and-retrain" / "0.1" / "samples"
NAME = "drift-demo"
FEATURES = ["a", "b", "c", "d"]
#: The rules the labels follow: the first month's, then the one after the concept shift
#: (its weights sum to 0, so it labels the same wherever the features are centred).
FIRST_RULE = np.array([1.5, -1.0, 0.5, 0.0])
SECOND_RULE = np.array([-1.5, 1.0, 0.5, 0.0])
#: Every task that runs only when the data drifted (rollback-model is in finally).
RETRAINING = {
    "split-current", "keep-training-data", "fetch-training-data", "train-model",
    "evaluate-model", "sign-model", "verify-model", "push-model", "deploy-canary", "compare",
    "promote-model",
}  # fmt: skip


def month(path: Path, seed: int, centre: float, rule: np.ndarray, rows: int = 300) -> Path:
    """Labelled rows: features around ``centre``, label by ``rule`` around that centre
    (classes balanced), a little noise so that no model is perfect."""
    rng = np.random.default_rng(seed)
    features = rng.normal(centre, 1.0, (rows, len(FEATURES)))
    score = (features - centre) @ rule + rng.normal(0.0, 0.3, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        for row, label in zip(features.round(4), (score > 0).astype(int), strict=True):
            writer.writerow([*(float(v) for v in row), int(label)])
    return path


def step(*args: str) -> dict[str, str]:
    """Run a step as a process, as a user would; its results."""
    results = Path(next(a for a in args if a.startswith("--results-dir=")).split("=", 1)[1])
    done = subprocess.run([CLI, *args], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_text() for p in results.iterdir()}


def decisions(model_uri: str, public_key: Path, result: str) -> list[tuple[str, str, str]]:
    """The decisions ``lineage show`` finds beside a stored model: step, status and one result."""
    shown = subprocess.run([CLI, "lineage", "show", model_uri, f"--public-key={public_key}",
                            "-o", "json"], capture_output=True, text=True, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    return [
        (run["step"], run["status"], extra["annotations"].get(result, ""))
        for run in json.loads(shown.stdout)["steps"]
        for extra in run["byproducts"]
        if extra["name"] == "decision"
    ]


def catalog_repository(root: Path) -> Path:
    """A git repository holding this checkout's catalog as it is now, committed: what the
    git resolver of a cluster would read at a release."""
    shutil.copytree(REPO / "catalog", root / "catalog")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "catalog"]):
        subprocess.run(
            ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
            cwd=root, check=True, capture_output=True,
        )  # fmt: skip
    return root


class Stable:
    """The live deployment as the deployments folder holds it: the local target's stable slot."""

    def __init__(self, state: Path) -> None:
        self.folder = state / NAME / "stable"

    @property
    def url(self) -> str:
        return (self.folder / "url").read_text().strip()

    @property
    def pid(self) -> int:
        return int((self.folder / "pid").read_text())

    @property
    def record(self) -> dict[str, Any]:
        """deploy-model's lineage record of what the stable server was deployed from."""
        path = self.folder / ".mlops" / "lineage" / "deploy-model.intoto.json"
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    @property
    def deployed_uri(self) -> str:
        found = self.record["predicate"]["buildDefinition"]["resolvedDependencies"]
        return str(next(d["uri"] for d in found if d["name"] == "model"))

    @property
    def model_digest(self) -> str:
        onnx = (self.folder / "model" / "model.onnx").read_bytes()
        return "sha256:" + hashlib.sha256(onnx).hexdigest()


def alive(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A server killed but not yet reaped is a zombie (state Z): not serving.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def accuracy(url: str, data: Path) -> float:
    """How often the endpoint's label is the true one, over the rows of ``data``."""
    with data.open() as handle:
        rows = list(csv.DictReader(handle))
    matrix = [[float(r[f]) for f in FEATURES] for r in rows]
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [len(rows), 4], "data": matrix}]}
    request = urllib.request.Request(
        f"{url}/v2/models/{NAME}/infer", json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        outputs = {o["name"]: o["data"] for o in json.loads(response.read())["outputs"]}
    got = outputs["label"]
    return float(np.mean([int(r["label"]) == g for r, g in zip(rows, got, strict=True)]))


@pytest.fixture
def live(tmp_path: Path, cluster_secrets: Path):  # type: ignore[no-untyped-def]
    """The first month's model, trained, signed, pushed and deployed as the stable server in
    the claim the sample binds (the executor keeps claims in <run-dir>/../pvcs)."""
    state = tmp_path / "pvcs" / "model-deployments"
    data = month(tmp_path / "data" / "month-1.csv", seed=1, centre=0.0, rule=FIRST_RULE)
    key = cluster_secrets / "model-signing-key" / "private.pem"
    public = cluster_secrets / "model-verification-key" / "public.pem"
    work = tmp_path / "first"
    step("fetch-data", f"--source={data.as_uri()}", f"--output={work / 'data'}",
         f"--results-dir={work / 'r1'}")  # fmt: skip
    step("train-model", f"--data={work / 'data'}", "--target-column=label",
         f"--output={work / 'model'}", f"--results-dir={work / 'r2'}")  # fmt: skip
    step("sign-artifact", f"--path={work / 'model'}", f"--private-key={key}",
         f"--results-dir={work / 'r3'}")  # fmt: skip
    pushed = step("push-model", f"--path={work / 'model'}",
                  f"--destination={(tmp_path / 'models').as_uri()}",
                  f"--results-dir={work / 'r4'}")  # fmt: skip
    step("deploy-model", "--target=local", f"--name={NAME}",
         f"--model-uri={pushed['model-uri']}", f"--public-key={public}",
         f"--state-dir={state}", f"--results-dir={work / 'r5'}")  # fmt: skip
    yield Stable(state)
    from tekton_mlops.deploy import local

    for which in (local.CANARY, local.STABLE):
        local.stop(local.slot(state, NAME, which))


def test_drift_retrains_and_only_a_better_model_goes_live(  # type: ignore[no-untyped-def]
    tekton, tmp_path, cluster_secrets, live
) -> None:
    repository = catalog_repository(tmp_path / "repository")
    first_uri, first_pid = live.deployed_uri, live.pid

    def round_of(data: Path):  # type: ignore[no-untyped-def]
        return tekton(
            (SAMPLE / "run-locally.yaml").read_text(),
            "--git-mirror", f"{PROJECT_URL}={repository}",
            "--secrets-dir", str(cluster_secrets),
            # The data, the model and data stores live on this machine, outside any workspace.
            "--host-path", str(tmp_path),
            "--param", f"current-data-uri={data.as_uri()}",
            "--param", "target-column=label",
            "--param", "estimator=logistic-regression",
            "--param", f"model-name={NAME}",
            "--param", f"training-data-destination={(tmp_path / 'training-data').as_uri()}",
            "--param", f"model-destination={(tmp_path / 'models').as_uri()}",
            "--param", "slo-requests=20",
        )  # fmt: skip

    # 1. The same distribution: the check runs, nothing else; the live server is untouched.
    same = round_of(month(tmp_path / "data" / "same.csv", seed=2, centre=0.0, rule=FIRST_RULE))
    assert same.exit_code == 0, same.log
    assert same.results["drifted"] == "false"
    assert (same.results["retrained"], same.results["promoted"]) == ("false", "false")
    assert same.results["live-model-uri"] == first_uri
    assert set(same.skipped) == RETRAINING | {"rollback-model"}
    assert (live.deployed_uri, live.pid) == (first_uri, first_pid)
    assert alive(first_pid)
    assert not (live.folder.parent / "canary").exists()

    # 2. A concept shift: the live model gets this month wrong; the retrained one goes live.
    shifted = month(tmp_path / "data" / "shifted.csv", seed=3, centre=1.0, rule=SECOND_RULE)
    assert accuracy(live.url, shifted) < 0.6
    better = round_of(shifted)
    assert better.exit_code == 0, better.log
    assert better.results["drifted"] == "true"
    assert better.results["winner"] == "candidate", better.results["winner-reason"]
    assert (better.results["retrained"], better.results["promoted"]) == ("true", "true")
    assert "rollback-model" in better.skipped
    assert live.deployed_uri == better.results["model-uri"]  # the pushed, verified model
    assert live.model_digest == better.results["model-digest"]
    assert live.url == better.results["deployed-url"]
    assert not alive(first_pid)  # the first month's server was stopped
    assert accuracy(live.url, shifted) > 0.85
    # The new live model names the training part the pipeline kept: the next reference.
    lineage = live.folder / "model" / ".mlops" / "lineage" / "train-model.intoto.json"
    trained_on = json.loads(lineage.read_text())["predicate"]["buildDefinition"]
    dataset = next(d for d in trained_on["resolvedDependencies"] if d["name"] == "dataset")
    assert dataset["uri"].startswith((tmp_path / "training-data").as_uri() + "/sha256-")
    # Each decision is signed beside the model it is about: the drift beside the model that was
    # live, the comparison beside the candidate.
    public = cluster_secrets / "model-verification-key" / "public.pem"
    assert ("detect-drift", "verified", "true") in decisions(first_uri, public, "drifted")
    assert ("check-slo", "verified", "candidate") in decisions(
        better.results["model-uri"], public, "winner"
    )

    # 3. The features move again, the rule stays: drift, a candidate, but no better: rollback.
    second_uri, second_pid = live.deployed_uri, live.pid
    moved = round_of(month(tmp_path / "data" / "moved.csv", seed=4, centre=-1.0, rule=SECOND_RULE))
    assert moved.exit_code == 0, moved.log
    assert moved.results["drifted"] == "true"
    assert moved.results["retrained"] == "true"
    assert moved.results["winner"] != "candidate", moved.results["winner-reason"]
    assert moved.results["promoted"] == "false"
    assert "promote-model" in moved.skipped
    assert "rollback-model" not in moved.skipped
    assert moved.results["model-uri"] != second_uri  # a candidate was pushed and deployed
    assert (live.deployed_uri, live.pid) == (second_uri, second_pid)
    assert alive(second_pid)
    assert not (live.folder.parent / "canary").exists()  # the canary server is gone


def test_tests_run_yaml_retrains_from_s3(  # type: ignore[no-untyped-def]
    tekton, tmp_path, cluster_secrets, s3, s3_server
) -> None:
    """The catalog test: data, models and the kept training data in S3 (the moto server), so
    the live model's reference is fetched from the S3 URI its lineage names."""
    bucket, endpoint = "tekton-mlops-test", s3_server.endpoint
    s3.create_bucket(Bucket=bucket)
    first = month(tmp_path / "data" / "month-1.csv", seed=1, centre=0.0, rule=FIRST_RULE)
    s3.upload_file(str(first), bucket, "drift/month-1.csv")
    shifted = month(tmp_path / "data" / "current.csv", seed=3, centre=1.0, rule=SECOND_RULE)
    s3.upload_file(str(shifted), bucket, "drift/current.csv")
    state = tmp_path / "pvcs" / "monitor-and-retrain-test"
    work, key = tmp_path / "first", cluster_secrets / "model-signing-key" / "private.pem"
    s3_options = [f"--endpoint-url={endpoint}"]
    step("fetch-data", f"--source=s3://{bucket}/drift/month-1.csv", *s3_options,
         f"--output={work / 'data'}", f"--results-dir={work / 'r1'}")  # fmt: skip
    step("train-model", f"--data={work / 'data'}", "--target-column=label",
         f"--output={work / 'model'}", f"--results-dir={work / 'r2'}")  # fmt: skip
    step("sign-artifact", f"--path={work / 'model'}", f"--private-key={key}",
         f"--results-dir={work / 'r3'}")  # fmt: skip
    pushed = step("push-model", f"--path={work / 'model'}", *s3_options,
                  f"--destination=s3://{bucket}/drift/models",
                  f"--results-dir={work / 'r4'}")  # fmt: skip
    step("deploy-model", "--target=local", "--name=drift-test", *s3_options,
         f"--model-uri={pushed['model-uri']}",
         f"--public-key={cluster_secrets / 'model-verification-key' / 'public.pem'}",
         f"--state-dir={state}", f"--results-dir={work / 'r5'}")  # fmt: skip
    from tekton_mlops.deploy import local

    try:
        run = tekton(
            (REPO / "catalog/pipeline/monitor-and-retrain/0.1/tests/run.yaml").read_text(),
            "--git-mirror", f"{PROJECT_URL}={catalog_repository(tmp_path / 'repository')}",
            "--secrets-dir", str(cluster_secrets),
            "--param", f"s3-endpoint-url={endpoint}",
        )  # fmt: skip
        assert run.exit_code == 0, run.log
        assert (run.results["drifted"], run.results["promoted"]) == ("true", "true")
        assert run.results["model-uri"].startswith(f"s3://{bucket}/drift/models/sha256-")
        stable = state / "drift-test" / "stable"
        record = json.loads((stable / ".mlops/lineage/deploy-model.intoto.json").read_text())
        found = record["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert next(d["uri"] for d in found if d["name"] == "model") == run.results["model-uri"]
        name = run.object["metadata"]["name"]
        reference = tmp_path / "runs" / name / f"{name}-find-reference" / "logs" / "find.log"
        assert f"was trained on s3://{bucket}/drift/month-1.csv" in reference.read_text()
        trained = json.loads((stable / "model/.mlops/lineage/train-model.intoto.json").read_text())
        dataset = next(
            d for d in trained["predicate"]["buildDefinition"]["resolvedDependencies"]
            if d["name"] == "dataset"
        )  # fmt: skip
        assert dataset["uri"].startswith(f"s3://{bucket}/drift/training-data/sha256-")
    finally:
        for which in (local.CANARY, local.STABLE):
            local.stop(local.slot(state, "drift-test", which))
