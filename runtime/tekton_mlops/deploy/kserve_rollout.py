"""Carry out a traffic Plan (kserve_traffic) on the cluster, in the order that keeps the live
routing safe.

1. Every object the plan requires is read; one missing is a parameter error (exit 2) and
   nothing has been written.
2. The versions' InferenceServices are applied, then each is waited for until Ready.
3. Only then the route (InferenceGraph or VirtualService) is applied, in one request: that is
   the switch. A graph is waited for until Ready; a VirtualService has no status to wait for.
4. Objects the route no longer names are deleted last.

A failure in 1 or 2 (refused by the API server, not Ready in time) raises before step 3, so
the route clients use is untouched. A version applied in 2 may stay behind, without traffic;
running the operation again continues from there (server-side apply makes it a no-op).

Example::

    cluster = KServe.connect("")
    plan = blue_green(target, Version("v2", uri), current_routing(cluster, target))
    outcome = execute(cluster, plan, timeout=300)
"""

from __future__ import annotations

from dataclasses import dataclass

from tekton_mlops.deploy.kserve import INFERENCE_GRAPH, KServe, kind_of
from tekton_mlops.deploy.kserve_traffic import STEP, Plan, Routing, Target, routing_of
from tekton_mlops.errors import ParameterError, Violation


@dataclass(frozen=True)
class Outcome:
    url: str  # the graph's URL once Ready; empty for a VirtualService or a plan without route
    applied: tuple[str, ...]  # "Kind namespace/name", in order
    deleted: tuple[str, ...]


def current_routing(cluster: KServe, target: Target) -> Routing:
    """The weights in the model's graph now; none if it has no graph yet."""
    return routing_of(cluster.find(INFERENCE_GRAPH, target.namespace, target.name))


def execute(cluster: KServe, plan: Plan, timeout: float, poll: float = 1.0) -> Outcome:
    missing = [
        Violation(need.param, need.value, f"not deployed: no {need.ref.kind.kind} "
                  f"{need.ref.namespace}/{need.ref.name}")
        for need in plan.requires
        if cluster.find(need.ref.kind, need.ref.namespace, need.ref.name) is None
    ]  # fmt: skip
    if missing:
        raise ParameterError(STEP, missing)
    applied = []
    generations = []
    for isvc in plan.versions:
        answer = cluster.apply(isvc)
        generations.append(int(answer.get("metadata", {}).get("generation") or 0))
        applied.append(_named(isvc))
    for isvc, generation in zip(plan.versions, generations, strict=True):
        meta = isvc["metadata"]
        cluster.wait_ready(meta["namespace"], meta["name"], generation, timeout, poll)
    url = ""
    if plan.route is not None:
        cluster.apply(plan.route)
        applied.append(_named(plan.route))
        kind = kind_of(plan.route)
        if kind == INFERENCE_GRAPH:
            meta = plan.route["metadata"]
            ready = cluster.wait_ready(meta["namespace"], meta["name"], 0, timeout, poll, kind)
            url = str((ready.get("status") or {}).get("url") or "")
    deleted = []
    for ref in plan.delete:
        if cluster.delete(ref.kind, ref.namespace, ref.name):
            deleted.append(f"{ref.kind.kind} {ref.namespace}/{ref.name}")
    return Outcome(url, tuple(applied), tuple(deleted))


def _named(document: dict[str, object]) -> str:
    meta = document["metadata"]
    assert isinstance(meta, dict)
    return f"{document['kind']} {meta['namespace']}/{meta['name']}"
