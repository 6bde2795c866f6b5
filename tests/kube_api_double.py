"""A TEST DOUBLE of the Kubernetes API server, for the custom resources deploy-model writes.

No API server can run on this machine, so deploy-model's kserve target is tested
against this double: a small HTTP server that speaks the calls the runtime makes
(server-side apply as ``PATCH …?fieldManager=…&force=true`` with
``application/apply-patch+yaml``, ``GET`` and ``DELETE``) on
``/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>`` for three kinds: KServe's
InferenceService (serving.kserve.io/v1beta1) and InferenceGraph (v1alpha1), and Istio's
VirtualService (networking.istio.io/v1). Everything applied or deleted is recorded for
assertions.

Like an API server with those CRDs installed, it validates every object it receives against
the CRD's schema (tests/schemas, origin in its README) and answers 422 Invalid, with the
violations, to one that does not fit. The rules the CRDs leave to admission webhooks are
here as code (``webhook_violations``): KServe's InferenceGraph validator and the istiod rules
a mirroring route meets; a denial is answered 403 as the API server relays a webhook's
refusal. There is no webhook for InferenceServices, no field ownership beyond "the last
apply wins", and no CEL.

It plays the controllers too: a new generation of an InferenceService becomes Ready after a
few reads, with a URL and a new revision name; an InferenceGraph becomes Ready once every
InferenceService it names exists and is Ready (KServe's graph controller requeues until
then), and like that controller it reports no observedGeneration. VirtualServices have no
status (istiod writes none unless analysis is on).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tekton_mlops.httpjson import JsonHandler

SCHEMAS = Path(__file__).resolve().parent / "schemas"
SCHEMA = SCHEMAS / "kserve" / "inferenceservice_v1beta1.json"


# KServe's InferenceGraph webhook (pkg/apis/serving/v1alpha1/inference_graph_validation.go):
# it stops at the first broken rule, in this order, with these messages.
_GRAPH_NAME = "[a-z]([-a-z0-9]*[a-z0-9])?"


def graph_webhook_violations(graph: dict[str, Any]) -> list[str]:
    name = graph.get("metadata", {}).get("name", "")
    nodes: dict[str, Any] = (graph.get("spec") or {}).get("nodes") or {}
    if not re.fullmatch(_GRAPH_NAME, name):
        return [
            f'The InferenceGraph "{name}" is invalid: a InferenceGraph name must consist of '
            "lower case alphanumeric characters or '-', and must start with alphabetical "
            f'character. (e.g. "my-name" or "abc-123", regex used for validation is '
            f"'{_GRAPH_NAME}')"
        ]
    if "root" not in nodes:
        return [
            "root node not found, InferenceGraph needs a node with name 'root' as the root "
            "node of the graph"
        ]
    for node_name, node in sorted(nodes.items()):
        seen: set[str] = set()
        for step in node.get("steps") or []:
            step_name = step.get("name", "")
            if step_name and step_name in seen:
                return [
                    f'Node "{node_name}" of InferenceGraph "{name}" contains more than one '
                    f'step with name "{step_name}"'
                ]
            seen.add(step_name)
    for node_name, node in sorted(nodes.items()):
        for i, step in enumerate(node.get("steps") or []):
            targets = [k for k in ("nodeName", "serviceName", "serviceUrl") if step.get(k)]
            step_name = step.get("name", "")
            where = f'Step {i} ("{step_name}") in node "{node_name}" of InferenceGraph "{name}"'
            if not targets:
                return [f"{where} does not specify an inference target"]
            if len(targets) > 1:
                return [f"{where} specifies more than one of nodeName, serviceName, serviceUrl"]
    for node_name, node in sorted(nodes.items()):
        if node.get("routerType") != "Splitter":
            continue
        total = 0
        for step in node.get("steps") or []:
            if step.get("weight") is None:
                service = step.get("serviceName", "")
                where = f"InferenceGraph[{name}] Node[{node_name}] Route[{service}]"
                return [f"{where} missing the 'Weight'"]
            total += int(step["weight"])
        if total != 100:
            return [
                f"InferenceGraph[{name}] Node[{node_name}] splitter node: the sum of traffic "
                "weights for all routing targets should be 100"
            ]
    return []


# istiod's VirtualService validation (pkg/config/validation), the rules a route that splits or
# mirrors traffic meets; all of them are reported at once, as istiod does.
def _percentage(value: Any) -> str:
    number = float(value)
    if number < 0.0 or number > 100.0 or 0.0 < number < 0.0001:
        return f"percentage {number:g} is neither 0.0, nor in range [0.0001, 100.0]"
    return ""


def route_webhook_violations(service: dict[str, Any]) -> list[str]:
    spec = service.get("spec") or {}
    problems = []
    if not spec.get("hosts"):
        problems.append("virtual service must have at least one host")
    for route in spec.get("http") or []:
        if not (route.get("route") or route.get("redirect") or route.get("directResponse")):
            problems.append("HTTP route, redirect or direct_response is required")
        if route.get("mirror") is not None and route.get("mirrors"):
            problems.append("HTTP route cannot contain both mirror and mirrors")
        percentages = [route.get("mirrorPercentage")]
        percentages += [m.get("percentage") for m in route.get("mirrors") or []]
        problems += [
            p for p in (_percentage(c["value"]) for c in percentages if c and "value" in c) if p
        ]
        for legacy in ("mirrorPercent", "mirror_percent"):
            if route.get(legacy) is not None and not 0 <= route[legacy] <= 100:
                problems.append(f"percentage {route[legacy]} is not in range 0..100")
        for destination in route.get("route") or []:
            if destination.get("weight", 0) < 0:
                problems.append(f"weight {destination['weight']} < 0")
    return problems


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    schema: Path
    webhook: str = ""  # the name the API server gives the admission webhook that denies
    rules: Callable[[dict[str, Any]], list[str]] | None = None


ISVC = Resource("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", SCHEMA)
GRAPH = Resource(
    "serving.kserve.io", "v1alpha1", "inferencegraphs", "InferenceGraph",
    SCHEMAS / "kserve" / "inferencegraph_v1alpha1.json",
    "inferencegraph.kserve-webhook-server.validator", graph_webhook_violations,
)  # fmt: skip
ROUTE = Resource(
    "networking.istio.io", "v1", "virtualservices", "VirtualService",
    SCHEMAS / "istio" / "virtualservice_v1.json",
    "validation.istio.io", route_webhook_violations,
)  # fmt: skip
RESOURCES = {(r.group, r.version, r.plural): r for r in (ISVC, GRAPH, ROUTE)}


def _resource_of(document: dict[str, Any]) -> Resource:
    """By the manifest's kind; anything else is checked as an InferenceService, as before."""
    return next((r for r in (GRAPH, ROUTE) if document.get("kind") == r.kind), ISVC)


