"""Traffic between versions of a model on KServe: blue-green, A/B/n and mirroring.

Every version is an InferenceService of its own, ``<name>-<version>``; one more object says
who gets the requests, and it is applied last, in one step, so a switch or a rollback is one
apply and a failure before it leaves the live routing as it was:

- blue-green and A/B/n: the InferenceGraph ``<name>``, a root ``Splitter`` with one step per
  version and its weight. Blue-green gives the candidate weight 0: KServe's webhook wants a
  weight on every Splitter step and a sum of 100, and accepts 0; its router draws a number
  below 100 and walks the cumulative weights, so a 0-weight step is never drawn. Clients call
  the graph's URL.
- mirroring: the Istio VirtualService ``<name>`` on the live version's predictor Service. It
  answers from the live version and copies ``mirror-percent`` % of the requests to the
  candidate; the copies' answers are dropped.
- canary keeps KServe's own ``canaryTrafficPercent`` (``kserve.py``).

Sticky routing by a request header across versions cannot be had on KServe (see
``STICKY_LIMIT``): it is refused, naming the parameter.

Functions here render and check only; ``kserve_rollout.execute`` applies a ``Plan`` in order.
Bad input raises ParameterError naming deploy-model's parameter, before anything is rendered.

Example::

    target = Target("iris", "models")
    plan = blue_green(target, Version("v2", "s3://models/iris/v2/"), Routing({"v1": 100}))
    # plan.versions: [InferenceService iris-v2]; plan.route: graph iris {v1: 100, v2: 0}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.deploy.kserve import (
    FIELD_MANAGER,
    INFERENCE_GRAPH,
    INFERENCE_SERVICE,
    VIRTUAL_SERVICE,
    Deployment,
    Kind,
    render,
)
from tekton_mlops.errors import ParameterError, Violation

STEP = "deploy-model"
#: A version's InferenceService becomes the Knative revision ``<isvc>-predictor-00001``, a
#: label value on its pods (at most 63 characters), so the InferenceService name stays <= 47.
MAX_SERVICE_NAME = 63 - len("-predictor-00001")
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
RAW_MODES = ("RawDeployment", "Standard")
PREVIOUS = "tekton-mlops.dev/previous-version"  # where a switch records what it switched from
STICKY_LIMIT = (
    "is not possible on the kserve target: the InferenceGraph Splitter draws a version at "
    "random for every request and its Switch node matches the request body, not headers; "
    "Istio's consistentHash (DestinationRule) hashes only among one service's endpoints, so "
    "it cannot keep a client on one of several weighted versions"
)


@dataclass(frozen=True)
class Target:
    """The model being served, and what every one of its versions' InferenceServices shares."""

    name: str
    namespace: str
    service_account: str = ""
    resources: Mapping[str, Any] = field(default_factory=dict)
    deployment_mode: str = ""  # Serverless, RawDeployment, Standard; empty: the cluster's
    payload_log_url: str = ""  # every version's payload logger posts here; empty: no logger


@dataclass(frozen=True)
class Version:
    label: str  # e.g. "v2": the InferenceService is <name>-<label>
    storage_uri: str
    model_digest: str = ""


@dataclass(frozen=True)
class Routing:
    """Who gets the traffic now: each version's weight in the graph, and what a rollback
    returns to (the version that had all of it before the last switch)."""

    weights: Mapping[str, int] = field(default_factory=dict)
    previous: str = ""


@dataclass(frozen=True)
class Ref:
    kind: Kind
    namespace: str
    name: str


@dataclass(frozen=True)
class Need:
    """An object that must exist before the plan writes anything, and the parameter to name
    if it does not."""

    param: str
    value: str
    ref: Ref


@dataclass(frozen=True)
class Plan:
    """One strategy operation, in the order it must happen."""

    versions: tuple[dict[str, Any], ...] = ()  # InferenceServices: applied, then all waited for
    route: dict[str, Any] | None = None  # the graph or VirtualService: applied once they are Ready
    delete: tuple[Ref, ...] = ()  # removed last, once the route no longer names them
    requires: tuple[Need, ...] = ()  # checked before the first write


