"""KServe InferenceServices: render, server-side apply, wait for Ready, canary and rollback.

The InferenceService is applied with server-side apply under the field manager
``tekton-mlops``, so fields other tools own are left alone and a re-run is a
no-op. Canary traffic follows KServe's own model: ``canaryTrafficPercent`` sends
that share to the newest revision; rollback sets it to 0 (all traffic back on the
previous ready revision), promotion removes it (all traffic on the newest).

The same calls serve the other kinds a traffic strategy writes (``KINDS``: KServe's
InferenceGraph, Istio's VirtualService): apply, get, delete and, for the kinds a
controller reports on, wait for Ready.

Example::

    isvc = render(Deployment("iris", "models", "s3://models/iris/sha256-…/", canary=10))
    url, revision = KServe.connect("").apply_and_wait(isvc, timeout=300)
"""

from __future__ import annotations

import copy
import inspect
import time
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.errors import MlopsError

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
FIELD_MANAGER = "tekton-mlops"
#: The request header KServe's payload logger copies into each event's ``metadata``: Envoy
#: keeps it on a mirrored copy, so it pairs a live and a candidate event (check-mirror). In
#: Go's canonical form, since the agent matches the names given against canonical header keys.
LOGGED_HEADERS = ("X-Request-Id",)


@dataclass(frozen=True)
class Kind:
    """A custom resource's coordinates in the API."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


INFERENCE_SERVICE = Kind(GROUP, VERSION, PLURAL, "InferenceService")
INFERENCE_GRAPH = Kind(GROUP, "v1alpha1", "inferencegraphs", "InferenceGraph")
VIRTUAL_SERVICE = Kind("networking.istio.io", "v1", "virtualservices", "VirtualService")
KINDS = {(k.api_version, k.kind): k for k in (INFERENCE_SERVICE, INFERENCE_GRAPH, VIRTUAL_SERVICE)}


class DeployError(MlopsError):
    """The cluster refused, or the InferenceService did not become Ready in time."""


def kind_of(document: dict[str, Any]) -> Kind:
    """The Kind a manifest declares; only the kinds this module writes."""
    try:
        return KINDS[(document["apiVersion"], document["kind"])]
    except KeyError:
        raise DeployError(
            f"cannot apply {document.get('kind')} {document.get('apiVersion')}: not a kind "
            f"tekton-mlops deploys ({', '.join(k.kind for k in KINDS.values())})"
        ) from None


@dataclass(frozen=True)
class Deployment:
    name: str
    namespace: str
    storage_uri: str
    canary: int = 0  # percent of traffic for the new revision; 0: no canary, all traffic
    service_account: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    deployment_mode: str = ""  # Serverless, RawDeployment (Standard); empty: the cluster's default
    model_digest: str = ""
    payload_log_url: str = ""  # where KServe's logger posts requests and responses; empty: none


def logger_spec(url: str) -> dict[str, Any]:
    """``spec.predictor.logger``: every request and 200 response posted to ``url``."""
    return {"mode": "all", "url": url, "metadataHeaders": list(LOGGED_HEADERS)}


def render(deployment: Deployment) -> dict[str, Any]:
    """The InferenceService for an ONNX model served over the Open Inference Protocol."""
    model: dict[str, Any] = {
        "modelFormat": {"name": "onnx"},
        "protocolVersion": "v2",
        "storageUri": deployment.storage_uri,
    }
    if deployment.resources:
        model["resources"] = deployment.resources
    predictor: dict[str, Any] = {"model": model}
    if deployment.service_account:
        predictor["serviceAccountName"] = deployment.service_account
    if deployment.canary:
        predictor["canaryTrafficPercent"] = deployment.canary
    if deployment.payload_log_url:
        predictor["logger"] = logger_spec(deployment.payload_log_url)
    annotations = {}
    if deployment.deployment_mode:
        annotations["serving.kserve.io/deploymentMode"] = deployment.deployment_mode
    if deployment.model_digest:
        annotations["tekton-mlops.dev/model-digest"] = deployment.model_digest
    metadata: dict[str, Any] = {
        "name": deployment.name,
        "namespace": deployment.namespace,
        "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def _reapplied(isvc: dict[str, Any]) -> dict[str, Any]:
    """What of an InferenceService read from the cluster is applied again (no status)."""
    return {
        "apiVersion": isvc["apiVersion"],
        "kind": isvc["kind"],
        "metadata": {k: isvc["metadata"][k] for k in ("name", "namespace", "labels", "annotations")
                     if k in isvc["metadata"]},
        "spec": copy.deepcopy(isvc["spec"]),
    }  # fmt: skip


def with_logger(isvc: dict[str, Any], url: str) -> dict[str, Any] | None:
    """The same InferenceService logging its payloads to ``url``; None when it already does."""
    if (isvc.get("spec") or {}).get("predictor", {}).get("logger") == logger_spec(url):
        return None
    updated = _reapplied(isvc)
    updated["spec"]["predictor"]["logger"] = logger_spec(url)
    return updated


def with_traffic(isvc: dict[str, Any], canary: int | None) -> dict[str, Any]:
    """The same InferenceService with canaryTrafficPercent set, or removed (None)."""
    updated = _reapplied(isvc)
    predictor = updated["spec"]["predictor"]
    predictor.pop("canaryTrafficPercent", None)
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return updated


class KServe:
    """The cluster's InferenceServices through the ``kubernetes`` client."""

    def __init__(self, api: Any) -> None:
        self.api = api

    @classmethod
    def connect(cls, kubeconfig: str) -> KServe:
        """From a kubeconfig file, else $KUBECONFIG or ~/.kube/config, else in-cluster."""
        import os

        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        try:
            if kubeconfig or os.environ.get("KUBECONFIG"):
                config.load_kube_config(config_file=kubeconfig or None)
            else:
                try:
                    config.load_incluster_config()
                except ConfigException:
                    config.load_kube_config()
        except (ConfigException, OSError) as exc:
            raise DeployError(f"no Kubernetes configuration: {exc}") from None
        return cls(client.CustomObjectsApi())

    def _call(
        self, what: str, function: Any, *args: Any, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return function(*args, **kwargs)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            detail = exc.reason or ""
            try:
                import json

                detail = json.loads(exc.body).get("message", detail)
            except (TypeError, ValueError, AttributeError):
                pass
            raise DeployError(f"{what}: HTTP {exc.status} {detail}") from None
        except (HTTPError, OSError) as exc:
            raise DeployError(f"{what}: cannot reach the Kubernetes API ({exc})") from None

    def get(self, namespace: str, name: str, kind: Kind = INFERENCE_SERVICE) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            f"reading {kind.kind} {namespace}/{name}",
            self.api.get_namespaced_custom_object,
            kind.group, kind.version, namespace, kind.plural, name,
        )  # fmt: skip

    def find(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None where the cluster has none of that name."""
        return self._call(  # type: ignore[no-any-return]
            f"reading {kind.kind} {namespace}/{name}",
            self.api.get_namespaced_custom_object,
            kind.group, kind.version, namespace, kind.plural, name,
            missing_ok=True,
        )  # fmt: skip

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete the object; False if it was already gone (retiring twice is not an error)."""
        gone = self._call(
            f"deleting {kind.kind} {namespace}/{name}",
            self.api.delete_namespaced_custom_object,
            kind.group, kind.version, namespace, kind.plural, name,
            missing_ok=True,
        )  # fmt: skip
        return gone is not None

    def apply(self, isvc: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply, through the client's plain request call.

        The generated ``patch_namespaced_custom_object`` takes a content type only from
        kubernetes 31 on, and the kfp SDK (an optional extra) pins the client below that;
        the client writes the body as JSON, which is valid apply-patch YAML either way.
        The plain call names its response argument differently across those versions.
        """
        meta = isvc["metadata"]
        kind = kind_of(isvc)
        call = self.api.api_client.call_api
        if "response_types_map" in inspect.signature(call).parameters:
            response: dict[str, Any] = {"response_types_map": {200: "object", 201: "object"}}
        else:
            response = {"response_type": "object"}
        path = "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"
        return self._call(  # type: ignore[no-any-return]
            f"applying {kind.kind} {meta['namespace']}/{meta['name']}",
            call,
            path, "PATCH",
            path_params={"group": kind.group, "version": kind.version,
                         "namespace": meta["namespace"], "plural": kind.plural,
                         "name": meta["name"]},
            query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            header_params={"Content-Type": "application/apply-patch+yaml",
                           "Accept": "application/json"},
            body=isvc,
            **response,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )  # fmt: skip

    def wait_ready(
        self,
        namespace: str,
        name: str,
        generation: int,
        timeout: float,
        poll: float = 1.0,
        kind: Kind = INFERENCE_SERVICE,
    ) -> dict[str, Any]:
        """The object once it has observed ``generation`` and is Ready.

        Pass generation 0 for an InferenceGraph: KServe's graph controller does not report
        the graph's generation (Serverless mode leaves observedGeneration unset, raw mode
        copies the router Deployment's), so only its Ready condition can be waited for.
        """
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(namespace, name, kind)
            status = current.get("status") or {}
            ready: dict[str, Any] = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
            )
            observed = int(status.get("observedGeneration") or 0)
            if observed >= generation and ready.get("status") == "True":
                return current
            if time.monotonic() > deadline:
                why = ready.get("message") or ready.get("reason") or "no Ready condition yet"
                raise DeployError(
                    f"{kind.kind} {namespace}/{name} not Ready after {timeout:g} s: {why}"
                )
            time.sleep(poll)

    def apply_and_wait(self, isvc: dict[str, Any], timeout: float) -> tuple[str, str]:
        """Apply, wait for Ready; return the URL and the newest revision."""
        applied = self.apply(isvc)
        generation = int(applied.get("metadata", {}).get("generation") or 0)
        meta = isvc["metadata"]
        ready = self.wait_ready(meta["namespace"], meta["name"], generation, timeout)
        status = ready.get("status") or {}
        predictor = (status.get("components") or {}).get("predictor") or {}
        revision = predictor.get("latestReadyRevision") or predictor.get("latestCreatedRevision")
        return str(status.get("url") or ""), str(revision or "")
