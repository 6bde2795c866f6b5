"""A TEST DOUBLE of the Kubernetes API server, for KServe InferenceServices only.

No API server can run on this machine, so deploy-model's kserve target is tested
against this double: a small HTTP server that speaks the two calls the step makes
(server-side apply as ``PATCH …?fieldManager=…&force=true`` with
``application/apply-patch+yaml``, and ``GET``) on
``/apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices/<name>``, and
plays KServe's controller: a new generation becomes Ready after a few reads, with
a URL and a new revision name. Everything applied is recorded for assertions.
Like an API server with KServe's CRD installed, it validates every InferenceService it
receives against the CRD's schema (tests/schemas/kserve) and answers 422 Invalid, with the
violations, to one that does not fit. It is not Kubernetes otherwise: no admission webhooks,
no field ownership beyond "the last apply wins".
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tekton_mlops.httpjson import JsonHandler

SCHEMA = Path(__file__).resolve().parent / "schemas" / "kserve" / "inferenceservice_v1beta1.json"


def crd_violations(document: dict[str, Any]) -> list[str]:
    """What the API server says of an InferenceService that does not fit KServe's CRD."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices/(?P<name>[^/?]+)"
)


@dataclass
class KubeApiDouble:
    ready_after_reads: int = 2
    never_ready: bool = False  # keeps every InferenceService not Ready (a stuck rollout)
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # answered 422
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, type
    _reads: dict[tuple[str, str], int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> KubeApiDouble:
        double = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.0"  # the kubernetes client's pool copes either way

            def _send(self, status: int, document: dict[str, Any]) -> None:
                self.reply(status, document)

            def do_GET(self) -> None:  # noqa: N802
                double.requests.append(("GET", self.path, ""))
                match = _PATH.match(self.path)
                key = (match["ns"], match["name"]) if match else ("", "")
                if key not in double.objects:
                    message = f"inferenceservices.serving.kserve.io {key[1]!r} not found"
                    self._send(404, {"kind": "Status", "reason": "NotFound", "message": message})
                    return
                self._send(200, double._observe(key))

            def do_PATCH(self) -> None:  # noqa: N802
                kind = self.headers.get("Content-Type", "")
                double.requests.append(("PATCH", self.path, kind))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                match = _PATH.match(self.path)
                if (
                    not match
                    or kind != "application/apply-patch+yaml"
                    or "fieldManager=" not in self.path
                ):
                    self._send(415, {"kind": "Status", "message": "expected a server-side apply"})
                    return
                violations = crd_violations(body)
                if violations:
                    double.rejected.append(body)
                    name = match["name"]
                    self._send(
                        422,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "reason": "Invalid",
                            "code": 422,
                            "message": f'InferenceService.serving.kserve.io "{name}" is invalid: '
                            + "; ".join(violations),
                        },
                    )
                    return
                self._send(200, double._apply((match["ns"], match["name"]), body))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
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

    # The controller's part ---------------------------------------------------------------

    def _apply(self, key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(copy.deepcopy(body))
        current = self.objects.get(key)
        if current is None:
            current = {**copy.deepcopy(body), "status": {}}
            current["metadata"]["generation"] = 1
        elif current["spec"] != body["spec"]:
            current["spec"] = copy.deepcopy(body["spec"])
            current["metadata"]["generation"] += 1
        self.objects[key] = current
        self._reads[key] = 0
        return copy.deepcopy(current)

    def _observe(self, key: tuple[str, str]) -> dict[str, Any]:
        current = self.objects[key]
        self._reads[key] = self._reads.get(key, 0) + 1
        generation = current["metadata"]["generation"]
        ready = not self.never_ready and self._reads[key] >= self.ready_after_reads
        status = current.setdefault("status", {})
        if ready and status.get("observedGeneration") != generation:
            predictor = status.setdefault("components", {}).setdefault("predictor", {})
            if "canaryTrafficPercent" in current["spec"]["predictor"] or not predictor:
                predictor["latestCreatedRevision"] = f"{key[1]}-predictor-{generation:05d}"
            predictor["latestReadyRevision"] = predictor["latestCreatedRevision"]
            status["observedGeneration"] = generation
            status["url"] = f"http://{key[1]}.{key[0]}.example.com"
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        if not ready:
            condition["reason"] = "RevisionMissing" if self.never_ready else "Progressing"
        status["conditions"] = [condition]
        return copy.deepcopy(current)
