"""deploy-model's blue-green, mirror and A/B/n strategies, on both targets, through the step.

Local: real servers and the real router on 127.0.0.1. KServe: tests/kube_api_double.py,
a TEST DOUBLE of the Kubernetes API server (none can run here), that validates every
InferenceService, InferenceGraph and VirtualService against the carried CRD schemas and
KServe's and Istio's webhook rules.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_deploy import lineage, train_and_sign
from tests.kube_api_double import KubeApiDouble

pytestmark = pytest.mark.integration

ROW = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [6.0, 2.2, 5.0, 1.5]}]}


@pytest.fixture(scope="module")
def models(datasets, keys, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Two signed iris models that are not the same bytes."""
    folder = tmp_path_factory.mktemp("strategies")
    made = {}
    for label, hyper in (("one", '{"max_iter": 500}'), ("two", '{"max_iter": 500, "C": 0.05}')):
        made[label] = folder / label
        train_and_sign(datasets["iris"], keys, made[label], "logistic-regression", hyper)
    return made


def deploy(run_step, state: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_step(
        "deploy-model", "--target=local", "--name=iris", f"--state-dir={state}", *args
    )  # fmt: skip


def release(run_step, state, keys, model: Path, *args: str):  # type: ignore[no-untyped-def]
    return deploy(run_step, state, f"--model-uri={model.as_uri()}",
                  f"--public-key={keys.public}", *args)  # fmt: skip


def served_by(url: str, headers: dict[str, str] | None = None) -> str:
    """The version that answered one inference request through ``url``."""
    request = urllib.request.Request(
        f"{url}/v2/models/iris/infer", data=json.dumps(ROW).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        body = json.loads(answer.read())
    # The router names the version in a header; a version's own server in its answer.
    return str(answer.headers["x-model-version"] or body["model_version"])


def servers(state: Path) -> set[str]:
    """Versions with a server folder under the deployment."""
    folder = state / "iris" / "versions"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_local_blue_green_switches_at_once_and_rolls_back(  # type: ignore[no-untyped-def]
    run_step, models, keys, state
) -> None:
    blue = release(run_step, state, keys, models["one"], "--strategy=blue-green")
    assert blue.exit_code == 0, blue.output
    assert json.loads(blue.results["versions"]) == {"blue": 100}
    url = blue.results["url"]
    green = release(run_step, state, keys, models["two"], "--strategy=blue-green")
    assert green.exit_code == 0, green.output
    assert green.results["url"] == url  # the router is the deployment's address
    assert json.loads(green.results["versions"]) == {"blue": 100, "green": 0}
    assert green.results["revision"] == "blue"
    # The candidate answers on its own address before it has any user traffic.
    candidate = green.results["candidate-url"]
    assert candidate != url
    assert served_by(candidate) == "green"
    assert {served_by(url) for _ in range(20)} == {"blue"}
    assert lineage(state / "iris" / "versions" / "green", "deploy-model")["subject"][0]["digest"]

    promoted = deploy(run_step, state, "--strategy=blue-green", "--promote")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.results["versions"]) == {"blue": 0, "green": 100}
    assert {served_by(url) for _ in range(20)} == {"green"}
    assert servers(state) == {"blue", "green"}  # blue kept for an instant way back

    rolled = deploy(run_step, state, "--strategy=blue-green", "--rollback", "--version=green")
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.results["versions"]) == {"blue": 100}
    assert {served_by(url) for _ in range(20)} == {"blue"}
    assert servers(state) == {"blue"}


def test_local_blue_green_retire_removes_the_old_version(  # type: ignore[no-untyped-def]
    run_step, models, keys, state
) -> None:
    assert release(run_step, state, keys, models["one"], "--strategy=blue-green").exit_code == 0
    assert release(run_step, state, keys, models["two"], "--strategy=blue-green").exit_code == 0
    assert deploy(run_step, state, "--strategy=blue-green", "--promote").exit_code == 0
    retired = deploy(run_step, state, "--strategy=blue-green", "--retire")
    assert retired.exit_code == 0, retired.output
    assert retired.results["action"] == "retire"
    assert json.loads(retired.results["versions"]) == {"green": 100}
    assert servers(state) == {"green"}
    assert served_by(retired.results["url"]) == "green"