@functools.cache
def _validator(schema: Path) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(schema.read_text()))


def crd_violations(document: dict[str, Any]) -> list[str]:
    """What the API server says of an object that does not fit its CRD's schema."""
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in _validator(_resource_of(document).schema).iter_errors(document)
    ]


def webhook_violations(document: dict[str, Any]) -> list[str]:
    """What the kind's admission webhook says of an object the schema lets through."""
    rules = _resource_of(document).rules
    return rules(document) if rules else []


_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)"
    r"/(?P<plural>[^/]+)/(?P<name>[^/?]+)"
)

Key = tuple[str, str, str]  # plural, namespace, name


@dataclass
class KubeApiDouble:
    ready_after_reads: int = 2
    never_ready: bool = False  # keeps every InferenceService not Ready (a stuck rollout)
    stuck: set[str] = field(default_factory=set)  # names of objects that never become Ready
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # answered 422 or 403
    deleted: list[Key] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, type
    _reads: dict[Key, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def writes(self) -> list[tuple[str, str, str]]:
        """Every request that would change the cluster."""
        return [r for r in self.requests if r[0] in ("PATCH", "DELETE", "POST", "PUT")]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (kind as its plural, e.g. ``inferencegraphs``)."""
        return self.objects.get((kind, namespace, name))

    def start(self) -> KubeApiDouble:
        double = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.0"  # the kubernetes client's pool copes either way

            def _send(self, status: int, document: dict[str, Any]) -> None:
                self.reply(status, document)

            def _target(self) -> tuple[Resource, Key] | None:
                match = _PATH.match(self.path)
                resource = match and RESOURCES.get(
                    (match["group"], match["version"], match["plural"])
                )
                if not match or not resource:
                    message = "the server could not find the requested resource"
                    self._send(404, {"kind": "Status", "reason": "NotFound", "message": message})
                    return None
                return resource, (resource.plural, match["ns"], match["name"])

            def _not_found(self, resource: Resource, key: Key) -> None:
                if resource is ISVC:  # the double's wording for InferenceServices, as before
                    message = f"inferenceservices.serving.kserve.io {key[2]!r} not found"
                else:
                    message = f'{resource.plural}.{resource.group} "{key[2]}" not found'
                self._send(404, {"kind": "Status", "reason": "NotFound", "message": message})

            def do_GET(self) -> None:  # noqa: N802
                double.requests.append(("GET", self.path, ""))
                target = self._target()
                if target is None:
                    return
                resource, key = target
                if key not in double.objects:
                    self._not_found(resource, key)
                    return
                self._send(200, double._observe(key))

            def do_DELETE(self) -> None:  # noqa: N802
                double.requests.append(("DELETE", self.path, ""))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)  # DeleteOptions, if any
                target = self._target()
                if target is None:
                    return
                resource, key = target
                if key not in double.objects:
                    self._not_found(resource, key)
                    return
                del double.objects[key]
                double.deleted.append(key)
                details = {"name": key[2], "group": resource.group, "kind": resource.plural}
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                 "details": details})  # fmt: skip

            def do_PATCH(self) -> None:  # noqa: N802
                kind = self.headers.get("Content-Type", "")
                double.requests.append(("PATCH", self.path, kind))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                match = _PATH.match(self.path)
                resource = match and RESOURCES.get(
                    (match["group"], match["version"], match["plural"])
                )
                if (
                    not match
                    or not resource
                    or kind != "application/apply-patch+yaml"
                    or "fieldManager=" not in self.path
                ):
                    self._send(415, {"kind": "Status", "message": "expected a server-side apply"})
                    return
                name = match["name"]
                violations = crd_violations(body)
                if body.get("kind", resource.kind) != resource.kind:
                    violations = [f"kind: {body['kind']!r} is not {resource.kind}"]
                if violations:
                    double.rejected.append(body)
                    self._send(422, {
                        "kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Invalid", "code": 422,
                        "message": f'{resource.kind}.{resource.group} "{name}" is invalid: '
                        + "; ".join(violations),
                    })  # fmt: skip
                    return
                denied = resource.rules(body) if resource.rules else []
                if denied:
                    double.rejected.append(body)
                    self._send(403, {
                        "kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Forbidden", "code": 403,
                        "message": f'admission webhook "{resource.webhook}" denied the request: '
                        + "; ".join(denied),
                    })  # fmt: skip
                    return
                self._send(200, double._apply((resource.plural, match["ns"], name), body))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll: stop() returns as soon as the test is done with the double.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        threading.Thread(target=serve, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "double", "cluster": {"server": self.url}}],
                    "users": [{"name": "tekton", "user": {"token": "double-token"}}],
                    "contexts": [
                        {"name": "double", "context": {"cluster": "double", "user": "tekton"}}
                    ],
                    "current-context": "double",
                }
            )
        )
        return path

    # The controllers' part --------------------------------------------------------------

    def _apply(self, key: Key, body: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(copy.deepcopy(body))
        current = self.objects.get(key)
        if current is None:
            current = {**copy.deepcopy(body), "status": {}}
            current["metadata"]["generation"] = 1
        elif current["spec"] != body["spec"]:
            current["spec"] = copy.deepcopy(body["spec"])
            current["metadata"]["generation"] += 1
        for field_name in ("labels", "annotations"):  # the applier's own, as it sent them
            if field_name in body["metadata"]:
                current["metadata"][field_name] = copy.deepcopy(body["metadata"][field_name])
            else:
                current["metadata"].pop(field_name, None)
        self.objects[key] = current
        self._reads[key] = 0
        return copy.deepcopy(current)

    def _observe(self, key: Key) -> dict[str, Any]:
        self._reads[key] = self._reads.get(key, 0) + 1
        if key[0] == ISVC.plural:
            return self._observe_service(key)
        if key[0] == GRAPH.plural:
            return self._observe_graph(key)
        return copy.deepcopy(self.objects[key])

    def _observe_service(self, key: Key) -> dict[str, Any]:
        current = self.objects[key]
        generation = current["metadata"]["generation"]
        stuck = self.never_ready or key[2] in self.stuck
        ready = not stuck and self._reads[key] >= self.ready_after_reads
        status = current.setdefault("status", {})
        if ready and status.get("observedGeneration") != generation:
            predictor = status.setdefault("components", {}).setdefault("predictor", {})
            if "canaryTrafficPercent" in current["spec"]["predictor"] or not predictor:
                predictor["latestCreatedRevision"] = f"{key[2]}-predictor-{generation:05d}"
            predictor["latestReadyRevision"] = predictor["latestCreatedRevision"]
            status["observedGeneration"] = generation
            status["url"] = f"http://{key[2]}.{key[1]}.example.com"
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        if not ready:
            condition["reason"] = "RevisionMissing" if stuck else "Progressing"
        status["conditions"] = [condition]
        return copy.deepcopy(current)

    def _service_ready(self, namespace: str, name: str) -> bool:
        service = self.objects.get((ISVC.plural, namespace, name))
        conditions = ((service or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _observe_graph(self, key: Key) -> dict[str, Any]:
        current = self.objects[key]
        services = {
            step["serviceName"]
            for node in current["spec"]["nodes"].values()
            for step in node.get("steps") or []
            if step.get("serviceName")
        }
        if all(self._service_ready(key[1], s) for s in services):
            # Until then the controller requeues before it writes any status.
            ready = key[2] not in self.stuck and self._reads[key] >= self.ready_after_reads
            condition = {"type": "Ready", "status": "True" if ready else "False"}
            if not ready:
                condition["reason"] = "RevisionMissing" if key[2] in self.stuck else "Progressing"
            current["status"] = {"conditions": [condition]}
            if ready:
                current["status"]["url"] = f"http://{key[2]}.{key[1]}.example.com"
        return copy.deepcopy(current)