def _refuse(*violations: Violation) -> None:
    if violations:
        raise ParameterError(STEP, violations)


def _label_problems(param: str, value: str, what: str) -> list[Violation]:
    if not DNS_1035.fullmatch(value):
        rule = (
            f"{what} must be lower-case letters, digits and '-', start with a letter and end "
            "with a letter or digit"
        )
        return [Violation(param, value, rule)]
    return []


def _service_problems(name: str, version: str) -> list[Violation]:
    problems = _label_problems("name", name, "a model name")
    problems += _label_problems("version", version, "a version")
    joined = f"{name}-{version}"
    if not problems and len(joined) > MAX_SERVICE_NAME:
        rule = (
            f"makes the InferenceService name {joined!r} {len(joined)} characters long; at most "
            f"{MAX_SERVICE_NAME} fit (its Knative revision name is a 63-character label)"
        )
        problems.append(Violation("version", version, rule))
    return problems


def service_name(name: str, version: str) -> str:
    """``<name>-<version>``: the version's InferenceService, a DNS-1035 label short enough."""
    _refuse(*_service_problems(name, version))
    return f"{name}-{version}"


def predictor_host(target: Target, version: str) -> str:
    """The in-cluster address of a version's predictor Service."""
    return f"{service_name(target.name, version)}-predictor.{target.namespace}.svc.cluster.local"


def _metadata(target: Target, name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": target.namespace,
        "labels": {
            "app.kubernetes.io/managed-by": FIELD_MANAGER,
            "app.kubernetes.io/name": target.name,
        },
    }
    kept = {k: v for k, v in annotations.items() if v}
    if kept:
        metadata["annotations"] = kept
    return metadata


def render_version(target: Target, version: Version) -> dict[str, Any]:
    """A version's InferenceService, as kserve.render makes one for a single deployment."""
    isvc = render(
        Deployment(
            service_name(target.name, version.label),
            target.namespace,
            version.storage_uri,
            service_account=target.service_account,
            resources=dict(target.resources),
            deployment_mode=target.deployment_mode,
            model_digest=version.model_digest,
            payload_log_url=target.payload_log_url,
        )
    )
    isvc["metadata"]["labels"].update(
        {"app.kubernetes.io/name": target.name, "app.kubernetes.io/version": version.label}
    )
    return isvc


def render_graph(target: Target, routing: Routing) -> dict[str, Any]:
    """The InferenceGraph ``<name>``: a root Splitter over the versions with their weights."""
    steps = [
        {"name": label, "serviceName": service_name(target.name, label), "weight": weight}
        for label, weight in routing.weights.items()
    ]
    annotations = {PREVIOUS: routing.previous}
    if target.deployment_mode:  # the graph's router runs in the same mode as the versions
        annotations["serving.kserve.io/deploymentMode"] = target.deployment_mode
    return {
        "apiVersion": INFERENCE_GRAPH.api_version,
        "kind": INFERENCE_GRAPH.kind,
        "metadata": _metadata(target, target.name, annotations),
        "spec": {"nodes": {"root": {"routerType": "Splitter", "steps": steps}}},
    }


def render_mirror(target: Target, live: str, candidate: str, percent: float) -> dict[str, Any]:
    """The VirtualService ``<name>``: the live version answers, ``percent`` % is copied.

    It is bound to the mesh on the live predictor's own host, the address in-cluster clients
    already call (the InferenceService's status.address in RawDeployment/Standard mode), so
    their sidecars do the copying. Requests that reach KServe through its ingress are not
    copied.
    """
    live_host = predictor_host(target, live)
    return {
        "apiVersion": VIRTUAL_SERVICE.api_version,
        "kind": VIRTUAL_SERVICE.kind,
        "metadata": _metadata(target, target.name, {}),
        "spec": {
            "hosts": [live_host],
            "gateways": ["mesh"],
            "http": [
                {
                    "name": f"{live}-mirrored-to-{candidate}",
                    "route": [{"destination": {"host": live_host}, "weight": 100}],
                    "mirror": {"host": predictor_host(target, candidate)},
                    "mirrorPercentage": {"value": float(percent)},
                }
            ],
        },
    }


