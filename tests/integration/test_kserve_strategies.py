"""Blue-green, A/B/n and mirroring on KServe, end to end through the `kubernetes` client.

The cluster is tests/kube_api_double.py, a TEST DOUBLE of the Kubernetes API server (none can
run here): it validates every object against the carried CRD schemas and the admission
webhooks' rules, and plays KServe's controllers (Ready after a few reads; a graph only once
the InferenceServices it names are Ready).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tekton_mlops.deploy.kserve import DeployError, KServe
from tekton_mlops.deploy.kserve_rollout import Outcome, current_routing, execute
from tekton_mlops.deploy.kserve_traffic import (
    Plan,
    Target,
    Version,
    blue_green,
    deploy,
    mirror,
    retire,
    rollback,
    set_weights,
    stop_mirror,
    switch,
)
from tekton_mlops.errors import ParameterError
from tests.kube_api_double import KubeApiDouble

pytestmark = pytest.mark.integration

TARGET = Target("iris", "models")
RAW = Target("iris", "models", deployment_mode="RawDeployment")
V1 = Version("v1", "s3://models/iris/v1/")
V2 = Version("v2", "s3://models/iris/v2/")
V3 = Version("v3", "s3://models/iris/v3/")


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, KServe]]:
    double = KubeApiDouble(ready_after_reads=1).start()
    yield double, KServe.connect(str(double.kubeconfig(tmp_path)))
    double.stop()


def run(cluster: KServe, plan: Plan, timeout: float = 5) -> Outcome:
    return execute(cluster, plan, timeout, poll=0.02)


def weights(double: KubeApiDouble) -> dict[str, int]:
    graph = double.get("inferencegraphs", "models", "iris")
    assert graph is not None
    root = graph["spec"]["nodes"]["root"]
    return {step["serviceName"]: step["weight"] for step in root["steps"]}


def writes_during(double: KubeApiDouble, action: Any) -> list[tuple[str, str]]:
    before = len(double.writes)
    action()
    return [
        (method, path.split("?")[0].rsplit("/", 2)[-2])
        for method, path, _ in double.writes[before:]
    ]


def test_blue_green_deploy_switch_rollback_retire(kube) -> None:  # type: ignore[no-untyped-def]
    double, cluster = kube
    first = run(cluster, blue_green(TARGET, V1, current_routing(cluster, TARGET)))
    assert first.url == "http://iris.models.example.com"
    assert weights(double) == {"iris-v1": 100}

    # The candidate beside the live version, with no traffic: versions first, the graph last.
    steps = writes_during(
        double, lambda: run(cluster, blue_green(TARGET, V2, current_routing(cluster, TARGET)))
    )
    assert steps == [("PATCH", "inferenceservices"), ("PATCH", "inferencegraphs")]
    assert weights(double) == {"iris-v1": 100, "iris-v2": 0}
    assert double.get("inferenceservices", "models", "iris-v2") is not None

    # The switch is one write: the graph.
    steps = writes_during(
        double, lambda: run(cluster, switch(TARGET, current_routing(cluster, TARGET), "v2"))
    )
    assert steps == [("PATCH", "inferencegraphs")]
    assert weights(double) == {"iris-v1": 0, "iris-v2": 100}

    # Rollback is instant: the old version is still there, one write moves the traffic back.
    steps = writes_during(
        double, lambda: run(cluster, rollback(TARGET, current_routing(cluster, TARGET)))
    )
    assert steps == [("PATCH", "inferencegraphs")]
    assert weights(double) == {"iris-v1": 100, "iris-v2": 0}

    run(cluster, switch(TARGET, current_routing(cluster, TARGET), "v2"))
    steps = writes_during(
        double, lambda: run(cluster, retire(TARGET, current_routing(cluster, TARGET)))
    )
    # Out of the graph before it is deleted, so the graph never names a missing service.
    assert steps == [("PATCH", "inferencegraphs"), ("DELETE", "inferenceservices")]
    assert weights(double) == {"iris-v2": 100}
    assert double.get("inferenceservices", "models", "iris-v1") is None
    assert double.deleted == [("inferenceservices", "models", "iris-v1")]
    assert double.rejected == []


def test_abn_weights_and_bad_weights_change_nothing(kube) -> None:  # type: ignore[no-untyped-def]
    double, cluster = kube
    outcome = run(cluster, deploy(TARGET, [V1, V2, V3], {"v1": 50, "v2": 30, "v3": 20},
                                  current_routing(cluster, TARGET)))  # fmt: skip
    assert outcome.applied == (
        "InferenceService models/iris-v1", "InferenceService models/iris-v2",
        "InferenceService models/iris-v3", "InferenceGraph models/iris",
    )  # fmt: skip
    assert weights(double) == {"iris-v1": 50, "iris-v2": 30, "iris-v3": 20}
    run(
        cluster,
        set_weights(TARGET, current_routing(cluster, TARGET), {"v1": 10, "v2": 10, "v3": 80}),
    )
    assert weights(double) == {"iris-v1": 10, "iris-v2": 10, "iris-v3": 80}

    before = len(double.writes)
    for bad in ({"v1": 10, "v2": 10, "v3": 90}, {"v1": 20, "v2": 0, "v4": 80}):
        with pytest.raises(ParameterError) as caught:
            run(cluster, set_weights(TARGET, current_routing(cluster, TARGET), bad))
        assert caught.value.exit_code == 2
        assert "--weights=" in str(caught.value)
    with pytest.raises(ParameterError, match="sticky-header"):
        set_weights(
            TARGET, current_routing(cluster, TARGET), {"v1": 100, "v2": 0, "v3": 0}, "x-user"
        )
    assert len(double.writes) == before  # nothing applied, nothing switched
    assert weights(double) == {"iris-v1": 10, "iris-v2": 10, "iris-v3": 80}


def test_mirror_start_change_and_stop(kube) -> None:  # type: ignore[no-untyped-def]
    double, cluster = kube
    run(cluster, deploy(RAW, [V1], {"v1": 100}, current_routing(cluster, RAW)))
    outcome = run(cluster, mirror(RAW, "v1", V2, 25))
    assert outcome.applied == ("InferenceService models/iris-v2", "VirtualService models/iris")
    route = double.get("virtualservices", "models", "iris")
    assert route is not None
    (http,) = route["spec"]["http"]
    assert http["route"][0]["destination"]["host"] == "iris-v1-predictor.models.svc.cluster.local"
    assert http["mirror"]["host"] == "iris-v2-predictor.models.svc.cluster.local"
    assert http["mirrorPercentage"] == {"value": 25.0}

    steps = writes_during(double, lambda: run(cluster, mirror(RAW, "v1", "v2", 60)))
    assert steps == [("PATCH", "virtualservices")]
    route = double.get("virtualservices", "models", "iris")
    assert route is not None
    assert route["spec"]["http"][0]["mirrorPercentage"] == {"value": 60.0}

    steps = writes_during(double, lambda: run(cluster, stop_mirror(RAW, "v2")))
    assert steps == [("DELETE", "virtualservices"), ("DELETE", "inferenceservices")]
    assert double.get("inferenceservices", "models", "iris-v1") is not None  # the live one stays


def test_mirror_of_a_version_not_deployed_writes_nothing(kube) -> None:  # type: ignore[no-untyped-def]
    double, cluster = kube
    with pytest.raises(ParameterError) as caught:
        run(cluster, mirror(RAW, "v1", V2, 10))
    assert "--version='v1': not deployed: no InferenceService models/iris-v1" in str(caught.value)
    assert double.writes == []


def test_a_candidate_never_ready_leaves_the_graph_untouched(kube) -> None:  # type: ignore[no-untyped-def]
    double, cluster = kube
    run(cluster, blue_green(TARGET, V1, current_routing(cluster, TARGET)))
    graph_before = double.get("inferencegraphs", "models", "iris")
    double.stuck.add("iris-v2")
    steps: list[tuple[str, str]] = []

    def stuck_rollout() -> None:
        with pytest.raises(
            DeployError, match="InferenceService models/iris-v2 not Ready after 0.3 s"
        ):
            run(cluster, blue_green(TARGET, V2, current_routing(cluster, TARGET)), timeout=0.3)

    steps = writes_during(double, stuck_rollout)
    assert steps == [("PATCH", "inferenceservices")]  # the candidate only, never the graph
    assert double.get("inferencegraphs", "models", "iris") == graph_before
    assert weights(double) == {"iris-v1": 100}


def test_a_mirror_candidate_never_ready_creates_no_route(kube) -> None:  # type: ignore[no-untyped-def]
    double, cluster = kube
    run(cluster, deploy(RAW, [V1], {"v1": 100}, current_routing(cluster, RAW)))
    double.stuck.add("iris-v2")
    with pytest.raises(DeployError, match="not Ready"):
        run(cluster, mirror(RAW, "v1", V2, 10), timeout=0.3)
    assert double.get("virtualservices", "models", "iris") is None


def test_the_double_refuses_a_graph_as_the_webhook_would(kube) -> None:  # type: ignore[no-untyped-def]
    double, cluster = kube
    run(cluster, blue_green(TARGET, V1, current_routing(cluster, TARGET)))
    plan = deploy(TARGET, [], {"v1": 100}, current_routing(cluster, TARGET))
    assert plan.route is not None
    plan.route["spec"]["nodes"]["root"]["steps"][0]["weight"] = 110
    with pytest.raises(DeployError) as caught:
        run(cluster, plan)
    assert "applying InferenceGraph models/iris: HTTP 403" in str(caught.value)
    assert 'admission webhook "inferencegraph.kserve-webhook-server.validator" denied' in str(
        caught.value
    )
    assert weights(double) == {"iris-v1": 100}
