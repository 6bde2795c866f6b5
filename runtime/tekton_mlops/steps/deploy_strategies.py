"""deploy-model's release strategies beyond the canary: blue-green, mirror and A/B/n.

The same parameters mean the same on both targets; only the machinery differs:

============  ==================================  =========================================
strategy      local (a router before the servers)  kserve (one InferenceService per version)
============  ==================================  =========================================
blue-green    a version at weight 0, then a        an InferenceGraph Splitter: 100 / 0, then
              one-write switch of the table        one apply of the graph
mirror        the router copies mirror-percent     an Istio VirtualService: route to the live
              of live requests, records answers    version, ``mirror`` to the candidate
abn           weights (and a sticky header)        the Splitter's weights (no sticky routing)
============  ==================================  =========================================

Actions: deploy (model-uri), promote (blue-green: switch to ``version``; mirror: the
mirrored version goes live), rollback (traffic back on the version live before
``version``, then ``version`` removed), retire (versions without traffic removed),
route (abn: new weights only). Everything a run is asked is checked before the model
is pulled and before anything changes; a candidate that does not come up leaves the
live routing as it was.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tekton_mlops.contract import StepContext
from tekton_mlops.deploy.kserve import DeployError
from tekton_mlops.errors import ParameterError, Violation
from tekton_mlops.results import ResultValue

if TYPE_CHECKING:
    from tekton_mlops.deploy.kserve import KServe
    from tekton_mlops.deploy.kserve_traffic import Plan, Target

STEP = "deploy-model"
COLOURS = ("blue", "green")
#: Pull a model into a folder and verify its signature: the verified root digest.
Pull = Callable[[Any, Path, StepContext], str]
#: Write the deploy's lineage record in a folder: (params, ctx, folder, url, digest).
Record = Callable[[Any, StepContext, Path, str, str], None]


class Params(Protocol):
    """The deploy-model params a strategy reads (the step's Params dataclass has them)."""

    @property
    def model_uri(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def canary_traffic_percent(self) -> int: ...
    @property
    def strategy(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def weights(self) -> dict[str, int]: ...
    @property
    def sticky_header(self) -> str: ...
    @property
    def mirror_percent(self) -> float: ...
    @property
    def payload_log_url(self) -> str: ...
    @property
    def public_key(self) -> str: ...
    @property
    def service_account(self) -> str: ...
    @property
    def resources(self) -> dict[str, Any]: ...
    @property
    def deployment_mode(self) -> str: ...
    @property
    def timeout(self) -> int: ...
    @property
    def kubeconfig(self) -> str: ...
    @property
    def port(self) -> int: ...


def _refuse(*problems: Violation) -> None:
    if problems:
        raise ParameterError(STEP, list(problems))


def check(params: Params, action: str) -> None:
    """What does not fit the strategy, before anything is read or changed."""
    strategy = params.strategy
    problems = []
    if params.canary_traffic_percent:
        problems.append(
            Violation("canary-traffic-percent", str(params.canary_traffic_percent),
                      f"applies to the canary strategy, not {strategy}")
        )  # fmt: skip
    if strategy != "abn" and params.weights:
        problems.append(Violation("weights", _compact(params.weights), "applies to abn only"))
    if strategy != "abn" and params.sticky_header:
        problems.append(Violation("sticky-header", params.sticky_header, "applies to abn only"))
    if strategy == "abn" and action in ("promote", "rollback"):
        rule = "abn has no candidate to promote or roll back: set weights instead"
        problems.append(Violation(action, "true", rule))
    if strategy == "abn" and action == "deploy" and not params.version:
        problems.append(Violation("version", "", "is required to deploy an abn version"))
    mirror_promote = strategy == "mirror" and action == "promote"
    if mirror_promote and params.target == "kserve" and not params.version:
        problems.append(Violation("version", "", "names the mirrored version to promote"))
    if action == "rollback" and not params.version:
        problems.append(Violation("version", "", "names the version to roll back"))
    _refuse(*problems)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _next_colour(versions: Mapping[str, int]) -> str:
    """Blue or green: whichever is not live (blue for a first deploy)."""
    live = [v for v, w in versions.items() if w]
    return COLOURS[1] if live and live[0] == COLOURS[0] else COLOURS[0]


def _idle_version(weights: Mapping[str, int], exclude: str = "") -> str:
    idle = [v for v, w in weights.items() if not w and v != exclude]
    if len(idle) != 1:
        rule = f"name the version to promote (without traffic: {', '.join(idle) or 'none'})"
        _refuse(Violation("version", "", rule))
    return idle[0]


def _results(url: str, live: str, weights: Mapping[str, int], candidate_url: str,
             digest: str) -> dict[str, ResultValue]:  # fmt: skip
    return {
        "url": url,
        "revision": live,
        "model-digest": digest,
        "versions": _compact(dict(weights)),
        "candidate-url": candidate_url,
    }


# --- local ---------------------------------------------------------------------------


def local(
    params: Params, action: str, ctx: StepContext, state: Path, pull: Pull, record: Record
) -> dict[str, ResultValue]:
    from tekton_mlops.deploy import local_routes

    name = params.name
    routing = local_routes.status(state, name)
    digest, version = "", params.version
    if action == "deploy":
        from tekton_mlops.storage.publish import check_writable_directory

        check_writable_directory(state)
        version = version or _next_colour(routing.weights)
        if params.strategy == "mirror" and not routing.primary:
            rule = "mirroring needs a live version: deploy the first one with blue-green or abn"
            _refuse(Violation("strategy", "mirror", rule))
        if params.strategy == "abn" and (params.weights or params.sticky_header):
            local_routes.check_split(state, name, version, params.weights, params.sticky_header)
        with tempfile.TemporaryDirectory(prefix="deploy-model-") as stage:
            digest = pull(params, Path(stage), ctx)
            routing = local_routes.deploy_version(
                state, name, version, Path(stage), router_port=params.port
            )
        try:
            if params.strategy == "mirror":
                routing = local_routes.mirror(state, name, version, params.mirror_percent)
            elif params.weights or params.sticky_header:
                routing = local_routes.set_weights(
                    state, name, params.weights or routing.weights, params.sticky_header
                )
        except BaseException:
            local_routes.retire(state, name, version)  # nothing half done: the version goes
            raise
        record(params, ctx, state / name / "versions" / version, routing.url, digest)
    elif action == "route":
        routing = local_routes.set_weights(state, name, params.weights, params.sticky_header)
    elif action == "promote" and params.strategy == "mirror":
        routing = local_routes.promote_mirror(state, name)
        version = routing.primary
    elif action == "promote":
        mirrored = routing.mirror.version if routing.mirror else ""
        version = version or _idle_version(routing.weights, exclude=mirrored)
        previous = routing.primary
        routing = local_routes.switch(state, name, version)
        (state / name / "router" / "previous").write_text(previous)
    elif action == "rollback" and params.strategy == "mirror":
        routing = local_routes.rollback_mirror(state, name)
    elif action == "rollback":
        routing = _local_rollback(state, name, version, routing)
    else:  # retire
        chosen = [version] if version else [
            v for v, w in routing.weights.items()
            if not w and not (routing.mirror and routing.mirror.version == v)
        ]  # fmt: skip
        if not chosen:
            _refuse(Violation("version", "", "no version without traffic to retire"))
        for each in chosen:
            routing = local_routes.retire(state, name, each)
    ctx.log.info("%s %s (%s): %s at %s", action, name, params.strategy,
                 _compact(routing.weights), routing.url)  # fmt: skip
    candidate_url = routing.versions.get(version, "")
    return _results(routing.url, routing.primary, routing.weights, candidate_url, digest)


def _logging_live(cluster: KServe, target: Target, live: str, plan: Plan) -> Plan:
    """With payload logs, the live version logs too, or its halves of the pairs are missing:
    its InferenceService gets the logger first (a rolling update of its pods; it answers
    throughout), then the candidate, then the route."""
    from dataclasses import replace

    from tekton_mlops.deploy import kserve_traffic as traffic
    from tekton_mlops.deploy.kserve import INFERENCE_SERVICE, with_logger

    if not target.payload_log_url:
        return plan
    name = traffic.service_name(target.name, live)
    current = cluster.find(INFERENCE_SERVICE, target.namespace, name)
    logged = with_logger(current, target.payload_log_url) if current is not None else None
    return replace(plan, versions=(logged, *plan.versions)) if logged else plan


def _local_rollback(state: Path, name: str, version: str, routing: Any) -> Any:
    """Traffic back on the version live before ``version`` (if it has any), then it goes."""
    from tekton_mlops.deploy import local_routes

    if version not in routing.weights:
        deployed = ", ".join(routing.weights) or "none"
        _refuse(Violation("version", version, f"is not deployed (deployed: {deployed})"))
    if routing.weights[version]:
        saved = state / name / "router" / "previous"
        previous = saved.read_text().strip() if saved.is_file() else ""
        others = [v for v in routing.weights if v != version]
        back = previous if previous in others else (others[0] if len(others) == 1 else "")
        if not back:
            raise DeployError(f"{name}: no version to roll back to from {version}")
        routing = local_routes.switch(state, name, back)
    return local_routes.retire(state, name, version)


# --- kserve --------------------------------------------------------------------------


def kserve(
    params: Params, action: str, ctx: StepContext, state: Path, pull: Pull, record: Record
) -> dict[str, ResultValue]:
    from tekton_mlops.deploy import kserve_traffic as traffic
    from tekton_mlops.deploy.kserve import (
        INFERENCE_GRAPH,
        INFERENCE_SERVICE,
        VIRTUAL_SERVICE,
        KServe,
    )
    from tekton_mlops.deploy.kserve_rollout import current_routing, execute

    target = traffic.Target(params.name, params.namespace or "default", params.service_account,
                            params.resources, params.deployment_mode,
                            params.payload_log_url)  # fmt: skip
    cluster = KServe.connect(params.kubeconfig)
    current = current_routing(cluster, target)
    version, digest = params.version, ""

    def plan_for(candidate: traffic.Version) -> traffic.Plan:
        if params.strategy == "blue-green":
            return traffic.blue_green(target, candidate, current)
        if params.strategy == "mirror":
            live = [v for v, w in current.weights.items() if w == 100]
            if not live:
                rule = "mirroring needs a live version at 100%: deploy one with blue-green first"
                _refuse(Violation("strategy", "mirror", rule))
            plan = traffic.mirror(target, live[0], candidate, params.mirror_percent)
            return _logging_live(cluster, target, live[0], plan)
        weights = params.weights or {**current.weights, candidate.label: 0 if current.weights
                                     else 100}  # fmt: skip
        return traffic.deploy(target, [candidate], weights, current, params.sticky_header)

    plans: list[traffic.Plan]
    if action == "deploy":
        from tekton_mlops.storage.publish import check_writable_directory

        version = version or _next_colour(current.weights)
        plan_for(traffic.Version(version, params.model_uri))  # every check, before the pull
        check_writable_directory(state)
        if params.public_key:
            with tempfile.TemporaryDirectory(prefix="deploy-model-") as stage:
                digest = pull(params, Path(stage), ctx)
        plans = [plan_for(traffic.Version(version, params.model_uri, digest))]
    elif action == "route":
        plans = [traffic.set_weights(target, current, params.weights, params.sticky_header)]
    elif action == "promote" and params.strategy == "mirror":
        weights = {**{v: 0 for v in current.weights}, version: 100}
        live = [v for v, w in current.weights.items() if w == 100]
        graph = traffic.render_graph(target, traffic.Routing(weights, live[0] if live else ""))
        vs = traffic.Ref(VIRTUAL_SERVICE, target.namespace, target.name)
        need = traffic.Need(
            "version",
            version,
            traffic.Ref(
                INFERENCE_SERVICE, target.namespace, traffic.service_name(target.name, version)
            ),
        )
        plans = [traffic.Plan(route=graph, delete=(vs,), requires=(need,))]
    elif action == "promote":
        version = version or _idle_version(current.weights)
        plans = [traffic.switch(target, current, version)]
    elif action == "rollback" and params.strategy == "mirror":
        plans = [traffic.stop_mirror(target, version)]
    elif action == "rollback":
        if current.weights.get(version):
            back = traffic.rollback(target, current)
            plans = [back, traffic.retire(target, traffic.routing_of(back.route), [version])]
        else:
            plans = [traffic.retire(target, current, [version])]
    else:  # retire
        plans = [traffic.retire(target, current, [version] if version else ())]
    url = ""
    for plan in plans:
        url = execute(cluster, plan, params.timeout).url or url
    applied = cluster.find(INFERENCE_GRAPH, target.namespace, target.name)
    after = traffic.routing_of(applied)
    if not url and applied is not None:
        url = str((applied.get("status") or {}).get("url") or "")
    if action == "deploy":
        record(params, ctx, state / params.name / version, url, digest)
    primary = max(after.weights, key=lambda v: after.weights[v], default="")
    candidate_url = f"http://{traffic.predictor_host(target, version)}" if version else ""
    ctx.log.info("%s %s/%s (%s): %s at %s", action, target.namespace, target.name,
                 params.strategy, _compact(after.weights), url or "(no graph)")  # fmt: skip
    return _results(url, primary, after.weights, candidate_url, digest)