def test_local_mirror_records_the_candidate_and_promotes_it(  # type: ignore[no-untyped-def]
    run_step, models, keys, state
) -> None:
    from tekton_mlops.deploy import local_routes

    live = release(run_step, state, keys, models["one"], "--strategy=blue-green")
    assert live.exit_code == 0, live.output
    shadow = release(run_step, state, keys, models["two"], "--strategy=mirror",
                     "--version=shadow", "--mirror-percent=100")  # fmt: skip
    assert shadow.exit_code == 0, shadow.output
    url = shadow.results["url"]
    # Clients only ever get the live answer; the candidate's are recorded beside them.
    assert {served_by(url) for _ in range(30)} == {"blue"}
    summary: dict = {}  # type: ignore[type-arg]
    for _ in range(100):  # the copies are fire-and-forget: wait for their records
        summary = local_routes.mirror_summary(state, "iris", "shadow")
        if summary.get("requests", 0) >= 30:
            break
        import time

        time.sleep(0.05)
    assert summary["requests"] >= 30
    promoted = deploy(run_step, state, "--strategy=mirror", "--promote")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.results["versions"]) == {"blue": 0, "shadow": 100}
    assert served_by(url) == "shadow"


def test_local_mirror_rollback_leaves_the_live_version_alone(  # type: ignore[no-untyped-def]
    run_step, models, keys, state
) -> None:
    assert release(run_step, state, keys, models["one"], "--strategy=blue-green").exit_code == 0
    shadow = release(run_step, state, keys, models["two"], "--strategy=mirror")
    assert shadow.exit_code == 0, shadow.output
    assert json.loads(shadow.results["versions"]) == {"blue": 100, "green": 0}
    rolled = deploy(run_step, state, "--strategy=mirror", "--rollback", "--version=green")
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.results["versions"]) == {"blue": 100}
    assert servers(state) == {"blue"}


def test_local_abn_splits_by_weight_and_sticks_by_header(  # type: ignore[no-untyped-def]
    run_step, models, keys, state
) -> None:
    assert (
        release(run_step, state, keys, models["one"], "--strategy=abn", "--version=v1").exit_code
        == 0
    )
    split = release(
        run_step, state, keys, models["two"], "--strategy=abn", "--version=v2",
        '--weights={"v1": 50, "v2": 50}', "--sticky-header=x-user",
    )  # fmt: skip
    assert split.exit_code == 0, split.output
    url = split.results["url"]
    users = {f"user-{i}": served_by(url, {"x-user": f"user-{i}"}) for i in range(40)}
    assert set(users.values()) == {"v1", "v2"}  # 40 users both ways: p(one side) = 2^-39
    for user, version in users.items():  # the same user always reaches the same version
        assert {served_by(url, {"x-user": user}) for _ in range(3)} == {version}
    moved = deploy(run_step, state, "--strategy=abn", '--weights={"v2": 100}')
    assert moved.exit_code == 0, moved.output
    assert moved.results["action"] == "route"
    assert {served_by(url, {"x-user": u}) for u in users} == {"v2"}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--strategy=abn", "--version=v2", '--weights={"v1": 50, "v2": 40}'], "weights"),
        (["--strategy=abn", "--version=v2", '--weights={"v1": 50, "v9": 50}'], "weights"),
        (["--strategy=abn"], "version"),
        (["--strategy=blue-green", "--canary-traffic-percent=10"], "canary-traffic-percent"),
        (["--strategy=blue-green", '--weights={"v1": 100}'], "weights"),
        (["--strategy=blue-green", "--version=Not_A_Label"], "version"),
        (["--strategy=mirror", "--mirror-percent=150"], "mirror-percent"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(  # type: ignore[no-untyped-def]
    run_step, models, keys, state, args, named
) -> None:
    first = release(run_step, state, keys, models["one"], "--strategy=abn", "--version=v1")
    assert first.exit_code == 0, first.output
    table = (state / "iris" / "router" / "table.json").read_bytes()
    refused = release(run_step, state, keys, models["two"], *args)
    assert refused.exit_code == 2, refused.output
    assert named in refused.output
    assert (state / "iris" / "router" / "table.json").read_bytes() == table
    assert servers(state) == {"v1"}
    assert served_by(first.results["url"]) == "v1"


def test_a_candidate_that_fails_verification_leaves_the_live_version(  # type: ignore[no-untyped-def]
    run_step, models, keys, other_keys, state
) -> None:
    assert release(run_step, state, keys, models["one"], "--strategy=blue-green").exit_code == 0
    table = (state / "iris" / "router" / "table.json").read_bytes()
    failed = deploy(run_step, state, f"--model-uri={models['two'].as_uri()}",
                    f"--public-key={other_keys.public}", "--strategy=blue-green")  # fmt: skip
    assert failed.exit_code == 1
    assert (state / "iris" / "router" / "table.json").read_bytes() == table
    assert servers(state) == {"blue"}


# --- kserve, through the API double -----------------------------------------------------


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, Path]]:
    double = KubeApiDouble().start()
    yield double, double.kubeconfig(tmp_path)
    double.stop()