def routing_of(graph: Mapping[str, Any] | None) -> Routing:
    """The Routing a graph rendered here describes; none for no graph."""
    if not graph:
        return Routing()
    steps = graph["spec"]["nodes"]["root"].get("steps") or []
    annotations = graph.get("metadata", {}).get("annotations") or {}
    return Routing({s["name"]: int(s["weight"]) for s in steps}, annotations.get(PREVIOUS, ""))


def _shown(labels: Sequence[str]) -> str:
    return ", ".join(labels) or "none"


def _weights(raw: object, deployed: Sequence[str]) -> tuple[dict[str, int], list[Violation]]:
    """Whole percents for exactly the deployed versions, summing to 100."""
    if not isinstance(raw, Mapping) or not raw:
        return {}, [Violation("weights", raw, "must map each version to a whole percent")]
    problems = []
    weights: dict[str, int] = {}
    for label, value in raw.items():
        if label not in deployed:
            rule = f"unknown version {label!r} (deployed: {_shown(deployed)})"
            problems.append(Violation("weights", raw, rule))
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            rule = f"{label}: {value!r} is not a whole percent from 0 to 100"
            problems.append(Violation("weights", raw, rule))
        else:
            weights[label] = value
    for label in deployed:
        if label not in raw:
            rule = f"no weight for deployed version {label!r}: give it 0 to keep it without traffic"
            problems.append(Violation("weights", raw, rule))
    total = sum(v for v in raw.values() if isinstance(v, int))
    if not problems and total != 100:
        problems.append(Violation("weights", raw, f"weights sum to {total}, not 100"))
    return weights, problems


def _sticky(sticky_header: str) -> list[Violation]:
    return [Violation("sticky-header", sticky_header, STICKY_LIMIT)] if sticky_header else []


def deploy(
    target: Target,
    versions: Sequence[Version],
    weights: object,
    current: Routing,
    sticky_header: str = "",
) -> Plan:
    """A/B/n: deploy ``versions`` (new or again) and split the traffic by ``weights``, which
    name every version the graph will hold (those deployed already and the new ones)."""
    labels = list(dict.fromkeys([*current.weights, *(v.label for v in versions)]))
    split, problems = _weights(weights, labels)
    problems += _sticky(sticky_header)
    for version in versions:
        problems += _service_problems(target.name, version.label)
    _refuse(*problems)
    isvcs = tuple(render_version(target, v) for v in versions)
    route = render_graph(target, Routing({k: split[k] for k in labels}, current.previous))
    return Plan(versions=isvcs, route=route)


def blue_green(target: Target, candidate: Version, current: Routing) -> Plan:
    """Deploy ``candidate`` beside the live version with no traffic (the first version of a
    model gets all of it). The versions already there keep their weights."""
    if candidate.label in current.weights and current.weights[candidate.label] > 0:
        rule = "receives traffic now; a candidate needs a version label of its own"
        _refuse(Violation("version", candidate.label, rule))
    weights = {**current.weights, candidate.label: 0 if current.weights else 100}
    return deploy(target, [candidate], weights, current)


def switch(target: Target, current: Routing, version: str) -> Plan:
    """All traffic to ``version`` in one apply; the others stay deployed for a rollback."""
    _known(current, version)
    live = [label for label, weight in current.weights.items() if weight == 100]
    previous = live[0] if live and live[0] != version else current.previous
    weights = {label: 100 if label == version else 0 for label in current.weights}
    return Plan(route=render_graph(target, Routing(weights, previous)))


