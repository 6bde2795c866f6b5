"""Attestations of a model in an OCI registry: its own layers, and OCI 1.1 referrers.

Each attached attestation is one manifest in cosign's layout: ``artifactType`` the
attestation's media type (a Sigstore bundle, or a bare in-toto statement), the empty
config, the attestation as its one layer, ``subject`` the model's manifest. Nothing in
it depends on the time of the push, so attaching the same attestation again gives the
same manifest.

Where the registry has the referrers API (``GET /v2/<name>/referrers/<digest>`` answers
200) it indexes them itself. Where it answers 404 (distribution 2.8, Debian's
docker-registry) the client keeps the fallback the OCI distribution spec gives: the image
index tagged ``sha256-<hex>``. Order: every blob and every referrer manifest first (by
digest, untagged: unreachable), the index last in one PUT, so a failed attach leaves the
index as it was and a rerun completes it. With the API, each referrer is listed as soon
as its manifest lands; a rerun completes a set that a failure cut short.

Example::

    attach(registry, "team/iris", "sha256:…", [("train-model", bundle, True)])
    read_model(registry, parse_reference("oci://r.example/team/iris@sha256:…"))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tekton_mlops.errors import MlopsError
from tekton_mlops.lineage_store.attestations import STATEMENT_MEDIA_TYPE, Attestation
from tekton_mlops.lineage_store.layout import LINEAGE, attestation_files
from tekton_mlops.signing import BUNDLE_MEDIA_TYPE
from tekton_mlops.storage.oci import OCI_INDEX, OCI_MANIFEST, Reference, Registry
from tekton_mlops.storage.oci_model import ARTIFACT_TYPE, EMPTY_CONFIG, TITLE

#: The attestation kinds this store attaches and reads.
KINDS = (BUNDLE_MEDIA_TYPE, STATEMENT_MEDIA_TYPE)
STEP = "dev.tekton-mlops.lineage.step"
#: cosign's annotations on a bundle referrer.
CONTENT = "dev.sigstore.bundle.content"
PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
CREATED = "org.opencontainers.image.created"
_EMPTY_DATA = "e30="  # base64 of "{}", the empty config's bytes, inline


class NotAModelError(MlopsError):
    """The manifest is missing or is not a tekton-mlops model."""


@dataclass(frozen=True)
class Record:
    """What to attach: the step that wrote it, its bytes, whether they are a bundle."""

    step: str
    data: bytes
    signed: bool
    created: str = ""  # when the step finished (from the statement), for registry UIs


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")


def _manifest(subject: dict[str, Any], record: Record, layer: str) -> dict[str, Any]:
    kind = BUNDLE_MEDIA_TYPE if record.signed else STATEMENT_MEDIA_TYPE
    annotations = {STEP: record.step, PREDICATE_TYPE: "https://slsa.dev/provenance/v1"}
    if record.signed:
        annotations[CONTENT] = "dsse-envelope"
    if record.created:
        annotations[CREATED] = record.created
    suffix = ".sigstore.json" if record.signed else ".intoto.json"
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": kind,
        "config": {**EMPTY_CONFIG, "data": _EMPTY_DATA},
        "layers": [
            {
                "mediaType": kind,
                "digest": layer,
                "size": len(record.data),
                "annotations": {TITLE: f"{layer.replace(':', '-')}{suffix}"},
            }
        ],
        "subject": subject,
        "annotations": annotations,
    }


def attach(registry: Registry, repository: str, digest: str, records: Sequence[Record]) -> int:
    """Attach ``records`` to the manifest ``digest``; return how many the index gained."""
    found = registry.find_manifest(repository, digest)
    if found is None:
        raise MlopsError(f"registry {registry.host}: no manifest {repository}@{digest}")
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(found[0])}
    listed = registry.referrers(repository, digest)
    api = listed is not None
    if listed is None:
        index = registry.find_manifest(repository, fallback_tag(digest), OCI_INDEX)
        listed = list(json.loads(index[0]).get("manifests") or []) if index else []
    known = {str(d.get("digest")) for d in listed}
    registry.push_blob(repository, b"{}")
    added: list[dict[str, Any]] = []
    for record in records:
        layer = registry.push_blob(repository, record.data)
        manifest = _manifest(subject, record, layer)
        pushed = registry.push_manifest(repository, "", manifest)
        size = len(json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode())
        if pushed not in known:
            known.add(pushed)
            added.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": pushed,
                    "size": size,
                    "artifactType": manifest["artifactType"],
                    "annotations": manifest["annotations"],
                }
            )
    if added and not api:
        index_manifest = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed + added}
        registry.push_manifest(repository, fallback_tag(digest), index_manifest)
    return len(added)


def discover(registry: Registry, repository: str, digest: str) -> list[dict[str, Any]]:
    """The referrers of ``digest``: from the API, else from the fallback tag, else none."""
    listed = registry.referrers(repository, digest)
    if listed is not None:
        return listed
    index = registry.find_manifest(repository, fallback_tag(digest), OCI_INDEX)
    return list(json.loads(index[0]).get("manifests") or []) if index else []


def read_model(registry: Registry, reference: Reference) -> tuple[str, list[Attestation]]:
    """The model's manifest digest and every attestation of it: its lineage layers, then
    its referrers. A referrer that cannot be read is returned with the reason, to be
    reported, never skipped: a gap in the lineage is a finding."""
    found = registry.find_manifest(reference.repository, reference.target)
    if found is None:
        raise NotAModelError(f"{reference}: no such model in registry {registry.host}")
    manifest, digest = json.loads(found[0]), found[1]
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        raise NotAModelError(
            f"{reference}: not a tekton-mlops model (artifactType {manifest.get('artifactType')!r})"
        )
    where = f"oci://{registry.host}/{reference.repository}@{digest}"
    layers = {
        str((layer.get("annotations") or {}).get(TITLE, "")): str(layer.get("digest"))
        for layer in manifest.get("layers", [])
    }
    titles = attestation_files(t for t in layers if t.startswith(LINEAGE))
    found_here = [
        Attestation.of(f"{where}#{title}", registry.blob(reference.repository, layers[title]))
        for title in titles
    ]
    for descriptor in discover(registry, reference.repository, digest):
        if descriptor.get("artifactType") in KINDS:
            found_here.append(_referrer(registry, reference.repository, digest, descriptor))
    return digest, found_here


def _referrer(
    registry: Registry, repository: str, subject: str, descriptor: dict[str, Any]
) -> Attestation:
    name = f"oci://{registry.host}/{repository}@{descriptor.get('digest')}"
    kind = str(descriptor.get("artifactType"))
    try:
        found = registry.find_manifest(repository, str(descriptor.get("digest")))
        if found is None:
            return Attestation(name, kind, b"", "listed as a referrer but not in the registry")
        manifest = json.loads(found[0])
        if (manifest.get("subject") or {}).get("digest") != subject:
            return Attestation(name, kind, b"", f"refers to another manifest, not {subject}")
        (layer,) = manifest["layers"]
        data = registry.blob(repository, layer["digest"])
    except (MlopsError, ValueError, KeyError, TypeError) as exc:
        return Attestation(name, kind, b"", f"unreadable referrer ({exc})")
    return Attestation(name, str(manifest.get("artifactType", kind)), data)


def models(registry: Registry, repositories: Sequence[str]) -> list[tuple[str, str]]:
    """(repository, manifest digest) of every model in ``repositories``: the models tags
    name, and the subjects of fallback tags (a model pushed by digest alone)."""
    found: set[tuple[str, str]] = set()
    for repository in repositories:
        for tag in registry.tags(repository):
            if tag.startswith("sha256-") and len(tag) == 71:
                found.add((repository, tag.replace("-", ":", 1)))
                continue
            manifest = registry.find_manifest(repository, tag)
            if manifest and json.loads(manifest[0]).get("artifactType") == ARTIFACT_TYPE:
                found.add((repository, manifest[1]))
    return sorted(found)
