"""Lineage records: an in-toto v1 statement with an SLSA v1 provenance predicate.

Each step writes one record into the artifact it produces
(``.mlops/lineage/<step>.intoto.json``): its outputs as subjects, its inputs
as resolved dependencies, its parameters, the runtime and the code revision
when known, and its start and end. The record is unsigned JSON that a signing
step can wrap in a DSSE envelope, and that Tekton Chains' own provenance can be
joined with through the digests.

A step that reads a dataset carries the records that made it (fetch-data's,
prepare-data's, and what they carried) into its own output under
``.mlops/lineage/upstream/``, so a model holds its lineage back to the data it was
trained on, and sign-artifact attests those records with the rest.

The code revision comes from the step's ``source-url``/``source-revision``
params where it has them (train-model: the commit a push trained from), else
from ``TEKTON_MLOPS_SOURCE_URL``/``TEKTON_MLOPS_SOURCE_REVISION``; the
invocation from ``TEKTON_MLOPS_INVOCATION_ID`` (e.g. ``$(context.taskRun.name)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tekton_mlops import __version__
from tekton_mlops.digests import METADATA_DIR

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://tekton-mlops.dev/step/v1"
BUILDER_ID = "https://tekton-mlops.dev/runtime"
#: Lineage records and the DSSE attestations made of them, side by side.
RECORD_SUFFIX = ".intoto.json"
ATTESTATION_SUFFIX = ".sigstore.json"
#: Where a step keeps the records of the data it read, inside its own lineage folder.
UPSTREAM_DIR = "upstream"


@dataclass(frozen=True)
class Artifact:
    """An input or output of a step, identified by its digest.

    ``digest`` is hex sha256 unless ``algorithm`` says otherwise (``gitCommit`` for a
    repository at a commit). It is empty for what has no digest anyone could check (an
    endpoint, a model deployed without verification): the record then names it by URI
    only and never makes it a subject, since a subject without a digest identifies nothing.
    """

    name: str
    uri: str
    digest: str
    algorithm: str = "sha256"

    def descriptor(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "uri": self.uri}
        if self.digest:
            found["digest"] = {self.algorithm: self.digest}
        return found


def _timestamp(moment: datetime) -> str:
    return moment.astimezone().isoformat(timespec="milliseconds")


def statement(
    step: str,
    params: Mapping[str, Any],
    inputs: Sequence[Artifact],
    outputs: Sequence[Artifact],
    started: datetime,
    finished: datetime,
    byproducts: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Build the lineage statement of one step run.

    ``byproducts`` (SLSA resource descriptors) name what an output is that its subject
    cannot say: a subject has a digest, not a place (deploy-model: the endpoint's URL).
    """
    dependencies = [a.descriptor() for a in inputs]
    source_url = str(params.get("source_url") or os.environ.get("TEKTON_MLOPS_SOURCE_URL", ""))
    revision = str(
        params.get("source_revision") or os.environ.get("TEKTON_MLOPS_SOURCE_REVISION", "")
    )
    if source_url and revision:
        dependencies.append(
            {"name": "source", "uri": f"git+{source_url}", "digest": {"gitCommit": revision}}
        )
    metadata: dict[str, Any] = {
        "startedOn": _timestamp(started),
        "finishedOn": _timestamp(finished),
    }
    if invocation := os.environ.get("TEKTON_MLOPS_INVOCATION_ID"):
        metadata["invocationId"] = invocation
    details: dict[str, Any] = {
        "builder": {"id": BUILDER_ID, "version": {"tekton-mlops": __version__}},
        "metadata": metadata,
    }
    if byproducts:
        details["byproducts"] = [dict(b) for b in byproducts]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": a.name, "digest": {a.algorithm: a.digest}} for a in outputs if a.digest
        ],
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": f"{BUILD_TYPE}/{step}",
                "externalParameters": {"step": step, "params": dict(params)},
                "internalParameters": {
                    "runtime": f"tekton-mlops {__version__}",
                    "python": platform.python_version(),
                    "image": os.environ.get("TEKTON_MLOPS_IMAGE", ""),
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": details,
        },
    }


def descriptor_digest(descriptor: Mapping[str, Any]) -> str:
    """A resource descriptor's digest as ``algorithm:value``: sha256 if it has one, else a
    git commit, else its first algorithm by name; "" for none. Every reader of records
    joins them by this one choice."""
    digests = descriptor.get("digest")
    if not isinstance(digests, Mapping) or not digests:
        return ""
    for algorithm in ("sha256", "gitCommit"):
        if digests.get(algorithm):
            return f"{algorithm}:{digests[algorithm]}"
    algorithm, value = sorted(digests.items())[0]
    return f"{algorithm}:{value}"


def lineage_path(artifact_dir: Path, step: str) -> Path:
    return artifact_dir / METADATA_DIR / "lineage" / f"{step}.intoto.json"


def write_statement(artifact_dir: Path, step: str, record: Mapping[str, Any]) -> Path:
    """Write the record beside the artifact it describes."""
    path = lineage_path(artifact_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def attestation_path(record: Path) -> Path:
    """Where a record's DSSE attestation goes: ``<step>.sigstore.json`` beside it."""
    return record.with_name(record.name.removesuffix(RECORD_SUFFIX) + ATTESTATION_SUFFIX)


def _subjects(record: Mapping[str, Any]) -> set[str]:
    try:
        return {str(s["digest"].get("sha256", "")) for s in record.get("subject", [])}
    except (AttributeError, KeyError, TypeError):
        return set()


def carry_upstream(dataset: Path, digest: str, artifact_dir: Path) -> int:
    """Copy the records that produced ``dataset`` (hex root ``digest``) into the lineage of
    the artifact a step builds from it; return how many were carried.

    The producing step's record is the one whose subject is the dataset's digest, in the
    dataset's own lineage folder or its parent's (prepare-data writes one record for its
    ``train/`` and ``test/`` parts); what that folder carried comes along. A dataset that no
    record names (a bare CSV) carries nothing: nothing is guessed.
    """
    base = dataset if dataset.is_dir() else dataset.parent
    for folder in (base / METADATA_DIR / "lineage", base.parent / METADATA_DIR / "lineage"):
        records = sorted(folder.glob(f"*{RECORD_SUFFIX}"))
        producers = [path for path in records if digest in _subjects(_read(path))]
        if producers:
            break
    else:
        return 0
    target = artifact_dir / METADATA_DIR / "lineage" / UPSTREAM_DIR
    target.mkdir(parents=True, exist_ok=True)
    for path in producers:
        # Named by content: two prepare-data runs upstream keep one record each.
        content = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        name = f"{path.name.removesuffix(RECORD_SUFFIX)}-{content}{RECORD_SUFFIX}"
        shutil.copyfile(path, target / name)
    carried = sorted((folder / UPSTREAM_DIR).glob(f"*{RECORD_SUFFIX}"))
    for path in carried:
        shutil.copyfile(path, target / path.name)
    return len(producers) + len(carried)


def _read(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
