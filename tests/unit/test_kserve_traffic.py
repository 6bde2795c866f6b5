"""Traffic manifests for KServe: every one admitted by the carried CRD schemas and webhook rules.

The checks are the ones tests/kube_api_double.py (a TEST DOUBLE of the API server) runs on
every object it receives: the CRD schema (tests/schemas) and the admission webhook's rules.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tekton_mlops.deploy.kserve_traffic import (
    Plan,
    Routing,
    Target,
    Version,
    blue_green,
    deploy,
    mirror,
    render_graph,
    render_version,
    retire,
    rollback,
    routing_of,
    service_name,
    set_weights,
    stop_mirror,
    switch,
)
from tekton_mlops.errors import ParameterError
from tests.kube_api_double import crd_violations, webhook_violations

TARGET = Target("iris", "models", service_account="models-sa",
                resources={"requests": {"cpu": "100m"}})  # fmt: skip
RAW = Target("iris", "models", deployment_mode="RawDeployment")
V1 = Version("v1", "s3://models/iris/v1/", "sha256:" + "1" * 64)
V2 = Version("v2", "oci://registry.example/iris@sha256:" + "2" * 64)
V3 = Version("v3", "s3://models/iris/v3/")


def admitted(document: dict[str, Any]) -> None:
    assert crd_violations(document) == []
    assert webhook_violations(document) == []


def admitted_plan(plan: Plan) -> None:
    for document in (*plan.versions, *([plan.route] if plan.route else [])):
        admitted(document)


def steps(plan: Plan) -> dict[str, tuple[str, int]]:
    assert plan.route is not None
    root = plan.route["spec"]["nodes"]["root"]
    assert root["routerType"] == "Splitter"
    return {s["name"]: (s["serviceName"], s["weight"]) for s in root["steps"]}


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(ParameterError) as caught:
        call(*args)
    assert caught.value.exit_code == 2
    return str(caught.value)


# Blue-green ---------------------------------------------------------------------------------


def test_blue_green_from_first_version_to_retirement() -> None:
    first = blue_green(TARGET, V1, Routing())
    admitted_plan(first)
    assert [v["metadata"]["name"] for v in first.versions] == ["iris-v1"]
    assert steps(first) == {"v1": ("iris-v1", 100)}

    beside = blue_green(TARGET, V2, routing_of(first.route))
    admitted_plan(beside)
    assert [v["metadata"]["name"] for v in beside.versions] == ["iris-v2"]
    assert steps(beside) == {"v1": ("iris-v1", 100), "v2": ("iris-v2", 0)}
    candidate = beside.versions[0]["spec"]["predictor"]
    assert candidate["model"]["storageUri"] == V2.storage_uri
    assert candidate["serviceAccountName"] == "models-sa"

    switched = switch(TARGET, routing_of(beside.route), "v2")
    admitted_plan(switched)
    assert switched.versions == ()
    assert switched.delete == ()
    assert steps(switched) == {"v1": ("iris-v1", 0), "v2": ("iris-v2", 100)}

    back = rollback(TARGET, routing_of(switched.route))
    admitted_plan(back)
    assert steps(back) == {"v1": ("iris-v1", 100), "v2": ("iris-v2", 0)}

    again = switch(TARGET, routing_of(back.route), "v2")
    retired = retire(TARGET, routing_of(again.route))
    admitted_plan(retired)
    assert steps(retired) == {"v2": ("iris-v2", 100)}
    assert [(r.kind.kind, r.name) for r in retired.delete] == [("InferenceService", "iris-v1")]
    # Nothing left to roll back to once the old version is gone.
    assert "nothing to roll back to" in refused(rollback, TARGET, routing_of(retired.route))


def test_retire_refuses_a_version_that_still_gets_traffic() -> None:
    live = Routing({"v1": 100, "v2": 0})
    message = refused(retire, TARGET, live, ["v1"])
    assert "--version='v1': still receives 100% of the traffic" in message
    assert "--version='v9': is not deployed under iris" in refused(retire, TARGET, live, ["v9"])


def test_a_candidate_cannot_take_the_live_version_label() -> None:
    message = refused(blue_green, TARGET, V1, Routing({"v1": 100}))
    assert "--version='v1': receives traffic now" in message


def test_switch_and_rollback_name_unknown_versions() -> None:
    current = Routing({"v1": 100, "v2": 0})
    assert "--version='v3': unknown version (deployed: v1, v2)" in refused(
        switch, TARGET, current, "v3"
    )
    assert "--version='v3'" in refused(rollback, TARGET, current, "v3")


# A/B/n -------------------------------------------------------------------------------------


def test_abn_deploys_every_version_with_its_weight() -> None:
    plan = deploy(TARGET, [V1, V2, V3], {"v1": 50, "v2": 30, "v3": 20}, Routing())
    admitted_plan(plan)
    assert [v["metadata"]["name"] for v in plan.versions] == ["iris-v1", "iris-v2", "iris-v3"]
    assert steps(plan) == {"v1": ("iris-v1", 50), "v2": ("iris-v2", 30), "v3": ("iris-v3", 20)}

    moved = set_weights(TARGET, routing_of(plan.route), {"v1": 0, "v2": 90, "v3": 10})
    admitted_plan(moved)
    assert moved.versions == ()
    assert steps(moved) == {"v1": ("iris-v1", 0), "v2": ("iris-v2", 90), "v3": ("iris-v3", 10)}


@pytest.mark.parametrize(
    ("weights", "phrase"),
    [
        ({"v1": 60, "v2": 50}, "weights sum to 110, not 100"),
        ({"v1": 100, "v9": 0}, "unknown version 'v9' (deployed: v1, v2)"),
        ({"v1": 100}, "no weight for deployed version 'v2'"),
        ({"v1": 99.5, "v2": 0.5}, "v1: 99.5 is not a whole percent"),
        ({"v1": True, "v2": 99}, "v1: True is not a whole percent"),
        ({"v1": 150, "v2": -50}, "v1: 150 is not a whole percent from 0 to 100"),
        ("v1=100", "must map each version to a whole percent"),
    ],
)
def test_bad_weights_name_the_parameter(weights: object, phrase: str) -> None:
    message = refused(set_weights, TARGET, Routing({"v1": 100, "v2": 0}), weights)
    assert "--weights=" in message
    assert phrase in message


def test_sticky_routing_by_header_is_refused_on_kserve() -> None:
    message = refused(deploy, TARGET, [V1, V2], {"v1": 50, "v2": 50}, Routing(), "x-user")
    assert "--sticky-header='x-user': is not possible on the kserve target" in message
    assert "Splitter draws a version at random" in message


# Mirroring ---------------------------------------------------------------------------------


def test_mirror_copies_a_share_to_the_candidate_and_answers_from_the_live_version() -> None:
    plan = mirror(RAW, "v1", V2, 12.5)
    admitted_plan(plan)
    assert [v["metadata"]["name"] for v in plan.versions] == ["iris-v2"]
    assert plan.versions[0]["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == (
        "RawDeployment"
    )
    assert plan.route is not None
    live = "iris-v1-predictor.models.svc.cluster.local"
    assert plan.route["spec"]["hosts"] == [live]
    (http,) = plan.route["spec"]["http"]
    assert http["route"] == [{"destination": {"host": live}, "weight": 100}]
    assert http["mirror"] == {"host": "iris-v2-predictor.models.svc.cluster.local"}
    assert http["mirrorPercentage"] == {"value": 12.5}
    assert [n.ref.name for n in plan.requires] == ["iris-v1"]

    again = mirror(RAW, "v1", "v2", 100)
    admitted_plan(again)
    assert again.versions == ()
    assert [n.ref.name for n in again.requires] == ["iris-v1", "iris-v2"]

    stopped = stop_mirror(RAW, "v2")
    assert [(r.kind.kind, r.name) for r in stopped.delete] == [
        ("VirtualService", "iris"),
        ("InferenceService", "iris-v2"),
    ]


@pytest.mark.parametrize(
    ("percent", "phrase"),
    [
        (101, "--mirror-percent=101: must be 0, or from 0.0001 to 100"),
        (-1, "--mirror-percent=-1"),
        (0.00001, "--mirror-percent=1e-05"),
        ("ten", "--mirror-percent='ten': must be a number"),
    ],
)
def test_bad_mirror_percent_names_the_parameter(percent: object, phrase: str) -> None:
    assert phrase in refused(mirror, RAW, "v1", V2, percent)


def test_mirroring_needs_raw_deployment_mode() -> None:
    message = refused(mirror, TARGET, "v1", V2, 10)
    assert "--deployment-mode='': mirroring on KServe needs RawDeployment" in message
    assert "--version='v1': is the live version" in refused(mirror, RAW, "v1", "v1", 10)


# Names -------------------------------------------------------------------------------------


def test_version_names_are_dns_labels_short_enough_for_knative() -> None:
    assert service_name("iris", "v2") == "iris-v2"
    assert "--version='V2': a version must be lower-case" in refused(service_name, "iris", "V2")
    assert "--name='-iris'" in refused(service_name, "-iris", "v2")
    long_name = "m" * 40
    message = refused(service_name, long_name, "version-9")
    assert "50 characters long; at most 47 fit" in message
    assert service_name("m" * 40, "v12345") == "m" * 40 + "-v12345"  # 47: fits


def test_routing_round_trips_through_the_graph() -> None:
    routing = Routing({"v1": 0, "v2": 100}, previous="v1")
    assert routing_of(render_graph(TARGET, routing)) == routing


# The checks can fail -------------------------------------------------------------------------


def graph() -> dict[str, Any]:
    plan = deploy(TARGET, [V1, V2], {"v1": 90, "v2": 10}, Routing())
    assert plan.route is not None
    return copy.deepcopy(plan.route)


def test_the_webhook_rules_refuse_a_broken_graph() -> None:
    heavy = graph()
    heavy["spec"]["nodes"]["root"]["steps"][0]["weight"] = 100  # 110 in all
    assert crd_violations(heavy) == []  # the schema cannot see it
    assert webhook_violations(heavy) == [
        "InferenceGraph[iris] Node[root] splitter node: the sum of traffic weights for all "
        "routing targets should be 100"
    ]
    rootless = graph()
    rootless["spec"]["nodes"]["split"] = rootless["spec"]["nodes"].pop("root")
    assert webhook_violations(rootless) == [
        "root node not found, InferenceGraph needs a node with name 'root' as the root node of "
        "the graph"
    ]
    unweighted = graph()
    del unweighted["spec"]["nodes"]["root"]["steps"][1]["weight"]
    assert webhook_violations(unweighted) == [
        "InferenceGraph[iris] Node[root] Route[iris-v2] missing the 'Weight'"
    ]
    two_targets = graph()
    two_targets["spec"]["nodes"]["root"]["steps"][0]["serviceUrl"] = "http://elsewhere"
    assert webhook_violations(two_targets) == [
        'Step 0 ("v1") in node "root" of InferenceGraph "iris" specifies more than one of '
        "nodeName, serviceName, serviceUrl"
    ]


def test_the_schema_refuses_what_the_crd_does_not_know() -> None:
    typo = graph()
    typo["spec"]["nodes"]["root"]["routerType"] = "Mirror"
    assert any("'Mirror' is not one of" in v for v in crd_violations(typo))
    unknown = graph()
    unknown["spec"]["nodes"]["root"]["steps"][0]["wieght"] = 1
    assert any("'wieght' was unexpected" in v for v in crd_violations(unknown))


def test_the_istio_rules_refuse_a_broken_mirror() -> None:
    plan = mirror(RAW, "v1", V2, 10)
    assert plan.route is not None
    both = copy.deepcopy(plan.route)
    both["spec"]["http"][0]["mirrors"] = [{"destination": {"host": "iris-v3"}}]
    assert crd_violations(both) == []
    assert webhook_violations(both) == ["HTTP route cannot contain both mirror and mirrors"]
    over = copy.deepcopy(plan.route)
    over["spec"]["http"][0]["mirrorPercentage"] = {"value": 150.0}
    assert webhook_violations(over) == [
        "percentage 150 is neither 0.0, nor in range [0.0001, 100.0]"
    ]
    hostless = copy.deepcopy(plan.route)
    del hostless["spec"]["http"][0]["mirror"]["host"]
    assert any("'host' is a required property" in v for v in crd_violations(hostless))


def test_every_version_manifest_fits_the_inference_service_crd() -> None:
    admitted(render_version(TARGET, V1))
    admitted(render_version(RAW, V2))
