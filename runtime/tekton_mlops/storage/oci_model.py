"""A model directory as an ORAS-style OCI artifact, and back.

Every file is one layer whose ``org.opencontainers.image.title`` annotation is
its path in the directory, the config is OCI's empty descriptor, and the
manifest's ``artifactType`` says "tekton-mlops model". ORAS, crane and
``oras pull`` read it as they read any artifact. Nothing time-dependent goes
into the manifest, so the same directory always gives the same manifest
digest, and a push of content the registry has uploads nothing.

Example::

    pushed = push_directory(registry, parse_reference("oci://r.example/m:1"), Path("model"))
    pushed.digest        # manifest digest, what a deployment pins
    pull_directory(registry, parse_reference(f"r.example/m@{pushed.digest}"), Path("out"))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tekton_mlops.errors import IntegrityError, SourceError
from tekton_mlops.storage.oci import OCI_MANIFEST, Reference, Registry
from tekton_mlops.storage.sources import safe_relative

ARTIFACT_TYPE = "application/vnd.tekton-mlops.model.v1"
EMPTY_CONFIG = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}
TITLE = "org.opencontainers.image.title"
ROOT_DIGEST = "dev.tekton-mlops.model.root-digest"
_MEDIA_TYPES = {
    ".onnx": "application/vnd.onnx.model",
    ".sig": "application/vnd.dev.sigstore.bundle.v0.3+json",
    ".json": "application/json",
    ".md": "text/markdown",
}


@dataclass(frozen=True)
class Pushed:
    reference: Reference
    digest: str  # of the manifest
    uploaded_blobs: int
    uploaded_bytes: int
    total_bytes: int


def media_type(path: str) -> str:
    return _MEDIA_TYPES.get(Path(path).suffix, "application/octet-stream")


def push_directory(
    registry: Registry,
    reference: Reference,
    directory: Path,
    digests: Mapping[str, str],
    annotations: Mapping[str, str],
    log: logging.Logger,
) -> Pushed:
    """Push the files named in ``digests`` (relative path -> sha256 hex), then the manifest.

    The manifest goes last: a push that fails part way leaves only unreferenced
    blobs (which the next push reuses), never a tag that points at half a model.
    """
    files = sorted(digests)
    sizes = {rel: (directory / rel).stat().st_size for rel in files}
    registry.push_blob(reference.repository, b"{}")

    def upload(rel: str) -> bool:
        try:
            return registry.push_blob_file(
                reference.repository, directory / rel, f"sha256:{digests[rel]}"
            )
        except IntegrityError:
            raise IntegrityError(
                f"{directory / rel}: its bytes are not sha256:{digests[rel]}, the digest its "
                "signature claims (changed since it was signed?); nothing was tagged"
            ) from None

    # Two streams keep the registry busy while one of them waits on a round trip.
    with ThreadPoolExecutor(max_workers=2) as pool:
        uploaded = dict(zip(files, pool.map(upload, files), strict=True))
    for rel in files:
        log.info("%s %s (%d bytes)", "pushed" if uploaded[rel] else "present", rel, sizes[rel])
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": EMPTY_CONFIG,
        "layers": [
            {
                "mediaType": media_type(rel),
                "digest": f"sha256:{digests[rel]}",
                "size": sizes[rel],
                "annotations": {TITLE: rel},
            }
            for rel in files
        ],
        "annotations": dict(sorted(annotations.items())),
    }
    digest = registry.push_manifest(reference.repository, reference.tag or "latest", manifest)
    return Pushed(
        reference,
        digest,
        uploaded_blobs=sum(uploaded.values()),
        uploaded_bytes=sum(sizes[rel] for rel in files if uploaded[rel]),
        total_bytes=sum(sizes.values()),
    )


def pull_directory(registry: Registry, reference: Reference, dest: Path) -> dict[str, str]:
    """Download a model artifact into ``dest``; return relative path -> sha256 hex.

    The manifest is checked against a pinned digest and each blob against its
    layer digest as it streams in, so what lands is exactly what was pushed.
    """
    manifest, _ = registry.manifest(reference.repository, reference.target)
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        raise SourceError(
            f"{reference}: not a tekton-mlops model artifact "
            f"(artifactType {manifest.get('artifactType')!r})"
        )
    files: dict[str, str] = {}
    for layer in manifest.get("layers", []):
        title = (layer.get("annotations") or {}).get(TITLE, "")
        rel = safe_relative(title, str(reference))
        if rel in files:
            raise SourceError(f"{reference}: two layers claim {rel}")
        registry.blob_to_file(reference.repository, layer["digest"], dest / rel)
        files[rel] = layer["digest"].removeprefix("sha256:")
    return files


def annotations_for(directory: Path, root_digest: str, signature: str) -> dict[str, str]:
    """What a registry UI and a policy engine can read without pulling the model."""
    notes = {ROOT_DIGEST: root_digest, "org.opencontainers.image.title": directory.name}
    if signature:
        notes["dev.tekton-mlops.model.signature"] = signature
    evaluation = directory / "evaluation.json"
    if evaluation.is_file():
        try:
            metrics = json.loads(evaluation.read_text()).get("metrics", {})
        except ValueError:
            metrics = {}
        notes["dev.tekton-mlops.model.metrics"] = json.dumps(
            metrics, sort_keys=True, separators=(",", ":")
        )
    metadata = directory / "metadata.json"
    if metadata.is_file():
        try:
            estimator = json.loads(metadata.read_text()).get("estimator", "")
        except ValueError:
            estimator = ""
        if estimator:
            notes["dev.tekton-mlops.model.estimator"] = str(estimator)
    return notes
