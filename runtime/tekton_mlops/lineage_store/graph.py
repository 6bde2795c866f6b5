"""The lineage graph of a model: step runs joined through the digests of what they read and wrote.

Each attestation is one step run. Its inputs (``resolvedDependencies``) and outputs
(``subject``) are artifacts identified by digest, so the run that wrote a dataset is
found as the producer of the digest another run read: train-model's dataset is
prepare-data's output, whose input is fetch-data's. An attestation that does not verify
is a run of its own, with its reason and nothing it claims.

Example::

    graph = build("oci://r.example/team/iris@sha256:…", checked)
    [run.step for run in graph.producers("sha256:…")]     # ['prepare-data']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.lineage import descriptor_digest
from tekton_mlops.lineage_store.attestations import Checked, Status

#: Steps that make a model from data: what "trained on" follows.
TRAINING_STEPS = ("train-model", "tune-model")
#: Steps whose records describe the model itself rather than the data upstream of it.
MODEL_STEPS = (*TRAINING_STEPS, "evaluate-model", "sign-artifact", "verify-artifact",
               "push-model", "deploy-model", "cut-out", "revoke-dataset",
               "check-slo", "check-golden", "check-mirror", "detect-drift")  # fmt: skip
#: The step whose record beside a model says its training data was revoked.
REVOCATION_STEP = "revoke-dataset"


@dataclass(frozen=True)
class ArtifactRef:
    name: str
    uri: str
    digest: str  # "sha256:<hex>", "gitCommit:<sha>", or "" for what has none

    @property
    def id(self) -> str:
        return self.digest or self.uri

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "uri": self.uri, "digest": self.digest}


@dataclass(frozen=True)
class StepRun:
    id: str
    step: str
    status: Status
    attestation: str
    reason: str = ""
    started: str = ""
    finished: str = ""
    invocation: str = ""
    image: str = ""
    runtime: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[ArtifactRef, ...] = ()
    outputs: tuple[ArtifactRef, ...] = ()
    byproducts: tuple[Mapping[str, Any], ...] = ()

    @property
    def trusted(self) -> bool:
        return self.status is not Status.FAILED

    @property
    def code(self) -> list[ArtifactRef]:
        return [a for a in self.inputs if a.digest.startswith("gitCommit:")]

    @property
    def data_inputs(self) -> list[ArtifactRef]:
        return [a for a in self.inputs if not a.digest.startswith("gitCommit:")]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "step": self.step,
            "status": self.status.value,
            "attestation": self.attestation,
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
            "pipelineRun": self.invocation,
            "image": self.image,
            "runtime": self.runtime,
            "code": [a.to_json() for a in self.code],
            "params": dict(self.params),
            "inputs": [a.to_json() for a in self.data_inputs],
            "outputs": [a.to_json() for a in self.outputs],
            "byproducts": [dict(b) for b in self.byproducts],
        }


@dataclass(frozen=True)
class Graph:
    subject: str
    runs: tuple[StepRun, ...]
    deployment: str = ""

    @property
    def failed(self) -> list[StepRun]:
        return [r for r in self.runs if r.status is Status.FAILED]

    @property
    def unsigned(self) -> list[StepRun]:
        return [r for r in self.runs if r.status is Status.UNSIGNED]

    @property
    def revocations(self) -> list[StepRun]:
        """The trusted records that revoked the model (a dataset it was trained on was)."""
        return [r for r in self.runs if r.trusted and r.step == REVOCATION_STEP]

    def producers(self, artifact_id: str) -> list[StepRun]:
        return [r for r in self.runs if r.trusted and any(o.id == artifact_id for o in r.outputs)]

    def model_runs(self) -> list[StepRun]:
        """The runs about the model itself (and those that failed), in the order they ran."""
        chosen = [r for r in self.runs if not r.trusted or r.step in MODEL_STEPS]
        return sorted(chosen, key=lambda r: (r.started or "~", r.id))

    def trained_on(self) -> set[str]:
        """Every digest a training run read, directly or through the runs that made it."""
        todo = [a.id for r in self.runs if r.trusted and r.step in TRAINING_STEPS
                for a in r.data_inputs]  # fmt: skip
        seen: set[str] = set()
        while todo:
            artifact = todo.pop()
            if artifact in seen:
                continue
            seen.add(artifact)
            todo.extend(a.id for p in self.producers(artifact) for a in p.data_inputs)
        return seen

    def artifacts(self) -> dict[str, ArtifactRef]:
        found: dict[str, ArtifactRef] = {}
        for run in self.runs:
            for artifact in (*run.data_inputs, *run.outputs):
                known = found.get(artifact.id)
                # Subjects carry no URI: keep the one an input gave the same digest.
                if known is None or (not known.uri and artifact.uri):
                    found[artifact.id] = artifact
        return found

    def to_json(self) -> dict[str, Any]:
        edges = [{"from": a.id, "to": r.id} for r in self.runs for a in r.data_inputs] + [
            {"from": r.id, "to": a.id} for r in self.runs for a in r.outputs
        ]
        return {
            "subject": self.subject,
            "deployment": self.deployment,
            "verified": not self.failed,
            "revoked": bool(self.revocations),
            "steps": [r.to_json() for r in self.runs],
            "artifacts": [a.to_json() for a in self.artifacts().values()],
            "edges": edges,
        }


def _refs(descriptors: Sequence[Mapping[str, Any]]) -> tuple[ArtifactRef, ...]:
    return tuple(
        ArtifactRef(str(d.get("name", "")), str(d.get("uri", "")), descriptor_digest(d))
        for d in descriptors
        if isinstance(d, Mapping)
    )


def run_of(index: int, checked: Checked) -> StepRun:
    """One step run from one checked attestation."""
    name = checked.attestation.name
    if checked.statement is None:
        return StepRun(f"run-{index}", "?", checked.status, name, checked.reason)
    try:
        return _run(f"run-{index}", checked, checked.statement)
    except (AttributeError, TypeError, ValueError):
        reason = "malformed lineage statement"
        return StepRun(f"run-{index}", "?", Status.FAILED, name, reason)


def _run(run_id: str, checked: Checked, statement: Mapping[str, Any]) -> StepRun:
    predicate = statement["predicate"]
    build = predicate.get("buildDefinition") or {}
    details = predicate.get("runDetails") or {}
    metadata = details.get("metadata") or {}
    internal = build.get("internalParameters") or {}
    external = build.get("externalParameters") or {}
    return StepRun(
        id=run_id,
        step=str(external.get("step", "?")),
        status=checked.status,
        attestation=checked.attestation.name,
        reason=checked.reason,
        started=str(metadata.get("startedOn", "")),
        finished=str(metadata.get("finishedOn", "")),
        invocation=str(metadata.get("invocationId", "")),
        image=str(internal.get("image", "")),
        runtime=str(internal.get("runtime", "")),
        params=dict(external.get("params") or {}),
        inputs=_refs(build.get("resolvedDependencies") or []),
        outputs=_refs(statement.get("subject") or []),
        byproducts=tuple(b for b in details.get("byproducts") or [] if isinstance(b, Mapping)),
    )


def build(subject: str, checked: Sequence[Checked], deployment: str = "") -> Graph:
    return Graph(subject, tuple(run_of(i, c) for i, c in enumerate(checked, 1)), deployment)
