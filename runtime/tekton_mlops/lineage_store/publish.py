"""What push-model and deploy-model attach to a stored model.

push-model, once the model is stored: to a registry, every signed attestation the
model carries (as referrers, for tools that never pull the model) and the push's own
record; to S3 or a folder, the push's record (the signed attestations are already
there, in the model's ``.mlops/lineage/``). deploy-model: each deployment's record.
Neither step holds a signing key, so their records are attached unsigned.

Example::

    publish_push(Path("model"), pushed_files, "oci://r.example/team/iris@sha256:…",
                 Path("model/.mlops/lineage/push-model.intoto.json"), options)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tekton_mlops.lineage_store.attestations import Attestation, check
from tekton_mlops.lineage_store.layout import LINEAGE
from tekton_mlops.lineage_store.referrers import Record
from tekton_mlops.lineage_store.store import attach
from tekton_mlops.storage.fetch import FetchOptions


def record_of(attestation: Attestation) -> Record:
    """Step and time, read from the statement unverified: they only label the referrer."""
    statement = check(attestation, []).statement or {}
    predicate = statement.get("predicate", {})
    step = predicate.get("buildDefinition", {}).get("externalParameters", {}).get("step", "")
    finished = predicate.get("runDetails", {}).get("metadata", {}).get("finishedOn", "")
    return Record(str(step or "unknown"), attestation.data, attestation.signed, str(finished))


def publish_push(
    model: Path,
    pushed_files: Iterable[str],
    pushed_uri: str,
    push_record: Path | None,
    options: FetchOptions,
) -> list[str]:
    """Attach the model's attestations and the push record to ``pushed_uri``."""
    records: list[Record] = []
    if pushed_uri.startswith("oci://"):
        bundles = sorted(f for f in pushed_files if f.startswith(LINEAGE)
                         and f.endswith(".sigstore.json"))  # fmt: skip
        records += [record_of(Attestation.of(f, (model / f).read_bytes())) for f in bundles]
    if push_record is not None:
        records.append(record_of(Attestation.of(push_record.name, push_record.read_bytes())))
    return attach(pushed_uri, records, options) if records else []


def publish_record(model_uri: str, record: Path, options: FetchOptions) -> list[str]:
    """Attach one step's record (a deployment's) to the stored model ``model_uri``."""
    data = record.read_bytes()
    json.loads(data)  # never attach what is not even JSON
    return attach(model_uri, [record_of(Attestation.of(record.name, data))], options)
