"""What the lineage and policy tests do to a store to prove a forgery is caught.

A forged attestation keeps its signature and changes what it says; swapped into the
registry's referrers (the sha256-<hex> fallback index), it must make every reader of the
model's lineage fail, naming the forged artifact.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

INDEX = "application/vnd.oci.image.index.v1+json"
STEP_ANNOTATION = "dev.tekton-mlops.lineage.step"


def rewritten(bundle: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The bundle with ``change`` applied to its in-toto statement, the signature kept."""
    document = json.loads(bundle)
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    change(statement)
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(document).encode()


def forged(bundle: bytes) -> bytes:
    """The bundle claiming another estimator, the signature kept."""

    def other_estimator(statement: dict[str, Any]) -> None:
        statement["predicate"]["buildDefinition"]["externalParameters"]["params"]["estimator"] = "x"

    return rewritten(bundle, other_estimator)


def swap_referrer(registry: str, repository: str, model_uri: str, step: str = "train-model") -> str:
    """Replace ``step``'s referrer of the pushed model with a forged one; its new digest."""
    from tekton_mlops.storage.oci import Registry

    tag = model_uri.rpartition("@")[2].replace(":", "-")
    client = Registry(registry)
    index = json.loads(client.find_manifest(repository, tag, INDEX)[0])  # type: ignore[index]
    genuine = next(d for d in index["manifests"] if d["annotations"][STEP_ANNOTATION] == step)
    manifest, _ = client.manifest(repository, genuine["digest"])
    layer = manifest["layers"][0]
    bundle = forged(client.blob(repository, layer["digest"]))
    manifest["layers"][0] = {**layer, "digest": client.push_blob(repository, bundle),
                             "size": len(bundle)}  # fmt: skip
    replaced: str = client.push_manifest(repository, "", manifest)
    index["manifests"] = [{**d, "digest": replaced} if d is genuine else d
                          for d in index["manifests"]]  # fmt: skip
    client.push_manifest(repository, tag, index)
    return replaced
