"""The document policy rules see, built from verified evidence.

Top-level names (every number is a double, every time a CEL timestamp):

- ``model``: ``uri``, ``digest`` (the signed root, ``sha256:<hex>``), ``signed``,
  ``verified``, ``signer`` (the key's hint), ``signature`` (its path in the model),
  ``files`` (path -> ``sha256:<hex>``, as signed).
- ``attestations``: one per lineage record: ``name`` (where it was found), ``step``,
  ``predicateType``, ``buildType``, ``status``, ``signed``, ``verified``, ``signer``,
  ``subject`` and ``materials`` (``name``, ``uri``, ``digest`` as ``sha256:<hex>`` or
  ``gitCommit:<sha>``; materials are SLSA's resolvedDependencies), ``params``,
  ``externalParameters``, ``internalParameters``, ``image``, ``image_digest`` (what follows
  its ``@``), ``builder``, ``invocation``,
  ``started``, ``finished``, ``age_days`` (days since ``finished``), ``byproducts``.
- ``steps``: step name -> its latest attestation (``steps["train-model"]``).
- ``training``: the latest attestation of a training step (train-model, tune-model), or an
  empty mapping.
- ``datasets``: where the data came from: each dataset a step read (a material named
  ``source`` or ``dataset`` with a sha256 digest) that no step of the lineage produced,
  with ``step``.
- ``source``: the training step's code: ``uri``, ``revision`` (the commit), ``branch``
  (from the material's ``ref`` or ``branch`` annotation; empty when no record names one).
- ``evaluation``: ``found``, ``passed``, ``metrics``, ``checks``, ``thresholds``,
  ``attestation``: the report in the model that a verified evaluate-model record names.
- ``params``: the policy's params; ``now``: when the policy is evaluated.

What is not known is left out rather than null (``has(a.finished)``, ``has(training.step)``):
cel-python compares nothing but null with null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tekton_mlops.lineage import descriptor_digest
from tekton_mlops.lineage_store.attestations import Checked, Status
from tekton_mlops.lineage_store.graph import TRAINING_STEPS
from tekton_mlops.policy.evidence import Evidence

#: Material names that are data a step read (fetch-data's source, everyone else's dataset).
DATA_MATERIALS = ("source", "dataset")
EVALUATE_STEP = "evaluate-model"


def build_input(evidence: Evidence, params: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    model = evidence.model
    attestations = [
        _attestation(c, model.signer, now) for c in evidence.attestations if c.statement
    ]
    steps: dict[str, dict[str, Any]] = {}
    for record in sorted(attestations, key=_when):
        steps[record["step"]] = record  # the latest of each step wins
    training = [a for a in sorted(attestations, key=_when) if a["step"] in TRAINING_STEPS]
    return {
        "model": {
            "uri": model.uri,
            "digest": model.root,
            "signed": model.verified,  # rules run only over a model whose signature verified
            "verified": model.verified,
            "signer": model.signer,
            "signature": model.signature,
            "files": dict(model.files),
        },
        "attestations": attestations,
        "steps": steps,
        "training": training[-1] if training else {},
        "datasets": _datasets(attestations),
        "source": _source(training[-1] if training else {}),
        "evaluation": _evaluation(attestations, evidence.documents),
        "params": dict(params),
        "now": now,
    }


def _when(record: Mapping[str, Any]) -> tuple[int, float]:
    """Records without a finish time sort first, so one with a time is the latest."""
    finished = record.get("finished")
    return (1, finished.timestamp()) if finished is not None else (0, 0.0)


def _descriptors(found: Any) -> list[dict[str, Any]]:
    return [
        {"name": str(d.get("name", "")), "uri": str(d.get("uri", "")),
         "digest": descriptor_digest(d), "annotations": dict(d.get("annotations") or {})}
        for d in (found if isinstance(found, list) else [])
        if isinstance(d, Mapping)
    ]  # fmt: skip


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None  # a time without zone is no time


def _attestation(checked: Checked, signer: str, now: datetime) -> dict[str, Any]:
    statement = checked.statement or {}
    predicate = statement.get("predicate") or {}
    build = predicate.get("buildDefinition") or {}
    details = predicate.get("runDetails") or {}
    metadata = details.get("metadata") or {}
    builder = details.get("builder") or {}
    external = build.get("externalParameters") or {}
    internal = build.get("internalParameters") or {}
    finished = _time(metadata.get("finishedOn"))
    verified = checked.status is Status.VERIFIED
    record: dict[str, Any] = {
        "name": checked.attestation.name,
        "step": str(external.get("step", "")),
        "predicateType": str(statement.get("predicateType", "")),
        "buildType": str(build.get("buildType", "")),
        "status": checked.status.value,
        "signed": checked.attestation.signed,
        "verified": verified,
        "signer": signer if verified else "",
        "subject": _descriptors(statement.get("subject")),
        "materials": _descriptors(build.get("resolvedDependencies")),
        "params": dict(external.get("params") or {}),
        "externalParameters": dict(external),
        "internalParameters": dict(internal),
        "image": str(internal.get("image", "")),
        "image_digest": str(internal.get("image", "")).partition("@")[2],
        "builder": str(builder.get("id", "")),
        "invocation": str(metadata.get("invocationId", "")),
        "byproducts": [dict(b) for b in details.get("byproducts") or [] if isinstance(b, Mapping)],
    }
    # A time that is not known is left out (CEL's has() tests it); cel-python cannot
    # compare a number or a timestamp with null.
    if (started := _time(metadata.get("startedOn"))) is not None:
        record["started"] = started
    if finished is not None:
        record["finished"] = finished
        record["age_days"] = (now - finished).total_seconds() / 86400
    return record


def _datasets(attestations: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    produced = {s["digest"] for a in attestations for s in a["subject"] if s["digest"]}
    found: dict[tuple[str, str], dict[str, str]] = {}
    for record in attestations:
        for material in record["materials"]:
            digest = material["digest"]
            if material["name"] not in DATA_MATERIALS or not digest.startswith("sha256:"):
                continue
            if digest in produced:
                continue  # made inside the lineage: its origin is what its maker read
            found.setdefault((material["uri"], digest), {
                "name": material["name"], "uri": material["uri"], "digest": digest,
                "step": record["step"],
            })  # fmt: skip
    return list(found.values())


def _source(training: Mapping[str, Any]) -> dict[str, str]:
    code = [m for m in training.get("materials", []) if m["digest"].startswith("gitCommit:")]
    if not code:
        return {"uri": "", "revision": "", "branch": ""}
    annotations = code[0]["annotations"]
    ref = str(annotations.get("ref") or annotations.get("branch") or "")
    return {
        "uri": code[0]["uri"],
        "revision": code[0]["digest"].removeprefix("gitCommit:"),
        "branch": ref.removeprefix("refs/heads/"),
    }


def _evaluation(
    attestations: Sequence[Mapping[str, Any]], documents: Mapping[str, Any]
) -> dict[str, Any]:
    """The latest verified evaluate-model record whose report is in the model."""
    for record in sorted(attestations, key=_when, reverse=True):
        if record["step"] != EVALUATE_STEP or not record["verified"]:
            continue
        report = next(
            (documents[s["digest"]] for s in record["subject"] if s["digest"] in documents),
            None,
        )
        if not isinstance(report, Mapping):
            continue
        return {
            "found": True,
            "passed": report.get("passed") is True,
            "metrics": _mapping(report.get("metrics")),
            "checks": [dict(c) for c in report.get("checks") or [] if isinstance(c, Mapping)],
            "thresholds": _mapping(record["params"].get("thresholds")),
            "attestation": record["name"],
        }
    return {"found": False, "passed": False, "metrics": {}, "checks": [], "thresholds": {},
            "attestation": ""}  # fmt: skip


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}
