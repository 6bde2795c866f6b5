"""cut-out: take a deployed model out of service at once, whatever its traffic strategy.

The deployment is found as deploy-model left it (deploy/cutout.py for the local target,
deploy/cutout_kserve.py for KServe); the record of who, why and when
(deploy/cutout_record.py) goes into ``<state-dir>/<name>/.mlops/lineage/cut-out.intoto.json``
and beside each model taken out in its store. Idempotent: when nothing serves what was asked,
nothing changes, no record is written, and ``already`` is true.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tekton_mlops.contract import StepContext
from tekton_mlops.errors import DestinationError, MlopsError
from tekton_mlops.results import ResultValue

if TYPE_CHECKING:
    from tekton_mlops.deploy.cutout import CutOut
    from tekton_mlops.storage.fetch import FetchOptions

#: The stopped result stays well under Tekton's results budget however many versions went.
_STOPPED_BYTES = 2000


@dataclass(frozen=True)
class Params:
    target: str
    name: str
    namespace: str
    reason: str
    actor: str
    model_digest: str
    kubeconfig: str
    state_dir: str
    timeout: int
    signing_key: str
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool


def state_dir(path: str) -> Path:
    """The deployments folder, as deploy-model chooses it; a file there is refused."""
    state = Path(path or Path(tempfile.gettempdir()) / "tekton-mlops-deployments")
    if state.exists() and not state.is_dir():
        raise DestinationError(f"{state}: exists and is not a directory (a deployments folder)")
    return state


def store_options(
    endpoint_url: str, addressing_style: str, registry_auth: str, insecure: bool
) -> FetchOptions:
    from tekton_mlops.storage.fetch import FetchOptions
    from tekton_mlops.storage.s3 import S3Settings

    settings = S3Settings(endpoint_url=endpoint_url, addressing_style=addressing_style)
    return FetchOptions(settings, registry_auth, insecure)


def attach_record(
    cuts: list[CutOut], record: Path, options: FetchOptions, log: logging.Logger
) -> list[str]:
    """The record beside each stored model taken out of service. The deployments are out of
    service by now: a store that refuses it (read-only credentials) is a warning, and the
    record stays in the deployments folder."""
    from tekton_mlops.lineage_store.publish import publish_record
    from tekton_mlops.lineage_store.store import STORE_SCHEMES

    uris = dict.fromkeys(s.model.uri for c in cuts for s in c.taken
                         if s.model and s.model.uri.startswith(STORE_SCHEMES))  # fmt: skip
    where: list[str] = []
    for uri in uris:
        try:
            where += publish_record(uri, record, options)
        except (MlopsError, OSError, ValueError) as exc:
            log.warning("cut-out record not attached to %s: %s", uri, exc)
    return where


def stopped_result(cuts: list[CutOut]) -> str:
    """What was taken out, as a compact JSON array cut to fit the results budget."""
    names = [s.what for c in cuts for s in c.taken]
    shown = names
    while len(json.dumps(shown, separators=(",", ":"))) > _STOPPED_BYTES:
        shown = [*names[: len(shown) - 2], f"+{len(names) - len(shown) + 2} more"]
    return json.dumps(shown, separators=(",", ":"))


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.deploy import cutout, cutout_record

    key = None
    if params.signing_key:
        from tekton_mlops.signing import load_private_key

        key = load_private_key(Path(params.signing_key))
    state = state_dir(params.state_dir)
    digest = params.model_digest.lower()
    digest = f"sha256:{digest.removeprefix('sha256:')}" if digest else ""
    serves = cutout.serving({digest}, ()) if digest else None
    if params.target == "local":
        cut = cutout.cut_out_local(state, params.name, serves)
    else:
        from tekton_mlops.deploy.cutout_kserve import cut_out_kserve
        from tekton_mlops.deploy.kserve import KServe
        from tekton_mlops.storage.publish import check_writable_directory

        check_writable_directory(state / params.name)  # the record's folder, before any change
        cluster = KServe.connect(params.kubeconfig)
        namespace = params.namespace or "default"
        cut = cut_out_kserve(cluster, state, namespace, params.name, serves, params.timeout)
    what = f"{params.target} deployment {params.name}" + (f" (model {digest})" if digest else "")
    if cut.already:
        ctx.log.info("%s: already out of service; nothing changed", what)
        return {"stopped": "[]", "already": "true"}
    actor = params.actor or cutout_record.default_actor()
    recorded = {**ctx.params, "actor": actor}
    statement = cutout_record.cut_out_statement([cut], recorded, ctx.started, datetime.now(UTC))
    path = cutout_record.write_record(state / params.name, statement, key)
    ctx.log.info("%s: out of service (%s) by %s: %s", what,
                 ", ".join(s.what for s in cut.taken), actor, params.reason)  # fmt: skip
    if cut.kept:
        ctx.log.info("still serving: %s", json.dumps(cut.kept, separators=(",", ":")))
    options = store_options(params.endpoint_url, params.addressing_style, params.registry_auth,
                            params.insecure_registry)  # fmt: skip
    where = attach_record([cut], path, options, ctx.log)
    ctx.log.info("cut-out record %s%s", path, f", attached to {', '.join(where)}" if where else "")
    return {"stopped": stopped_result([cut]), "already": "false"}