def rollback(target: Target, current: Routing, version: str = "") -> Plan:
    """All traffic back to ``version``, by default the one the last switch moved it from."""
    back = version or current.previous
    if not back:
        rule = "nothing to roll back to: no switch was recorded; name the version to return to"
        _refuse(Violation("version", "", rule))
    _known(current, back)
    weights = {label: 100 if label == back else 0 for label in current.weights}
    return Plan(route=render_graph(target, Routing(weights, "")))


def retire(target: Target, current: Routing, versions: Sequence[str] = ()) -> Plan:
    """Remove versions that get no traffic (by default all of them): out of the graph first,
    then their InferenceServices deleted."""
    idle = [label for label, weight in current.weights.items() if weight == 0]
    chosen = list(versions) or idle
    problems = []
    for label in chosen:
        if label not in current.weights:
            rule = (
                f"is not deployed under {target.name} (deployed: {_shown(list(current.weights))})"
            )
            problems.append(Violation("version", label, rule))
        elif current.weights[label] > 0:
            rule = f"still receives {current.weights[label]}% of the traffic; move it away first"
            problems.append(Violation("version", label, rule))
    if not chosen:
        problems.append(Violation("version", "", "no version without traffic to retire"))
    _refuse(*problems)
    kept = {label: w for label, w in current.weights.items() if label not in chosen}
    previous = "" if current.previous in chosen else current.previous
    refs = tuple(
        Ref(INFERENCE_SERVICE, target.namespace, service_name(target.name, label))
        for label in chosen
    )
    return Plan(route=render_graph(target, Routing(kept, previous)), delete=refs)


def set_weights(target: Target, current: Routing, weights: object, sticky_header: str = "") -> Plan:
    """New weights for the deployed versions, in one apply of the graph."""
    return deploy(target, [], weights, current, sticky_header)


def _known(current: Routing, version: str) -> None:
    if version not in current.weights:
        rule = f"unknown version (deployed: {_shown(list(current.weights))})"
        _refuse(Violation("version", version, rule))


def _percent(percent: object) -> list[Violation]:
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        return [Violation("mirror-percent", percent, "must be a number from 0 to 100")]
    # istiod refuses a share above 0 but below 0.0001 %, which Envoy cannot express.
    if not (percent == 0 or 0.0001 <= percent <= 100):
        return [Violation("mirror-percent", percent, "must be 0, or from 0.0001 to 100")]
    return []


def mirror(target: Target, live: str, candidate: Version | str, percent: object) -> Plan:
    """Copy ``percent`` % of the live version's requests to ``candidate`` (deployed here if a
    Version is given); clients only ever get the live answer."""
    label = candidate if isinstance(candidate, str) else candidate.label
    problems = _percent(percent) + _service_problems(target.name, live)
    problems += _service_problems(target.name, label)
    if target.deployment_mode not in RAW_MODES:
        rule = (
            "mirroring on KServe needs RawDeployment (Standard): the copy goes to the "
            "candidate's predictor Service, and in Serverless mode Knative's gateway picks "
            "the revision by the Host header, which the copy keeps from the live request"
        )
        problems.append(Violation("deployment-mode", target.deployment_mode, rule))
    if label == live:
        problems.append(Violation("version", label, "is the live version; mirror to another"))
    _refuse(*problems)
    needs = [live] if isinstance(candidate, Version) else [live, label]
    requires = tuple(
        Need("version", v, Ref(INFERENCE_SERVICE, target.namespace, service_name(target.name, v)))
        for v in needs
    )
    isvcs = () if isinstance(candidate, str) else (render_version(target, candidate),)
    assert isinstance(percent, int | float)  # checked above
    return Plan(
        versions=isvcs,
        route=render_mirror(target, live, label, percent),
        requires=requires,
    )


def stop_mirror(target: Target, candidate: str) -> Plan:
    """End mirroring: the VirtualService goes first (requests go to the live version as
    before it), then the candidate's InferenceService."""
    refs = (
        Ref(VIRTUAL_SERVICE, target.namespace, target.name),
        Ref(INFERENCE_SERVICE, target.namespace, service_name(target.name, candidate)),
    )
    return Plan(delete=refs)