def kserve(run_step, kubeconfig: Path, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_step(
        "deploy-model", "--target=kserve", "--name=iris", "--namespace=models",
        f"--kubeconfig={kubeconfig}", "--timeout=5", f"--state-dir={tmp_path / 'records'}",
        "--allow-unverified", *args,
    )  # fmt: skip


def graph_weights(double: KubeApiDouble) -> dict[str, int]:
    graph = [d for d in double.applied if d["kind"] == "InferenceGraph"][-1]
    steps = graph["spec"]["nodes"]["root"]["steps"]
    return {s["serviceName"]: s["weight"] for s in steps}


def test_kserve_blue_green_through_a_graph(run_step, kube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = kube
    uri = "s3://models/iris/sha256-1/"
    blue = kserve(run_step, kubeconfig, tmp_path, f"--model-uri={uri}", "--strategy=blue-green")
    assert blue.exit_code == 0, blue.output
    assert json.loads(blue.results["versions"]) == {"blue": 100}
    green = kserve(run_step, kubeconfig, tmp_path, "--model-uri=s3://models/iris/sha256-2/",
                   "--strategy=blue-green")  # fmt: skip
    assert green.exit_code == 0, green.output
    assert graph_weights(double) == {"iris-blue": 100, "iris-green": 0}
    assert green.results["candidate-url"].startswith("http://iris-green-predictor.models.")
    promoted = kserve(run_step, kubeconfig, tmp_path, "--strategy=blue-green", "--promote")
    assert promoted.exit_code == 0, promoted.output
    assert graph_weights(double) == {"iris-blue": 0, "iris-green": 100}
    assert promoted.results["revision"] == "green"
    rolled = kserve(run_step, kubeconfig, tmp_path, "--strategy=blue-green", "--rollback",
                    "--version=green")  # fmt: skip
    assert rolled.exit_code == 0, rolled.output
    assert graph_weights(double) == {"iris-blue": 100}
    assert json.loads(rolled.results["versions"]) == {"blue": 100}


def test_kserve_refuses_sticky_routing_before_any_write(run_step, kube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = kube
    refused = kserve(run_step, kubeconfig, tmp_path, "--model-uri=s3://models/iris/sha256-1/",
                     "--strategy=abn", "--version=v1", "--sticky-header=x-user")  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "sticky-header" in refused.output
    assert double.applied == []


# --- payload logging on kserve (the pairs check-mirror judges), through the API double -----

SINK = "http://log-sink.models.svc.cluster.local"
LOGGER = {"mode": "all", "url": SINK, "metadataHeaders": ["X-Request-Id"]}
RAW = "--deployment-mode=RawDeployment"


@pytest.fixture
def quick_kube(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, Path]]:
    """The double, its InferenceServices Ready on the first read: these tests wait less."""
    double = KubeApiDouble(ready_after_reads=1).start()
    yield double, double.kubeconfig(tmp_path)
    double.stop()


def stored(double: KubeApiDouble, name: str) -> dict:  # type: ignore[type-arg]
    found = double.get("inferenceservices", "models", name)
    assert found is not None, name
    return found


def test_kserve_mirror_logs_the_payloads_of_both_versions(run_step, quick_kube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.kube_api_double import crd_violations

    double, kubeconfig = quick_kube
    blue = kserve(run_step, kubeconfig, tmp_path, "--model-uri=s3://models/iris/sha256-1/",
                  "--strategy=blue-green", RAW)  # fmt: skip
    assert blue.exit_code == 0, blue.output
    live_spec = stored(double, "iris-blue")["spec"]
    assert "logger" not in live_spec["predictor"]  # deployed before payload logging

    green = kserve(run_step, kubeconfig, tmp_path, "--model-uri=s3://models/iris/sha256-2/",
                   "--strategy=mirror", RAW, f"--payload-log-url={SINK}")  # fmt: skip
    assert green.exit_code == 0, green.output
    # Both sides of every mirrored request are logged: the live version got the logger and
    # nothing else, in one apply before the candidate; the route came last.
    assert stored(double, "iris-green")["spec"]["predictor"]["logger"] == LOGGER
    live_after = stored(double, "iris-blue")
    assert live_after["spec"] == {
        "predictor": {**live_spec["predictor"], "logger": LOGGER}
    }  # fmt: skip
    assert live_after["metadata"]["generation"] == 2
    assert [(d["kind"], d["metadata"]["name"]) for d in double.applied[-3:]] == [
        ("InferenceService", "iris-blue"),
        ("InferenceService", "iris-green"),
        ("VirtualService", "iris"),
    ]
    # Valid against the carried KServe v0.20.0 CRD schema, which the double enforced on apply
    # and which refuses a logger field it does not have.
    assert double.rejected == []
    for document in double.applied:
        assert crd_violations(document) == []
    wrong = json.loads(json.dumps(double.applied[-2]))
    wrong["spec"]["predictor"]["logger"]["headers"] = ["X-Request-Id"]
    assert crd_violations(wrong) != []

    # The next candidate finds the live version logging: it is not applied again.
    rolled = kserve(run_step, kubeconfig, tmp_path, "--strategy=mirror", "--rollback",
                    "--version=green")  # fmt: skip
    assert rolled.exit_code == 0, rolled.output
    applied = len(double.applied)
    again = kserve(run_step, kubeconfig, tmp_path, "--model-uri=s3://models/iris/sha256-3/",
                   "--strategy=mirror", RAW, f"--payload-log-url={SINK}")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert [d["metadata"]["name"] for d in double.applied[applied:]] == ["iris-green", "iris"]
    assert stored(double, "iris-blue")["metadata"]["generation"] == 2


def test_kserve_versions_and_canaries_log_when_asked(run_step, quick_kube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double, kubeconfig = quick_kube
    first = kserve(run_step, kubeconfig, tmp_path, "--model-uri=s3://models/iris/sha256-1/",
                   "--strategy=blue-green", f"--payload-log-url={SINK}")  # fmt: skip
    assert first.exit_code == 0, first.output
    assert stored(double, "iris-blue")["spec"]["predictor"]["logger"] == LOGGER
    canary = run_step(
        "deploy-model", "--target=kserve", "--name=wine", "--namespace=models",
        f"--kubeconfig={kubeconfig}", "--timeout=5", f"--state-dir={tmp_path / 'records'}",
        "--allow-unverified", "--model-uri=s3://models/wine/sha256-1/",
        f"--payload-log-url={SINK}",
    )  # fmt: skip
    assert canary.exit_code == 0, canary.output
    assert stored(double, "wine")["spec"]["predictor"]["logger"] == LOGGER
    without = kserve(run_step, kubeconfig, tmp_path, "--model-uri=s3://models/iris/sha256-2/",
                     "--strategy=blue-green")  # fmt: skip
    assert without.exit_code == 0, without.output
    assert "logger" not in stored(double, "iris-green")["spec"]["predictor"]  # as before
    assert double.rejected == []


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (["--target=local", "--model-uri=file:///models/iris"], "applies to the kserve target"),
        (["--strategy=blue-green", "--promote"], "applies to a deploy (model-uri), not promote"),
        (["--model-uri=s3://models/iris/sha256-1/", "--payload-log-url=log-sink:80"],
         "must be an http:// or https:// URL"),
    ],
)  # fmt: skip
def test_payload_log_url_where_it_cannot_apply_exits_2(  # type: ignore[no-untyped-def]
    run_step, quick_kube, tmp_path, args, rule
) -> None:
    double, kubeconfig = quick_kube
    refused = kserve(run_step, kubeconfig, tmp_path, f"--payload-log-url={SINK}", *args)
    assert refused.exit_code == 2, refused.output
    assert "--payload-log-url=" in refused.output
    assert rule in refused.output
    assert double.writes == []
    assert not (tmp_path / "records").exists()
