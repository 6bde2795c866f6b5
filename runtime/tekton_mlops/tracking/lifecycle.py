"""A model's life in the registry, as push-model and deploy-model drive it.

- push-model registers each push as a new version (source: the pushed URI; tags: the
  signed root digest, the pushed root digest, the signature's sha256), linked to the
  training run when its id is known.
- deploy-model moves aliases: a canary deploy makes its version ``challenger``, a full
  deploy makes it ``champion``, promote makes the challenger ``champion`` and drops the
  ``challenger`` alias, rollback drops it. The version is the one given, else the one
  tagged with the digest the deploy verified, else (promote) the challenger.

Each step checks the server and the registered model before it pushes or deploys
anything (:func:`open_registry`), so an unreachable server fails the step before any
side effect.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from tekton_mlops.tracking.client import ApiError, RestClient, TrackingError
from tekton_mlops.tracking.registry import MODEL_DIGEST, Registry

CHAMPION = "champion"
CHALLENGER = "challenger"


def default_model_name(destination: str) -> str:
    """The registered model's name when none is given: the destination's last segment,
    without tag or digest (``oci://reg/models/iris:1.0`` and ``s3://b/models/iris`` are
    ``iris``)."""
    path = destination.split("://", 1)[-1].split("@", 1)[0].rstrip("/")
    last = path.rsplit("/", 1)[-1]
    if destination.startswith("oci://"):
        last = last.split(":", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", last) or "model"


@dataclass(frozen=True)
class RegisteredModel:
    """One registered model, on one server."""

    registry: Registry
    name: str

    def register_push(self, source: str, tags: Mapping[str, str], run_id: str = "") -> str:
        """Register a pushed model as a new version; its version number."""
        return self.registry.create_version(self.name, source, tags, run_id)

    def move_aliases(self, action: str, canary: bool, digest: str, version: str) -> str:
        """Move the aliases for a deploy-model ``action``; the version concerned ("" when
        none is: a rollback without a challenger, a stop)."""
        registry, model = self.registry, self.name
        if action == "deploy":
            chosen = version or _version_of(registry, model, digest)
            registry.set_alias(model, CHALLENGER if canary else CHAMPION, chosen)
            return chosen
        if action == "promote":
            chosen = version or registry.alias(model, CHALLENGER) or ""
            if not chosen:
                raise TrackingError(
                    f"registered model {model!r} has no {CHALLENGER} to promote "
                    "(deploy a canary first, or give mlflow-model-version)"
                )
            registry.set_alias(model, CHAMPION, chosen)
            registry.delete_alias(model, CHALLENGER)
            return chosen
        if action == "rollback":
            chosen = registry.alias(model, CHALLENGER) or ""
            registry.delete_alias(model, CHALLENGER)
            return chosen
        return ""


@contextmanager
def open_registry(uri: str, model: str, create: bool) -> Iterator[RegisteredModel]:
    """The registered model ``model`` on ``uri``, checked (or created) before the block."""
    client = RestClient(uri)
    try:
        registry = Registry(client)
        if create:
            registry.ensure_model(model)
        else:
            try:
                client.call("GET", "registered-models/get", query={"name": model})
            except ApiError as exc:
                if exc.code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                raise TrackingError(
                    f"MLflow tracking server {uri}: no registered model {model!r} "
                    "(push-model registers it when given the tracking URI)"
                ) from None
        yield RegisteredModel(registry, model)
    finally:
        client.close()


def _version_of(registry: Registry, model: str, digest: str) -> str:
    if not digest:
        raise TrackingError(
            f"registered model {model!r}: an unverified deploy has no digest to find its "
            "version by; give mlflow-model-version"
        )
    found = registry.find_version(model, MODEL_DIGEST, digest)
    if found is None:
        raise TrackingError(
            f"registered model {model!r} has no version tagged {MODEL_DIGEST}={digest}; "
            "push the model with mlflow-tracking-uri set, or give mlflow-model-version"
        )
    return found
