"""The lineage store: push-model and deploy-model attach a model's attestations where it is
stored (docker-registry, moto S3, a folder); `tekton-mlops lineage show` verifies them and
draws the lineage back to the data; `lineage uses` finds the models trained on a dataset.

Two models are built once, as the Pipeline builds them: iris fetched, prepared (split) and
trained, evaluated and signed; breast cancer fetched and trained directly, then signed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tekton_mlops.cli import main
from tests.conftest import KeyPair
from tests.integration.tampering import INDEX, forged, swap_referrer

pytestmark = pytest.mark.integration

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
REVISION = "0123456789abcdef0123456789abcdef01234567"
RUN_ENV = {
    "TEKTON_MLOPS_SOURCE_URL": "https://git.example/ml/models",
    "TEKTON_MLOPS_SOURCE_REVISION": REVISION,
    "TEKTON_MLOPS_INVOCATION_ID": "train-and-deploy-run-7",
}


@dataclass(frozen=True)
class Built:
    model: Path
    source: Path  # the CSV fetch-data read
    fetched: str  # fetch-data's dataset-digest
    trained_on: str  # the digest train-model read (prepare-data's train part, or fetched)


def step(*args: str) -> dict[str, str]:
    """Run a step in-process as the Pipeline would; return its results."""
    results = Path(args[-1])
    outcome = CliRunner().invoke(main, [*args[:-1], f"--results-dir={results}"], env=RUN_ENV)
    assert outcome.exit_code == 0, outcome.output
    return {p.name: p.read_text() for p in results.iterdir()}


@pytest.fixture(scope="module")
def built(datasets, keys: KeyPair, tmp_path_factory) -> dict[str, Built]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("lineage")
    iris, cancer = root / "iris", root / "cancer"
    split = '{"split": {"method": "stratified", "column": "target", "test-size": 0.2, "seed": 1}}'
    fetched = step("fetch-data", f"--source={datasets['iris'].as_uri()}",
                   f"--output={iris}/data", f"{iris}/r1")  # fmt: skip
    prepared = step("prepare-data", f"--data={iris}/data", f"--output={iris}/prepared",
                    f"--spec={split}", f"{iris}/r2")  # fmt: skip
    step("train-model", f"--data={iris}/prepared/train", "--target-column=target",
         f"--output={iris}/model", '--hyperparameters={"max_iter": 500}', f"{iris}/r3")  # fmt: skip
    step("evaluate-model", f"--model-path={iris}/model", f"--data={iris}/prepared/test",
         f"--output={iris}/model", f"{iris}/r4")  # fmt: skip
    step("sign-artifact", f"--path={iris}/model", f"--private-key={keys.private}", f"{iris}/r5")
    other = step("fetch-data", f"--source={datasets['cancer'].as_uri()}",
                 f"--output={cancer}/data", f"{cancer}/r1")  # fmt: skip
    step("train-model", f"--data={cancer}/data", "--target-column=target",
         f"--output={cancer}/model", "--estimator=random-forest-classifier",
         '--hyperparameters={"n_estimators": 5}', f"{cancer}/r2")  # fmt: skip
    step("sign-artifact", f"--path={cancer}/model", f"--private-key={keys.private}",
         f"{cancer}/r3")  # fmt: skip
    return {
        "iris": Built(iris / "model", datasets["iris"], fetched["dataset-digest"],
                      prepared["dataset-digest"]),
        "cancer": Built(cancer / "model", datasets["cancer"], other["dataset-digest"],
                        other["dataset-digest"]),
    }  # fmt: skip


def copy_of(model: Path, tmp_path: Path) -> Path:
    """A model of its own for a test: push-model writes its record into the model."""
    target = tmp_path / model.parent.name / "model"
    shutil.copytree(model, target)
    return target


def push(model: Path, destination: str, *extra: str) -> str:
    outcome = CliRunner().invoke(
        main, ["push-model", f"--path={model}", f"--destination={destination}", *extra,
               f"--results-dir={model.parent / 'pushed'}"], env=RUN_ENV,
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert "lineage attached" in outcome.output
    return (model.parent / "pushed" / "model-uri").read_text()


def lineage(*args: str) -> Result:
    return CliRunner().invoke(main, ["lineage", *args])


def show(ref: str, keys: KeyPair, *extra: str) -> Result:
    return lineage("show", ref, f"--public-key={keys.public}", *extra)


def assert_back_to_the_data(text: str, built: Built) -> None:
    """What a user reads off the tree: each step, the datasets by URI and digest."""
    for step_name in ("train-model", "evaluate-model", "sign-artifact", "push-model",
                      "prepare-data", "fetch-data"):  # fmt: skip
        assert f"── {step_name}  [" in text, step_name
    assert "train-model  [verified]" in text
    assert "push-model  [unsigned]" in text
    assert f"{built.source.as_uri()}  {built.fetched}" in text  # the fetched dataset
    assert f"prepared/train  {built.trained_on}" in text  # the part trained on
    assert f"code git+https://git.example/ml/models@{REVISION}" in text
    assert "pipeline run train-and-deploy-run-7" in text
    assert 'param hyperparameters={"max_iter":500}' in text
    assert "NOT VERIFIED" not in text


# OCI -----------------------------------------------------------------------------------------


def test_oci_show_verifies_and_draws_the_lineage(registry, built, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tekton_mlops.storage.oci import Registry

    iris = built["iris"]
    uri = push(copy_of(iris.model, tmp_path), f"oci://{registry}/lineage/show:1")
    digest = uri.rpartition("@")[2]
    # docker-registry has no referrers API: the referrers are in the fallback tag's index.
    client = Registry(registry)
    assert client.referrers("lineage/show", digest) is None
    found = client.find_manifest("lineage/show", digest.replace(":", "-"), INDEX)
    assert found is not None
    index = json.loads(found[0])
    steps = sorted(d["annotations"]["dev.tekton-mlops.lineage.step"] for d in index["manifests"])
    assert steps == ["evaluate-model", "fetch-data", "prepare-data", "push-model",
                     "sign-artifact", "train-model"]  # fmt: skip
    signed = [d for d in index["manifests"] if d["artifactType"] == BUNDLE]
    assert len(signed) == 5  # all but push-model's record
    referrer, _ = client.manifest("lineage/show", signed[0]["digest"])
    assert referrer["subject"]["digest"] == digest
    assert referrer["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    # A second push attaches nothing twice: only the new push record joins the index.
    push(copy_of(iris.model, tmp_path / "again"), f"oci://{registry}/lineage/show:1")
    again = json.loads(client.find_manifest("lineage/show", digest.replace(":", "-"), INDEX)[0])  # type: ignore[index]
    assert len(again["manifests"]) == len(index["manifests"]) + 1

    shown = show(uri, keys)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"model {uri}\n")
    assert_back_to_the_data(shown.stdout, iris)

    as_json = show(uri, keys, "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    graph = json.loads(as_json.stdout)
    assert graph["subject"] == uri
    assert graph["verified"] is True
    train = next(s for s in graph["steps"] if s["step"] == "train-model")
    assert train["status"] == "verified"
    assert train["params"]["hyperparameters"] == {"max_iter": 500}
    assert train["code"] == [{"name": "source", "uri": "git+https://git.example/ml/models",
                              "digest": f"gitCommit:{REVISION}"}]  # fmt: skip
    assert train["pipelineRun"] == "train-and-deploy-run-7"
    assert {"from": iris.trained_on, "to": train["id"]} in graph["edges"]
    fetch = next(s for s in graph["steps"] if s["step"] == "fetch-data")
    assert fetch["outputs"][0]["digest"] == iris.fetched
    artifacts = {a["digest"]: a for a in graph["artifacts"]}
    assert artifacts[iris.fetched]["uri"] == iris.source.as_uri()
    statuses = {s["step"]: s["status"] for s in graph["steps"]}
    assert statuses["push-model"] == "unsigned"

    as_dot = show(uri, keys, "-o", "dot")
    assert as_dot.exit_code == 0
    assert as_dot.stdout.startswith("digraph lineage {")
    assert f'"{iris.trained_on}" -> "{train["id"]}";' in as_dot.stdout
    picture = tmp_path / "lineage.svg"
    if not shutil.which("dot"):
        refused = show(uri, keys, "-o", "svg", f"--to={picture}")
        assert refused.exit_code == 1
        assert "-o svg needs Graphviz's dot program" in refused.stderr
        assert not picture.exists()
    else:
        drawn = show(uri, keys, "-o", "svg", f"--to={picture}")
        assert drawn.exit_code == 0, drawn.output
        assert "<svg" in picture.read_text()
        assert "train-model" in picture.read_text()


def test_oci_tampered_referrer_fails_naming_it(registry, built, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = push(copy_of(built["iris"].model, tmp_path), f"oci://{registry}/lineage/tamper:1")
    replaced = swap_referrer(registry, "lineage/tamper", uri)

    shown = show(uri, keys)
    assert shown.exit_code == 1
    name = f"oci://{registry}/lineage/tamper@{replaced}"
    assert f"{name}: NOT VERIFIED (the signature does not verify with this public key)" in (
        shown.stderr
    )
    assert "1 attestation(s) failed the check" in shown.stderr
    assert "[NOT VERIFIED]" in shown.stdout
    assert name in shown.stdout
    # What the forged statement claims is not taken into the graph.
    graph = json.loads(show(uri, keys, "-o", "json").stdout)
    assert graph["verified"] is False
    assert {s["params"].get("estimator") for s in graph["steps"] if s["step"] == "train-model"} == {
        "logistic-regression"
    }


# S3 ------------------------------------------------------------------------------------------


def test_s3_show_and_a_tampered_attestation(s3, bucket, s3_server, built, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    endpoint = f"--endpoint-url={s3_server.endpoint}"
    iris = built["iris"]
    uri = push(copy_of(iris.model, tmp_path), f"s3://{bucket}/models/iris", endpoint)
    prefix = uri.removeprefix(f"s3://{bucket}/")
    keys_in = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    attached = [k for k in keys_in if k.startswith(f"{prefix}.mlops/attestations/")]
    assert [k.rpartition("/")[2].split("-")[0] for k in attached] == ["push"]
    shown = show(uri, keys, endpoint)
    assert shown.exit_code == 0, shown.output
    assert_back_to_the_data(shown.stdout, iris)

    key = f"{prefix}.mlops/lineage/upstream/" + next(
        k.rpartition("/")[2] for k in keys_in
        if "/upstream/fetch-data-" in k and k.endswith(".sigstore.json")
    )  # fmt: skip
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=forged(original))
    failed = show(uri, keys, endpoint)
    assert failed.exit_code == 1
    assert f"s3://{bucket}/{key}: NOT VERIFIED" in failed.stderr


# Folders, deployments ------------------------------------------------------------------------


def test_folder_store_deployment_and_tampering(built, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tekton_mlops.deploy import local

    iris = built["iris"]
    uri = push(copy_of(iris.model, tmp_path), (tmp_path / "store").as_uri())
    state = tmp_path / "deployments"
    try:
        deployed = CliRunner().invoke(main, [
            "deploy-model", f"--model-uri={uri}", "--target=local", "--name=iris",
            f"--public-key={keys.public}", f"--state-dir={state}",
            f"--results-dir={tmp_path / 'deployed'}"], env=RUN_ENV)  # fmt: skip
        assert deployed.exit_code == 0, deployed.output
        url = (tmp_path / "deployed" / "url").read_text()
    finally:
        local.stop(local.slot(state, "iris", local.STABLE))
    folder = Path(uri.removeprefix("file://"))
    records = sorted((folder / ".mlops" / "attestations").iterdir())
    assert [r.name.split("-")[0] for r in records] == ["deploy", "push"]

    # The deployment's folder leads to its model, and the deployment is in the graph.
    shown = show(str(state / "iris" / "stable"), keys, "-o", "json")
    assert shown.exit_code == 0, shown.output
    graph = json.loads(shown.stdout)
    assert graph["subject"] == uri
    assert graph["deployment"] == str(state / "iris" / "stable")
    (deploy,) = [s for s in graph["steps"] if s["step"] == "deploy-model"]
    assert deploy["status"] == "unsigned"
    assert deploy["byproducts"] == [
        {"name": "deployment", "uri": url, "annotations": {"revision": "stable"}}
    ]
    assert deploy["params"]["target"] == "local"
    text = show(uri, keys).stdout
    assert_back_to_the_data(text, iris)
    assert f"deployment {url} (revision stable)" in text
    strict = show(uri, keys, "--require-signed")
    assert strict.exit_code == 1
    assert "2 attestation(s) failed the check" in strict.stderr  # push and deploy: unsigned

    bundle = folder / ".mlops" / "lineage" / "sign-artifact.sigstore.json"
    bundle.write_bytes(forged(bundle.read_bytes()))
    failed = show(uri, keys)
    assert failed.exit_code == 1
    assert f"{bundle}: NOT VERIFIED (the signature does not verify" in failed.stderr


def test_another_key_missing_key_and_nothing_to_show(built, keys, other_keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = built["cancer"].model
    another = show(str(model), other_keys)
    assert another.exit_code == 1
    assert "train-model.sigstore.json: NOT VERIFIED (signed with another key" in another.stderr
    missing = lineage("show", str(model), f"--public-key={tmp_path / 'absent.pem'}")
    assert missing.exit_code == 1
    assert "absent.pem: no such public key file" in missing.stderr
    (tmp_path / "bare").mkdir()
    nothing = show(str(tmp_path / "bare"), keys)
    assert nothing.exit_code == 1
    assert "no lineage attestations found" in nothing.stderr
    assert lineage("show", str(model)).exit_code == 2  # --public-key is required


# Which models used a dataset ----------------------------------------------------------------


def test_uses_finds_exactly_the_models_and_deployments(registry, built, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tekton_mlops.deploy import local

    iris, cancer = built["iris"], built["cancer"]
    store = f"oci://{registry}/lineage-uses"
    iris_uri = push(copy_of(iris.model, tmp_path), f"{store}/iris:1")
    cancer_uri = push(copy_of(cancer.model, tmp_path), f"{store}/cancer:1")
    folder = (tmp_path / "store").as_uri()
    in_folder = push(copy_of(iris.model, tmp_path / "f"), folder)
    push(copy_of(cancer.model, tmp_path / "f"), folder)
    state = tmp_path / "deployments"
    try:
        deployed = CliRunner().invoke(main, [
            "deploy-model", f"--model-uri={iris_uri}", "--target=local", "--name=iris",
            f"--public-key={keys.public}", f"--state-dir={state}",
            f"--results-dir={tmp_path / 'deployed'}"])  # fmt: skip
        assert deployed.exit_code == 0, deployed.output
    finally:
        local.stop(local.slot(state, "iris", local.STABLE))
    assert "deployment record attached" in deployed.output

    def models(digest: str, where: str) -> dict[str, dict]:  # type: ignore[type-arg]
        found = lineage("uses", digest, f"--store={where}", f"--public-key={keys.public}",
                        "-o", "json")  # fmt: skip
        assert found.exit_code == 0, found.output
        return {m["model"]: m for m in json.loads(found.stdout)["models"]}

    # Through prepare-data: the fetched iris and the CSV it came from lead to the iris model.
    by_fetched = models(iris.fetched, store)
    assert set(by_fetched) == {iris_uri}
    assert by_fetched[iris_uri]["via"] == ["prepare-data"]
    (deployment,) = by_fetched[iris_uri]["deployments"]
    assert deployment["params"]["name"] == "iris"
    from tekton_mlops.digests import sha256_file

    by_csv = models(f"sha256:{sha256_file(iris.source)}", store)
    assert by_csv[iris_uri]["via"] == ["fetch-data", "prepare-data"]
    assert len(by_csv) == 1
    # Directly: the cancer model, never deployed.
    direct = models(cancer.fetched, store)
    assert set(direct) == {cancer_uri}
    assert direct[cancer_uri]["via"] == []
    assert direct[cancer_uri]["deployments"] == []
    # The folder store answers the same, by its own URIs.
    assert set(models(iris.trained_on, folder)) == {in_folder}
    assert models("sha256:" + "0" * 64, folder) == {}

    text = lineage("uses", cancer.fetched, f"--store={store}")
    assert text.exit_code == 0
    assert text.stdout.splitlines() == [
        f"dataset {cancer.fetched}",
        f"model {cancer_uri}  (trained directly)",
        "1 model(s), 0 deployment(s)",
    ]
    assert "signatures not checked" in text.stderr
    bad = lineage("uses", "sha256:xyz", f"--store={store}")
    assert bad.exit_code == 2
    assert "not a sha256 digest" in bad.stderr
