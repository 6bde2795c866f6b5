"""The model registry: registered models, their versions, and aliases on versions.

A version's ``source`` is where the model was pushed (``oci://…@sha256:…``, ``s3://…``):
MLflow records it and copies nothing. Versions carry the model's digests as tags, so a
later step that only knows a digest (deploy-model verifies one) finds its version.
Aliases (``champion``, ``challenger``) name versions, as ``models:/<name>@<alias>``.
"""

from __future__ import annotations

from collections.abc import Mapping

from tekton_mlops.tracking.client import ApiError, RestClient

#: Tags on a version: the signed root digest (what deploy-model verifies and reports),
#: the root digest of what was pushed, and the signature file's sha256.
MODEL_DIGEST = "tekton-mlops.model-digest"
PUSHED_DIGEST = "tekton-mlops.pushed-root-digest"
SIGNATURE_DIGEST = "tekton-mlops.signature-digest"


class Registry:
    """Registry calls against one tracking server."""

    def __init__(self, client: RestClient) -> None:
        self.client = client

    def ensure_model(self, name: str) -> None:
        """Create the registered model ``name`` unless it exists."""
        try:
            self.client.call("GET", "registered-models/get", query={"name": name})
            return
        except ApiError as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST":
                raise
        try:
            self.client.call("POST", "registered-models/create", {"name": name})
        except ApiError as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":  # created meanwhile by another step
                raise

    def create_version(
        self, name: str, source: str, tags: Mapping[str, str], run_id: str = ""
    ) -> str:
        """A new version of ``name`` whose source is ``source``; its version number."""
        body: dict[str, object] = {
            "name": name,
            "source": source,
            "tags": [{"key": k, "value": v} for k, v in tags.items() if v],
        }
        if run_id:
            body["run_id"] = run_id
        answer = self.client.call("POST", "model-versions/create", body)
        return str(answer["model_version"]["version"])

    def find_version(self, name: str, tag: str, value: str) -> str | None:
        """The newest version of ``name`` tagged ``tag`` = ``value``, if any.

        ``name`` and ``value`` are checked against quotes by the step schemas and digests
        are hex, so the filter cannot be broken out of.
        """
        query = {"filter": f"name = '{name}' and tags.`{tag}` = '{value}'", "max_results": "1000"}
        found = self.client.call("GET", "model-versions/search", query=query)
        versions = [int(v["version"]) for v in found.get("model_versions", [])]
        return str(max(versions)) if versions else None

    def alias(self, name: str, alias: str) -> str | None:
        """The version ``alias`` names, or None when it names none."""
        try:
            answer = self.client.call(
                "GET", "registered-models/alias", query={"name": name, "alias": alias}
            )
        except ApiError as exc:
            # MLflow answers a missing alias with 404 or 400 (INVALID_PARAMETER_VALUE) by version.
            if exc.status in (400, 404):
                return None
            raise
        return str(answer["model_version"]["version"])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.call(
            "POST", "registered-models/alias", {"name": name, "alias": alias, "version": version}
        )

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from whichever version has it; nothing when none has."""
        try:
            self.client.call("DELETE", "registered-models/alias", {"name": name, "alias": alias})
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
