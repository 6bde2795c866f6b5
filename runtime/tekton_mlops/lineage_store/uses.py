"""Which models (and their deployments) were trained on a dataset, in a whole store.

A model uses a dataset when one of its training runs read it, or read a dataset made
from it (prepare-data, any number of times over). Only attestations that can be used
count: with public keys, those that verify; a store's attestations that do not verify
are reported beside the answer.

Example::

    answer = uses("sha256:…", models_in("s3://models/", options), [public_key])
    [use.model for use in answer.uses]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tekton_mlops.lineage_store.attestations import check
from tekton_mlops.lineage_store.graph import TRAINING_STEPS, Graph, StepRun, build
from tekton_mlops.lineage_store.store import DEPLOY_STEP, Found

CUT_OUT_STEP = "cut-out"

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey


@dataclass(frozen=True)
class Use:
    model: str
    via: tuple[str, ...]  # the runs from the dataset to the training run, e.g. prepare-data
    training: StepRun
    deployments: tuple[StepRun, ...]
    revocations: tuple[StepRun, ...] = ()  # revoke-dataset's marks beside the model
    cut_outs: tuple[StepRun, ...] = ()  # cut-out records of its deployments

    @property
    def revoked(self) -> bool:
        return bool(self.revocations)

    def out_of_service(self, deployment: StepRun) -> bool:
        """A cut-out of the same deployment recorded after it was deployed."""
        where = _where(deployment)
        return any(_where(c) == where and _after(c.finished, deployment.finished)
                   for c in self.cut_outs)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "via": list(self.via),
            "training": self.training.to_json(),
            "revoked": self.revoked,
            "deployments": [
                {**d.to_json(), "out_of_service": self.out_of_service(d)} for d in self.deployments
            ],
        }


def _where(run: StepRun) -> tuple[str, str, str]:
    target = str(run.params.get("target", ""))
    namespace = str(run.params.get("namespace") or ("default" if target == "kserve" else ""))
    return target, namespace, str(run.params.get("name", ""))


def _after(later: str, earlier: str) -> bool:
    from datetime import datetime

    try:
        return datetime.fromisoformat(later) >= datetime.fromisoformat(earlier)
    except ValueError:
        return False


@dataclass(frozen=True)
class Answer:
    dataset: str
    uses: tuple[Use, ...]
    failed: tuple[StepRun, ...]  # attestations in the store that did not verify

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "models": [u.to_json() for u in self.uses],
            "not_verified": [{"attestation": r.attestation, "reason": r.reason}
                             for r in self.failed],
        }  # fmt: skip


def _path(graph: Graph, training: StepRun, digest: str) -> tuple[str, ...] | None:
    """The runs between ``digest`` and ``training`` (empty: read directly), or None."""
    todo: list[tuple[str, tuple[str, ...]]] = [(a.id, ()) for a in training.data_inputs]
    seen: set[str] = set()
    while todo:
        artifact, via = todo.pop(0)
        if artifact == digest:
            return via
        if artifact in seen:
            continue
        seen.add(artifact)
        for producer in graph.producers(artifact):
            todo.extend((a.id, (producer.step, *via)) for a in producer.data_inputs)
    return None


def uses(dataset: str, models: Sequence[Found], keys: Sequence[EllipticCurvePublicKey]) -> Answer:
    """The models in ``models`` trained on ``dataset`` (``sha256:<hex>``)."""
    found: list[Use] = []
    failed: list[StepRun] = []
    for model in models:
        graph = build(model.subject, [check(a, keys) for a in model.attestations])
        failed.extend(graph.failed)
        for training in (r for r in graph.runs if r.trusted and r.step in TRAINING_STEPS):
            via = _path(graph, training, dataset)
            if via is not None:
                deployments = tuple(r for r in graph.runs if r.trusted and r.step == DEPLOY_STEP)
                cut_outs = tuple(r for r in graph.runs if r.trusted and r.step == CUT_OUT_STEP)
                found.append(Use(model.subject, via, training, deployments,
                                 tuple(graph.revocations), cut_outs))  # fmt: skip
                break
    return Answer(dataset, tuple(found), tuple(failed))
