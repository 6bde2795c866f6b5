"""revoke-dataset and cut-out, end to end.

Two models from two datasets (iris fetched, prepared and trained; breast cancer fetched and
trained), signed, pushed to a registry (docker-registry) and a folder store, deployed as real
local servers; MLflow is a real tracking server read back with MLflow's own client. KServe is
tests/kube_api_double.py, a TEST DOUBLE of the Kubernetes API server (none can run here) that
validates every object against the CRD schemas and the admission webhooks' rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KeyPair, answers_200
from tests.integration.mlflow_server import MlflowServer, running_mlflow
from tests.integration.test_lineage_store import built, copy_of, lineage, push, show
from tests.kube_api_double import KubeApiDouble

pytestmark = pytest.mark.integration
__all__ = ["built"]  # the module's fixture: the two signed models

REASON = "DSR-42 consent withdrawn"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


def deploy(run_step, state: Path, name: str, uri: str, keys: KeyPair, *extra: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    done = run_step("deploy-model", "--target=local", f"--name={name}", f"--model-uri={uri}",
                    f"--public-key={keys.public}", f"--state-dir={state}", *extra)  # fmt: skip
    assert done.exit_code == 0, done.output
    return done.results  # type: ignore[no-any-return]


def answers(url: str, name: str) -> bool:
    return answers_200(f"{url}/v2/models/{name}/ready")


def revoke(run_step, *args: str):  # type: ignore[no-untyped-def]
    return run_step("revoke-dataset", f"--reason={REASON}", *args)


def cut_out(run_step, state: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_step("cut-out", "--target=local", f"--state-dir={state}", *args)


def bundle_statement(bundle: Path, keys: KeyPair) -> dict:  # type: ignore[type-arg]
    """The statement a bundle signs, verified with the public key (raises if it does not)."""
    from tekton_mlops.signing import load_public_key, open_bundle

    return open_bundle(bundle, load_public_key(keys.public))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_of(p) for p in sorted(root.rglob("*")) if p.is_file()}


# revoke-dataset -------------------------------------------------------------------------------


def test_revoking_a_dataset_takes_exactly_its_model_out(  # type: ignore[no-untyped-def]
    run_step, registry, built, keys, state, tmp_path, mlflow_server: MlflowServer
) -> None:
    iris, cancer = built["iris"], built["cancer"]
    store, tracking = f"oci://{registry}/revocation", f"--mlflow-tracking-uri={mlflow_server.uri}"
    iris_uri = push(copy_of(iris.model, tmp_path), f"{store}/iris:1", tracking)
    cancer_uri = push(copy_of(cancer.model, tmp_path), f"{store}/cancer:1", tracking)
    iris_url = deploy(run_step, state, "iris", iris_uri, keys, "--strategy=blue-green",
                      tracking)["url"]  # fmt: skip
    cancer_url = deploy(run_step, state, "cancer", cancer_uri, keys, tracking)["url"]
    assert mlflow_server.read("aliases", name="iris") != {}
    cancer_aliases = mlflow_server.read("aliases", name="cancer")
    assert answers(iris_url, "iris")
    assert answers(cancer_url, "cancer")
    report = tmp_path / "report"
    args = [f"--digests={iris.fetched}", f"--store={store}", f"--public-key={keys.public}",
            f"--signing-key={keys.private}", f"--output={report}", f"--state-dir={state}",
            tracking, "--actor=dpo@example.com"]  # fmt: skip

    done = revoke(run_step, *args)
    assert done.exit_code == 0, done.output
    assert (done.results["models"], done.results["deployments"]) == ("1", "1")
    # Exactly the model trained on the revoked data is out of service.
    assert not answers(iris_url, "iris")
    assert answers(cancer_url, "cancer")

    # The store and `lineage uses` / `lineage show` say what happened.
    used = lineage("uses", iris.fetched, f"--store={store}", f"--public-key={keys.public}",
                   "-o", "json")  # fmt: skip
    assert used.exit_code == 0, used.output
    (model,) = json.loads(used.stdout)["models"]
    assert (model["model"], model["revoked"]) == (iris_uri, True)
    assert [d["out_of_service"] for d in model["deployments"]] == [True]
    text = lineage("uses", iris.fetched, f"--store={store}", f"--public-key={keys.public}").stdout
    assert f"model {iris_uri}  (trained through prepare-data)  REVOKED" in text
    assert text.count("out of service") == 1
    shown = show(iris_uri, keys)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1].startswith("REVOKED ")
    assert shown.stdout.splitlines()[1].endswith(f"by dpo@example.com: {REASON}")
    assert "revoke-dataset  [verified]" in shown.stdout
    assert "cut-out  [verified]" in shown.stdout  # signed with the same key
    other = show(cancer_uri, keys)
    assert other.exit_code == 0
    assert "REVOKED" not in other.stdout
    assert "cut-out" not in other.stdout

    # The report, signed: its record's bundle verifies and names the report files' digests.
    written = json.loads((report / "revocation-report.json").read_text())
    assert done.results["report"] == str(report / "revocation-report.json")
    (entry,) = written["models"]
    assert (entry["model"], entry["datasets"], entry["store"]) == (
        iris_uri, [iris.fetched], "marked revoked")  # fmt: skip
    assert [(d["name"], d["status"]) for d in entry["deployments"]] == [
        ("iris", "taken out of service")]  # fmt: skip
    assert sorted(entry["deployments"][0]["stopped"]) == ["router", "version blue"]
    statement = bundle_statement(Path(done.results["report-bundle"]), keys)
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects == {n: sha256_of(report / n)
                        for n in ("revocation-report.json", "revocation-report.md")}  # fmt: skip
    verified = lineage("show", str(report), f"--public-key={keys.public}")
    assert verified.exit_code == 0
    assert "revoke-dataset  [verified]" in verified.stdout

    # MLflow: the iris version is tagged and has no alias left; cancer is untouched.
    (version,) = mlflow_server.read("versions", name="iris")
    assert version["tags"]["tekton-mlops.dev/revoked"].startswith(f"{REASON} (revoked ")
    assert version["tags"]["tekton-mlops.dev/revoked-datasets"] == iris.fetched
    assert mlflow_server.read("aliases", name="iris") == {}
    assert mlflow_server.read("aliases", name="cancer") == cancer_aliases
    assert (
        "tekton-mlops.dev/revoked" not in mlflow_server.read("versions", name="cancer")[0]["tags"]
    )

    # Again: nothing left to do, nothing new anywhere.
    before = json.loads(show(iris_uri, keys, "-o", "json").stdout)["steps"]
    again = revoke(run_step, *args)
    assert again.exit_code == 0, again.output
    assert (again.results["models"], again.results["deployments"]) == ("1", "0")
    assert json.loads(show(iris_uri, keys, "-o", "json").stdout)["steps"] == before
    (entry,) = json.loads((report / "revocation-report.json").read_text())["models"]
    assert entry["store"] == "already marked revoked"
    assert entry["deployments"][0]["status"] == "already out of service"
    assert entry["registered_versions"][0]["already_revoked"] is True
    assert answers(cancer_url, "cancer")


def test_a_dry_run_then_one_version_of_a_mixed_deployment(  # type: ignore[no-untyped-def]
    run_step, built, keys, state, tmp_path
) -> None:
    """A/B/n over the two models: revoking one dataset removes exactly that version, the other
    takes all the traffic. Bad digests and a dry run change nothing."""
    from tekton_mlops.deploy import local_routes

    iris, cancer = built["iris"], built["cancer"]
    store = (tmp_path / "store").as_uri()
    iris_uri = push(copy_of(iris.model, tmp_path), store)
    cancer_uri = push(copy_of(cancer.model, tmp_path), store)
    deploy(run_step, state, "mixed", iris_uri, keys, "--strategy=abn", "--version=v1")
    url = deploy(run_step, state, "mixed", cancer_uri, keys, "--strategy=abn", "--version=v2",
                 '--weights={"v1": 70, "v2": 30}')["url"]  # fmt: skip
    in_store = folder_snapshot(tmp_path / "store")
    report = tmp_path / "report"
    common = [f"--store={store}", f"--signing-key={keys.private}", f"--output={report}",
              f"--state-dir={state}", f"--public-key={keys.public}"]  # fmt: skip

    bad = revoke(run_step, "--digests=sha256:1234,sha256:xyz", *common)
    assert bad.exit_code == 2
    assert "--digests='sha256:1234,sha256:xyz': must be sha256:<64 lower-case hex>" in bad.output
    assert not report.exists()

    dry = revoke(run_step, f'--digests=["{cancer.fetched}"]', "--dry-run", *common)
    assert dry.exit_code == 0, dry.output
    assert (dry.results["models"], dry.results["deployments"]) == ("1", "1")
    written = json.loads((report / "revocation-report.json").read_text())
    assert written["dry_run"] is True
    assert written["deployments"][0]["status"] == "would be taken out of service"
    assert written["deployments"][0]["still_serving"] == {"v1": 100}
    assert local_routes.status(state, "mixed").weights == {"v1": 70, "v2": 30}
    assert folder_snapshot(tmp_path / "store") == in_store  # no mark

    done = revoke(run_step, f"--digests={cancer.fetched}, {cancer.fetched}", *common)
    assert done.exit_code == 0, done.output
    assert (done.results["models"], done.results["deployments"]) == ("1", "1")
    routing = local_routes.status(state, "mixed")
    assert routing.weights == {"v1": 100}  # v2 left the table, v1 has all the traffic
    assert routing.url == url
    assert answers(url, "mixed")
    assert not (state / "mixed" / "versions" / "v2" / "model").exists()  # the served copy
    assert lineage("show", cancer_uri, f"--public-key={keys.public}").stdout.count("REVOKED") >= 1
    assert "REVOKED" not in lineage("show", iris_uri, f"--public-key={keys.public}").stdout


# cut-out --------------------------------------------------------------------------------------


def test_cut_out_local_canary_by_model_then_whole_with_a_signed_record(  # type: ignore[no-untyped-def]
    run_step, built, keys, state, tmp_path
) -> None:
    store = (tmp_path / "store").as_uri()
    iris_uri = push(copy_of(built["iris"].model, tmp_path), store)
    canary_uri = push(copy_of(built["cancer"].model, tmp_path), store)
    stable = deploy(run_step, state, "demo", iris_uri, keys)
    canary = deploy(run_step, state, "demo", canary_uri, keys, "--canary-traffic-percent=20")
    assert answers(stable["url"], "demo")
    assert answers(canary["url"], "demo")

    only = cut_out(run_step, state, "--name=demo", "--reason=INC-7 canary misbehaves",
                   f"--model-digest={canary['model-digest']}")  # fmt: skip
    assert only.exit_code == 0, only.output
    assert (only.results["stopped"], only.results["already"]) == ('["canary"]', "false")
    assert not answers(canary["url"], "demo")
    assert answers(stable["url"], "demo")

    whole = cut_out(run_step, state, "--name=demo", "--reason=INC-8 all out",
                    "--actor=oncall@example.com", f"--signing-key={keys.private}")  # fmt: skip
    assert whole.exit_code == 0, whole.output
    assert json.loads(whole.results["stopped"]) == ["stable"]
    assert not answers(stable["url"], "demo")
    record = state / "demo" / ".mlops" / "lineage" / "cut-out.intoto.json"
    statement = bundle_statement(record.with_name("cut-out.sigstore.json"), keys)
    assert statement == json.loads(record.read_text())
    params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert (params["reason"], params["actor"]) == ("INC-8 all out", "oncall@example.com")
    (deployment,) = [d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
                     if d["name"] == "deployment"]  # fmt: skip
    assert deployment == {
        "name": "deployment",
        "uri": stable["url"],
        "digest": {"sha256": stable["model-digest"].removeprefix("sha256:")},
    }
    shown = show(iris_uri, keys)
    assert "cut-out  [verified]" in shown.stdout
    assert "param reason=INC-8 all out" in shown.stdout
    assert "param actor=oncall@example.com" in shown.stdout

    kept = record.read_bytes()
    again = cut_out(run_step, state, "--name=demo", "--reason=INC-8 all out")
    assert again.exit_code == 0, again.output
    assert (again.results["stopped"], again.results["already"]) == ("[]", "true")
    assert "already out of service" in again.output
    assert record.read_bytes() == kept


def test_cut_out_local_blue_green_and_bad_input(  # type: ignore[no-untyped-def]
    run_step, built, keys, state
) -> None:
    blue = deploy(
        run_step, state, "bg", built["iris"].model.as_uri(), keys, "--strategy=blue-green"
    )
    green = deploy(run_step, state, "bg", built["cancer"].model.as_uri(), keys,
                   "--strategy=blue-green")  # fmt: skip
    table = (state / "bg" / "router" / "table.json").read_bytes()
    for bad, named in ((["--name=bg", "--reason= "], "--reason=' '"),
                       (["--name=bg", "--reason=x", "--model-digest=12"], "--model-digest='12'"),
                       (["--name=BG", "--reason=x"], "--name='BG'")):  # fmt: skip
        refused = cut_out(run_step, state, *bad)
        assert refused.exit_code == 2, refused.output
        assert named in refused.output
        assert refused.results == {}
    assert (state / "bg" / "router" / "table.json").read_bytes() == table
    assert answers(blue["url"], "bg")
    assert answers(green["candidate-url"], "bg")
    missing = cut_out(run_step, state, "--name=nothing", "--reason=x")
    assert missing.exit_code == 1
    assert f"error: nothing: no local deployment under {state}" in missing.output

    done = cut_out(run_step, state, "--name=bg", "--reason=INC-9")
    assert done.exit_code == 0, done.output
    assert sorted(json.loads(done.results["stopped"])) == [
        "router",
        "version blue",
        "version green",
    ]
    assert not answers(blue["url"], "bg")
    assert not answers(green["candidate-url"], "bg")
    assert cut_out(run_step, state, "--name=bg", "--reason=INC-9").results["already"] == "true"


def test_cut_out_local_abn_one_model_then_the_last(run_step, built, keys, state) -> None:  # type: ignore[no-untyped-def]
    from tekton_mlops.deploy import local_routes

    one = deploy(run_step, state, "ab", built["iris"].model.as_uri(), keys, "--strategy=abn",
                 "--version=v1")  # fmt: skip
    two = deploy(run_step, state, "ab", built["cancer"].model.as_uri(), keys, "--strategy=abn",
                 "--version=v2", '--weights={"v1": 50, "v2": 50}')  # fmt: skip
    first = cut_out(run_step, state, "--name=ab", "--reason=INC-10",
                    f"--model-digest={two['model-digest']}")  # fmt: skip
    assert first.exit_code == 0, first.output
    assert first.results["stopped"] == '["version v2"]'
    assert local_routes.status(state, "ab").weights == {"v1": 100}
    assert answers(two["url"], "ab")  # the router, now all v1
    assert not answers(two["candidate-url"], "ab")

    last = cut_out(run_step, state, "--name=ab", "--reason=INC-10",
                   f"--model-digest={one['model-digest']}")  # fmt: skip
    assert last.exit_code == 0, last.output
    assert sorted(json.loads(last.results["stopped"])) == ["router", "version v1"]
    assert not answers(two["url"], "ab")
    again = cut_out(run_step, state, "--name=ab", "--reason=INC-10",
                    f"--model-digest={one['model-digest']}")  # fmt: skip
    assert again.results == {"stopped": "[]", "already": "true"}


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, Path]]:
    double = KubeApiDouble(ready_after_reads=1).start()
    yield double, double.kubeconfig(tmp_path)
    double.stop()


def test_cut_out_on_kserve_deletes_what_serves(run_step, kube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tekton_mlops.deploy.kserve import KServe
    from tekton_mlops.deploy.kserve_rollout import execute
    from tekton_mlops.deploy.kserve_traffic import Routing, Target, Version
    from tekton_mlops.deploy.kserve_traffic import deploy as split

    double, kubeconfig = kube
    common = ["--target=kserve", "--namespace=models", f"--kubeconfig={kubeconfig}",
              f"--state-dir={tmp_path / 'records'}", "--timeout=5"]  # fmt: skip
    canary = run_step("deploy-model", "--name=iris", "--model-uri=s3://models/iris/sha256-1/",
                      "--allow-unverified", *common)  # fmt: skip
    assert canary.exit_code == 0, canary.output
    # A/B over two models whose digests deploy-model verified (set as it sets them).
    one, two = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    versions = [Version("v1", "s3://models/fraud/sha256-1/", one),
                Version("v2", "s3://models/fraud/sha256-2/", two)]  # fmt: skip
    cluster = KServe.connect(str(kubeconfig))
    execute(cluster, split(Target("fraud", "models"), versions, {"v1": 60, "v2": 40}, Routing()),
            5, poll=0.02)  # fmt: skip

    partial = run_step("cut-out", "--name=fraud", "--reason=INC-11", f"--model-digest={two}",
                       *common)  # fmt: skip
    assert partial.exit_code == 0, partial.output
    assert partial.results["stopped"] == '["InferenceService models/fraud-v2"]'
    graph = double.get("inferencegraphs", "models", "fraud")
    assert graph is not None
    assert [(s["serviceName"], s["weight"]) for s in graph["spec"]["nodes"]["root"]["steps"]] == [
        ("fraud-v1", 100)]  # fmt: skip
    assert double.deleted == [("inferenceservices", "models", "fraud-v2")]

    whole = run_step("cut-out", "--name=fraud", "--reason=INC-11", *common)
    assert whole.exit_code == 0, whole.output
    assert json.loads(whole.results["stopped"]) == [
        "InferenceGraph models/fraud", "InferenceService models/fraud-v1"]  # fmt: skip
    assert double.get("inferencegraphs", "models", "fraud") is None
    assert double.get("inferenceservices", "models", "fraud-v1") is None

    gone = run_step("cut-out", "--name=iris", "--reason=INC-12", *common)
    assert gone.exit_code == 0, gone.output
    assert gone.results["stopped"] == '["InferenceService models/iris"]'
    assert double.get("inferenceservices", "models", "iris") is None
    record = json.loads((tmp_path / "records" / "iris" / ".mlops" / "lineage"
                         / "cut-out.intoto.json").read_text())  # fmt: skip
    assert record["predicate"]["buildDefinition"]["externalParameters"]["params"]["reason"] == (
        "INC-12"
    )
    writes = len(double.writes)
    for name in ("iris", "fraud"):
        again = run_step("cut-out", f"--name={name}", "--reason=INC-12", *common)
        assert again.results == {"stopped": "[]", "already": "true"}, again.output
    assert len(double.writes) == writes  # nothing more was asked of the cluster
    assert double.rejected == []
