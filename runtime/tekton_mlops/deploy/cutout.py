"""Take a deployment out of service at once, whatever its traffic strategy: the local target.

A cut-out is either the whole deployment (every server, the router) or, given which models
to take out, exactly the parts serving them:

- canary slots (``stable``, ``canary``): each slot whose record names such a model stops;
  the other keeps serving as it did (a canary keeps its share, a stable server its own);
- versions behind a router (blue-green, mirror, A/B/n): those versions leave the routing
  table in one write, the versions left keep their shares scaled back to 100, and their
  servers stop. When no version with traffic would be left, the whole deployment stops:
  an idle candidate is never put live by a removal.

Nothing is deleted but the served copy of each model (``<slot>/model/``): the folders keep
the deploy records and logs, which say what was served. A second cut-out of the same thing
finds nothing serving and changes nothing (``CutOut.already``). With ``dry_run`` only the
plan is computed, for a report.

Example::

    cut = cut_out_local(Path(".deployments"), "iris", serving({"sha256:…"}, set()))
    [s.what for s in cut.taken]        # ['version green']
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tekton_mlops.deploy import local, local_routes
from tekton_mlops.deploy.kserve import DeployError
from tekton_mlops.lineage import lineage_path

DEPLOY_STEP = "deploy-model"


@dataclass(frozen=True)
class ModelRef:
    """A model as a deployment names it: the URI it was deployed from, the digest verified."""

    uri: str
    digest: str = ""  # "sha256:<hex>"; empty when it was deployed unverified


#: Which models to take out of service; None takes out the whole deployment.
Serves = Callable[[ModelRef], bool]


@dataclass(frozen=True)
class Served:
    """One part of a deployment taken out of service (or that would be, in a plan)."""

    what: str  # "stable", "version blue", "router", "InferenceService models/iris-blue"
    url: str  # the deployment's URL (the router's, the graph's) where clients reached it
    model: ModelRef | None  # None for what routes and serves no model itself
    folder: Path | None = None  # where its deploy record is, when it has one


@dataclass(frozen=True)
class CutOut:
    target: str
    namespace: str
    name: str
    taken: tuple[Served, ...]
    kept: dict[str, int] = field(default_factory=dict)  # versions left serving, their weights
    done: bool = True  # False for a dry run: nothing was changed

    @property
    def already(self) -> bool:
        """Nothing was serving what was asked: it was out of service already."""
        return not self.taken


def serving(digests: Collection[str], uris: Collection[str]) -> Serves:
    """A model deployed as one of ``digests`` (verified) or from one of ``uris``."""
    wanted = {u.rstrip("/") for u in uris}
    return lambda model: bool(
        (model.digest and model.digest in digests) or model.uri.rstrip("/") in wanted
    )


def deployed_model(folder: Path) -> ModelRef | None:
    """The model a deploy record in ``folder`` names, or None without a readable record."""
    try:
        record = json.loads(lineage_path(folder, DEPLOY_STEP).read_text())
        deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
        model = next(d for d in deps if d.get("name") == "model")
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None
    digest = str((model.get("digest") or {}).get("sha256", ""))
    return ModelRef(str(model.get("uri", "")), f"sha256:{digest}" if digest else "")


@dataclass(frozen=True)
class Recorded:
    """A deploy record found in a deployments folder."""

    target: str
    namespace: str
    name: str
    model: ModelRef
    folder: Path


def recorded(state: Path) -> Iterator[Recorded]:
    """Every deploy record under ``state``: ``<name>/`` (KServe canary), ``<name>/<slot>/``
    (local canary, KServe versions) and ``<name>/versions/<version>/`` (local versions)."""
    if not state.is_dir():
        return
    for deployment in sorted(p for p in state.iterdir() if p.is_dir() and p.name[0] != "."):
        folders = [
            deployment,
            *sorted(deployment.iterdir()),
            *sorted(deployment.glob("versions/*")),
        ]
        for folder in folders:
            model = deployed_model(folder) if folder.is_dir() else None
            if model is None:
                continue
            params = _params(folder)
            yield Recorded(str(params.get("target", "")), str(params.get("namespace") or ""),
                           deployment.name, model, folder)  # fmt: skip


def _params(folder: Path) -> dict[str, object]:
    record = json.loads(lineage_path(folder, DEPLOY_STEP).read_text())
    found = record["predicate"]["buildDefinition"].get("externalParameters", {}).get("params")
    return found if isinstance(found, dict) else {}


def _drop_copy(folder: Path) -> None:
    """The served copy of the model goes; the records stay."""
    shutil.rmtree(folder / "model", ignore_errors=True)


def cut_out_local(
    state: Path, name: str, serves: Serves | None = None, dry_run: bool = False
) -> CutOut:
    """Take the local deployment ``name`` (or its parts serving ``serves``) out of service."""
    if not (state / name).is_dir():
        raise DeployError(f"{name}: no local deployment under {state}")
    taken: list[Served] = []
    for which in (local.CANARY, local.STABLE):
        slot = local.slot(state, name, which)
        model = deployed_model(slot.folder)
        if slot.running and (serves is None or (model is not None and serves(model))):
            taken.append(Served(which, slot.url, model, slot.folder))
            if not dry_run:
                local.stop(slot)
                _drop_copy(slot.folder)
    routing = local_routes.status(state, name)
    folders = {v: state / name / "versions" / v for v in routing.versions}
    models = {v: deployed_model(f) for v, f in folders.items()}
    chosen = [v for v, m in models.items() if serves is None or (m is not None and serves(m))]
    kept: dict[str, int] = {}
    if chosen:
        after = local_routes.remaining_weights(routing.weights, chosen)
        kept = after or {}
        if after is None:
            chosen = list(folders)  # nothing live would be left: the whole deployment goes
        if not dry_run:
            chosen, _ = local_routes.cut_out(state, name, chosen)
        taken += [Served(f"version {v}", routing.url, models[v], folders[v]) for v in chosen]
        if after is None and routing.url:
            taken.append(Served("router", routing.url, None, state / name / "router"))
        for version in chosen if not dry_run else ():
            _drop_copy(folders[version])
    return CutOut("local", "", name, tuple(taken), kept, not dry_run)
