"""Tekton bundles: Tasks and Pipelines as one OCI image, a layer per resource.

The layout is the Tekton bundle contract that ``tkn bundle push`` writes: each
layer a gzipped tar holding one resource, annotated with
``dev.tekton.image.name``, ``dev.tekton.image.kind`` (lower-case) and
``dev.tekton.image.apiVersion`` (the version part), at most 20 layers, layers
sorted by digest and every timestamp at the epoch, so the same resources give
the same digest.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any

from tekton_mlops.errors import SourceError
from tekton_mlops.storage.oci import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Reference,
    Registry,
    parse_reference,
)
from tekton_mlops.yamlio import dump, load

MAX_LAYERS = 20
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _layer(resource: dict[str, Any]) -> bytes:
    content = dump(resource).encode()
    info = tarfile.TarInfo(resource["metadata"]["name"])
    info.size, info.mtime, info.mode = len(content), 0, 0o644
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue(), mtime=0)


def push(
    reference: Reference, resources: list[dict[str, Any]], annotations: dict[str, str] | None = None
) -> str:
    """Push resources as a bundle; return the manifest digest."""
    if not resources:
        raise SourceError("a bundle needs at least one resource")
    if len(resources) > MAX_LAYERS:
        raise SourceError(f"a bundle holds at most {MAX_LAYERS} resources, got {len(resources)}")
    seen = set()
    for resource in resources:
        key = (resource["apiVersion"], resource["kind"], resource["metadata"]["name"])
        if key in seen:
            raise SourceError(f"{key[1]} {key[2]} appears twice in the bundle")
        seen.add(key)
    registry = Registry(reference.host)
    layers = []
    for resource in resources:
        data = _layer(resource)
        layers.append(
            {
                "mediaType": LAYER,
                "size": len(data),
                "digest": registry.push_blob(reference.repository, data),
                "annotations": {
                    "dev.tekton.image.name": resource["metadata"]["name"],
                    "dev.tekton.image.kind": resource["kind"].lower(),
                    "dev.tekton.image.apiVersion": resource["apiVersion"].rsplit("/", 1)[-1],
                },
            }
        )
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "size": len(config),
            "digest": registry.push_blob(reference.repository, config),
        },
        "layers": sorted(layers, key=lambda layer: str(layer["digest"])),
        **({"annotations": annotations} if annotations else {}),
    }
    return registry.push_manifest(reference.repository, reference.tag or "latest", manifest)


def fetch(bundle: str, kind: str, name: str) -> dict[str, Any]:
    """The resource of that kind and name from a bundle, as the bundles resolver reads it."""
    reference = parse_reference(bundle)
    registry = Registry(reference.host)
    manifest, _ = registry.manifest(reference.repository, reference.target)
    for layer in manifest.get("layers") or []:
        notes = layer.get("annotations") or {}
        if (
            notes.get("dev.tekton.image.kind") == kind.lower()
            and notes.get("dev.tekton.image.name") == name
        ):
            data = registry.blob(reference.repository, layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                member = tar.getmember(name)
                extracted = tar.extractfile(member)
                assert extracted is not None
                resource: dict[str, Any] = load(extracted.read().decode())
                return resource
    raise SourceError(f"bundle {bundle} holds no {kind.lower()} named {name!r}")
