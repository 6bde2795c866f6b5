"""Which stored models a revocation of datasets reaches, and its mark beside each of them.

The models are those ``uses`` finds trained on a revoked dataset, directly or through
datasets prepared from it. For each, what identifies it where it is deployed or registered
is read from its own lineage: the root digest its signature covers (sign-artifact's input,
what deploy-model verifies and reports), the root digest it was pushed as (push-model's
input, a folder or S3 store's ``sha256-<root>``), the digests its deployments verified, and
the URIs they deployed it from.

The mark is a lineage statement of the step ``revoke-dataset`` attached beside the model:
the revoked datasets and the model are its inputs, who and why its parameters. A model
whose verified (or, without keys, unchecked) lineage already holds such a mark for a
dataset is not marked twice for it.

Example::

    reached, failed = affected(["sha256:…"], models_in(store, options), [public_key])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tekton_mlops.lineage import Artifact, statement
from tekton_mlops.lineage_store.attestations import check
from tekton_mlops.lineage_store.graph import Graph, StepRun, build
from tekton_mlops.lineage_store.store import DEPLOY_STEP, Found
from tekton_mlops.lineage_store.uses import uses

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

STEP = "revoke-dataset"
#: The runs whose "model" input is the model itself, by one of its digests.
_MODEL_READERS = ("sign-artifact", "verify-artifact", "push-model", DEPLOY_STEP)
_STORED_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")


@dataclass(frozen=True)
class Affected:
    model: str  # its URI in the store
    datasets: tuple[str, ...]  # the revoked digests it was trained on
    via: tuple[str, ...]  # the runs between the first of them and the training run
    training: StepRun
    deployments: tuple[StepRun, ...]  # deploy records attached beside it
    digests: frozenset[str]  # "sha256:<hex>": what deployments and the registry know it by
    uris: frozenset[str]  # where it was deployed from
    revoked: frozenset[str]  # datasets a revocation beside it already names

    @property
    def stored_digest(self) -> str:
        """The digest in its store URI (the OCI manifest's, the ``sha256-<root>`` folder's)."""
        found = _STORED_DIGEST.findall(self.model)
        return f"sha256:{found[-1]}" if found else ""

    @property
    def marked(self) -> bool:
        """Every dataset it is revoked for is named by a revocation beside it already."""
        return set(self.datasets) <= self.revoked


def _model_facts(graph: Graph) -> tuple[set[str], set[str], set[str]]:
    digests: set[str] = set()
    uris: set[str] = set()
    revoked: set[str] = set()
    for run in (r for r in graph.runs if r.trusted):
        models = [a for a in run.inputs if a.name == "model"]
        if run.step in _MODEL_READERS:
            digests |= {a.digest for a in models if a.digest.startswith("sha256:")}
        if run.step == DEPLOY_STEP:
            uris |= {a.uri for a in models if a.uri}
        if run.step == STEP:
            revoked |= {a.id for a in run.data_inputs if a.name == "revoked-dataset"}
    return digests, uris, revoked


def affected(
    datasets: Sequence[str], models: Sequence[Found], keys: Sequence[EllipticCurvePublicKey]
) -> tuple[list[Affected], list[StepRun]]:
    """The models trained on any of ``datasets``, and the attestations that did not verify
    (each once); a model reached by several datasets is one entry naming them all."""
    reached: dict[str, list[tuple[str, tuple[str, ...], StepRun, tuple[StepRun, ...]]]] = {}
    failed: dict[str, StepRun] = {}
    for dataset in datasets:
        answer = uses(dataset, models, keys)
        failed.update((r.attestation, r) for r in answer.failed)
        for use in answer.uses:
            reached.setdefault(use.model, []).append(
                (dataset, use.via, use.training, use.deployments)
            )
    found = []
    by_subject = {m.subject: m for m in models}
    for uri, hits in reached.items():
        graph = build(uri, [check(a, keys) for a in by_subject[uri].attestations])
        digests, uris, revoked = _model_facts(graph)
        _, via, training, deployments = hits[0]
        datasets = tuple(h[0] for h in hits)
        item = Affected(uri, datasets, via, training, deployments, frozenset(digests),
                        frozenset(uris | {uri}), frozenset(revoked))  # fmt: skip
        if item.stored_digest:
            item = replace(item, digests=item.digests | {item.stored_digest})
        found.append(item)
    return found, list(failed.values())


def revocation_statement(
    item: Affected, params: dict[str, Any], started: datetime, finished: datetime
) -> dict[str, Any]:
    """The mark beside a revoked model: the revoked datasets it was trained on and the model
    are its inputs (no subject: it makes nothing), who and why are in ``params``."""
    inputs = [Artifact("revoked-dataset", "", d.removeprefix("sha256:")) for d in item.datasets]
    inputs.append(Artifact("model", item.model, item.stored_digest.removeprefix("sha256:")))
    return statement(STEP, params, inputs, [], started, finished)
