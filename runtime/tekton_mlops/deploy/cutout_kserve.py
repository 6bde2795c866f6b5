"""Take a KServe deployment out of service at once, whatever its traffic strategy.

What a deployment ``<name>`` is on the cluster (deploy-model's names): the InferenceService
``<name>`` (canary strategy), and for blue-green, mirror and A/B/n the InferenceGraph
``<name>`` routing to one InferenceService ``<name>-<version>`` per version, with the Istio
VirtualService ``<name>`` while a version is mirrored. Versions are found from the graph,
the VirtualService and the version folders of the deployments folder (the API is asked by
name only: listing needs more rights than deploying).

Out of service means deleted. Scaling to zero is not out of service: in Serverless mode
``minReplicas: 0`` lets Knative scale a predictor down when idle and back up on the next
request (``maxReplicas: 0`` means no upper bound), and in RawDeployment (Standard) mode
KServe's HPA cannot scale to zero at all. Deleting the InferenceService removes its
revisions, pods and routes in every mode.

Given which models to take out, exactly the InferenceServices serving them go (by the
``tekton-mlops.dev/model-digest`` annotation deploy-model sets, or their storageUri): the
graph is applied first without them, the versions left keeping their shares scaled back to
100, a VirtualService naming one of them is deleted, and only then the InferenceServices.
When no version with traffic would be left, the graph and every version go. A canary's
InferenceService is matched by what it was last applied with: the revision a canary runs
beside is not recorded by model, so it is only taken out with the whole service.

Example::

    cut = cut_out_kserve(KServe.connect(""), Path(".deployments"), "models", "iris", None, 300)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tekton_mlops.deploy import kserve_traffic as traffic
from tekton_mlops.deploy.cutout import CutOut, ModelRef, Served, Serves, deployed_model
from tekton_mlops.deploy.kserve import (
    INFERENCE_GRAPH,
    INFERENCE_SERVICE,
    VIRTUAL_SERVICE,
    KServe,
)
from tekton_mlops.deploy.kserve_rollout import execute
from tekton_mlops.deploy.local_routes import remaining_weights

DIGEST_ANNOTATION = "tekton-mlops.dev/model-digest"


def model_of(isvc: dict[str, Any]) -> ModelRef:
    annotations = isvc.get("metadata", {}).get("annotations") or {}
    model = ((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}
    return ModelRef(str(model.get("storageUri", "")), str(annotations.get(DIGEST_ANNOTATION, "")))


def _url(document: dict[str, Any] | None) -> str:
    return str(((document or {}).get("status") or {}).get("url") or "")


def _mirror_labels(route: dict[str, Any] | None, target: traffic.Target) -> list[str]:
    """The live and the mirrored version a VirtualService rendered here names."""
    labels = []
    suffix = f"-predictor.{target.namespace}.svc.cluster.local"
    for http in ((route or {}).get("spec") or {}).get("http") or []:
        hosts = [d.get("destination", {}).get("host", "") for d in http.get("route") or []]
        hosts.append((http.get("mirror") or {}).get("host", ""))
        for host in hosts:
            if host.startswith(f"{target.name}-") and host.endswith(suffix):
                labels.append(host[len(target.name) + 1 : -len(suffix)])
    return labels


def _recorded_versions(state: Path, name: str) -> list[str]:
    folder = state / name
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [v for v in found if traffic.DNS_1035.fullmatch(v) and deployed_model(folder / v)]


def cut_out_kserve(
    cluster: KServe,
    state: Path,
    namespace: str,
    name: str,
    serves: Serves | None,
    timeout: float,
    dry_run: bool = False,
    poll: float = 1.0,
) -> CutOut:
    """Take the KServe deployment ``name`` (or its parts serving ``serves``) out of service."""
    target = traffic.Target(name, namespace)
    taken: list[Served] = []
    deletes: list[traffic.Ref] = []
    isvc = cluster.find(INFERENCE_SERVICE, namespace, name)
    if isvc is not None and (serves is None or serves(model_of(isvc))):
        folder = state / name
        taken.append(Served(f"InferenceService {namespace}/{name}", _url(isvc), model_of(isvc),
                            folder if deployed_model(folder) else None))  # fmt: skip
        deletes.append(traffic.Ref(INFERENCE_SERVICE, namespace, name))

    graph = cluster.find(INFERENCE_GRAPH, namespace, name)
    route = cluster.find(VIRTUAL_SERVICE, namespace, name)
    current = traffic.routing_of(graph)
    mirrored = _mirror_labels(route, target)
    labels = dict.fromkeys([*current.weights, *mirrored, *_recorded_versions(state, name)])
    services = {
        label: found
        for label in labels
        if (found := cluster.find(INFERENCE_SERVICE, namespace, traffic.service_name(name, label)))
    }
    chosen = [v for v, s in services.items() if serves is None or serves(model_of(s))]
    weights = {v: w for v, w in current.weights.items() if v in services}
    after = remaining_weights(weights, chosen) if chosen and graph is not None else None
    if chosen and graph is not None and after is None:
        chosen = list(services)  # nothing live would be left: the whole deployment goes
    url = _url(graph)
    new_graph = None
    if graph is not None and (after is None and chosen or serves is None):
        taken.append(Served(f"InferenceGraph {namespace}/{name}", url, None))
        deletes.insert(0, traffic.Ref(INFERENCE_GRAPH, namespace, name))
    elif after is not None:
        previous = "" if current.previous in chosen else current.previous
        new_graph = traffic.render_graph(target, traffic.Routing(after, previous))
    if route is not None and (serves is None or set(mirrored) & set(chosen)):
        taken.append(Served(f"VirtualService {namespace}/{name}", "", None))
        deletes.insert(0, traffic.Ref(VIRTUAL_SERVICE, namespace, name))
        # A mirrored candidate is reached through the VirtualService only: it goes with it.
        chosen += [v for v in mirrored if v in services and v not in chosen and v not in weights]
    for label in chosen:
        service = services[label]
        folder = state / name / label
        taken.append(Served(f"InferenceService {namespace}/{traffic.service_name(name, label)}",
                            url or _url(service), model_of(service),
                            folder if deployed_model(folder) else None))  # fmt: skip
        deletes.append(traffic.Ref(INFERENCE_SERVICE, namespace, traffic.service_name(name, label)))
    if not dry_run and (deletes or new_graph is not None):
        execute(cluster, traffic.Plan(route=new_graph, delete=tuple(deletes)), timeout, poll)
    return CutOut("kserve", namespace, name, tuple(taken), after or {}, not dry_run)
