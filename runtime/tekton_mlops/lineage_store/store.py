"""Find a model's attestations wherever it is, attach new ones, list the models of a store.

A reference is a model directory, a ``file://``, ``s3://`` or ``oci://`` model URI (as
push-model's ``model-uri`` result gives it), or a deployment: the folder deploy-model
wrote its record in (``<state-dir>/<name>/<slot>``), whose model is found through the
URI the record names.

Example::

    found = model_attestations("s3://models/iris/sha256-…/", FetchOptions())
    attach("oci://r.example/team/iris@sha256:…", [Record("deploy-model", data, False)], options)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tekton_mlops.errors import SourceError
from tekton_mlops.lineage import lineage_path
from tekton_mlops.lineage_store import folder, referrers
from tekton_mlops.lineage_store.attestations import Attestation
from tekton_mlops.lineage_store.referrers import Record
from tekton_mlops.storage.fetch import FetchOptions
from tekton_mlops.storage.oci import Reference, Registry, docker_credentials, parse_reference

DEPLOY_STEP = "deploy-model"
#: Model URIs whose store can hold attestations.
STORE_SCHEMES = ("oci://", "s3://", "file://")


@dataclass(frozen=True)
class Found:
    subject: str  # the model: its URI, pinned by digest where the store has one
    attestations: list[Attestation]
    deployment: str = ""  # the deployment folder, when that is what was asked about


def _unique(attestations: Sequence[Attestation]) -> list[Attestation]:
    """The same bytes found twice (a layer and its referrer) count once."""
    seen: set[str] = set()
    kept: list[Attestation] = []
    for attestation in attestations:
        key = attestation.digest if not attestation.problem else attestation.name
        if key not in seen:
            seen.add(key)
            kept.append(attestation)
    return kept


def registry_for(reference: Reference, options: FetchOptions) -> Registry:
    auth = Path(options.registry_auth)
    credentials = docker_credentials(auth, reference.host) if options.registry_auth else None
    return Registry(reference.host, options.insecure_registry or None, credentials)


def _local(ref: str) -> Path | None:
    if ref.startswith("file://"):
        from tekton_mlops.storage.files import local_path

        return local_path(ref)
    return None if "://" in ref else Path(ref)


def model_attestations(ref: str, options: FetchOptions) -> Found:
    """Every attestation of the model (or the deployment) ``ref`` names."""
    path = _local(ref)
    if path is not None:
        if not path.is_dir():
            raise SourceError(f"{ref}: no such model directory")
        if lineage_path(path, DEPLOY_STEP).is_file():
            return _deployment(path, options)
        return Found(path.resolve().as_uri() + "/", _unique(folder.read_model(path)))
    if ref.startswith("s3://"):
        from tekton_mlops.lineage_store import s3

        uri = ref.rstrip("/") + "/"
        return Found(uri, _unique(s3.read_model(uri, options.s3)))
    if ref.startswith("oci://"):
        reference = parse_reference(ref)
        registry = registry_for(reference, options)
        digest, found = referrers.read_model(registry, reference)
        return Found(f"oci://{reference.host}/{reference.repository}@{digest}", _unique(found))
    raise SourceError(f"{ref}: not a model directory or an oci://, s3:// or file:// model URI")


def _deployment(path: Path, options: FetchOptions) -> Found:
    record = lineage_path(path, DEPLOY_STEP)
    data = record.read_bytes()
    try:
        deps = json.loads(data)["predicate"]["buildDefinition"]["resolvedDependencies"]
        model_uri = next(str(d["uri"]) for d in deps if d.get("name") == "model")
    except (ValueError, KeyError, TypeError, StopIteration):
        raise SourceError(f"{record}: not a deploy-model record naming its model") from None
    own = Attestation.of(str(record), data)
    if not model_uri.startswith(STORE_SCHEMES):
        return Found(model_uri, [own], str(path))
    model = model_attestations(model_uri, options)
    return Found(model.subject, _unique([own, *model.attestations]), str(path))


def attach(model_uri: str, records: Sequence[Record], options: FetchOptions) -> list[str]:
    """Attach ``records`` to the stored model ``model_uri``; return where they went."""
    path = _local(model_uri)
    triples = [(r.step, r.data, r.signed) for r in records]
    if path is not None:
        return folder.attach(path, triples)
    if model_uri.startswith("s3://"):
        from tekton_mlops.lineage_store import s3

        return s3.attach(model_uri, triples, options.s3)
    if model_uri.startswith("oci://"):
        reference = parse_reference(model_uri)
        registry = registry_for(reference, options)
        found = registry.find_manifest(reference.repository, reference.target)
        if found is None:
            raise SourceError(f"{model_uri}: no such model in registry {reference.host}")
        referrers.attach(registry, reference.repository, found[1], records)
        return [f"oci://{reference.host}/{reference.repository}@{found[1]} (referrers)"]
    raise SourceError(f"{model_uri}: cannot hold attestations (oci://, s3:// or file:// can)")


def models_in(store: str, options: FetchOptions) -> list[Found]:
    """Every model in ``store`` (a folder, ``file://``, ``s3://`` prefix, ``oci://`` registry
    or repository) with its attestations."""
    path = _local(store)
    if path is not None:
        if not path.is_dir():
            raise SourceError(f"{store}: no such store folder")
        return [
            Found(m.resolve().as_uri() + "/", _unique(folder.read_model(m)))
            for m in folder.models(path)
        ]
    if store.startswith("s3://"):
        from tekton_mlops.lineage_store import s3

        return [Found(uri, _unique(found)) for uri, found in s3.models(store, options.s3).items()]
    if store.startswith("oci://"):
        host, _, repository = store.removeprefix("oci://").rstrip("/").partition("/")
        reference = parse_reference(f"{host}/{repository or 'x'}")
        registry = registry_for(reference, options)
        repositories = _repositories(registry, repository)
        found: list[Found] = []
        for repo, digest in referrers.models(registry, repositories):
            try:
                _, attestations = referrers.read_model(registry, Reference(host, repo, "", digest))
            except referrers.NotAModelError:
                continue  # a fallback tag of something that is not a model
            found.append(Found(f"oci://{host}/{repo}@{digest}", _unique(attestations)))
        return found
    raise SourceError(f"{store}: not a folder or an oci://, s3:// or file:// store")


def _repositories(registry: Registry, namespace: str) -> list[str]:
    """The repositories ``namespace`` names: itself and those under it (``team`` holds
    ``team/iris``); every one when it is empty. A registry that does not list its
    repositories (the catalog API is optional) is asked about ``namespace`` alone."""
    try:
        listed = registry.repositories()
    except SourceError:
        if not namespace:
            raise
        return [namespace]
    return [r for r in listed if not namespace or r == namespace or r.startswith(f"{namespace}/")]
