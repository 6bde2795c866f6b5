"""revoke-dataset: the right to be forgotten, from the dataset to every model trained on it.

Order, each part before the next:

1. Everything is checked before anything changes: the keys load, the report folder and the
   deployments folder can be written, the MLflow server answers, the store is read and the
   models trained on the revoked digests are found (lineage_store.revocation over ``uses``).
2. Their deployments go out of service first, the urgent part: the deployments recorded
   beside each model in the store and in the deployments folder, each cut out as the cut-out
   step does it, for exactly what serves a revoked model (deploy/cutout*.py), each with a
   cut-out record signed with the signing key.
3. Each model gets a signed ``revoke-dataset`` mark beside it in the store.
4. Its registered MLflow versions are tagged revoked and lose their aliases.
5. The report, its lineage record and the record's signed bundle are written.

A part that fails does not stop the others (a deployment that cannot be reached must not
keep a model from being marked); the step then fails after the report, naming what failed.
With a public key, attestations that do not verify are ignored and listed in the report:
a forged record can neither hide a model from revocation unnoticed nor revoke one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.contract import StepContext
from tekton_mlops.errors import MlopsError
from tekton_mlops.lineage import Artifact, attestation_path
from tekton_mlops.results import ResultValue
from tekton_mlops.steps.cut_out import attach_record, state_dir, store_options
from tekton_mlops.steps.revoke_report import (
    REPORT_JSON,
    REPORT_MARKDOWN,
    Handled,
    ModelOutcome,
    build,
    markdown,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from tekton_mlops.deploy.kserve import KServe
    from tekton_mlops.lineage_store.revocation import Affected
    from tekton_mlops.storage.fetch import FetchOptions
    from tekton_mlops.tracking.revocation import RevocationRegistry

STEP = "revoke-dataset"


@dataclass(frozen=True)
class Params:
    digests: str
    store: str
    reason: str
    actor: str
    public_key: str
    signing_key: str
    output: str
    target: str
    state_dir: str
    kubeconfig: str
    timeout: int
    dry_run: bool
    mlflow_tracking_uri: str
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool


class RevocationIncomplete(MlopsError):
    """Some deployment, mark or registered version could not be dealt with."""


def parse_digests(text: str) -> list[str]:
    """The digests of a JSON array or a comma list (the schema checked the form)."""
    text = text.strip()
    values = json.loads(text) if text.startswith("[") else text.split(",")
    return list(dict.fromkeys(str(v).strip() for v in values))


@dataclass(frozen=True)
class Run:
    """What every part of a revocation needs."""

    params: Params
    ctx: StepContext
    datasets: list[str]
    key: EllipticCurvePrivateKey
    actor: str
    state: Path
    options: FetchOptions


def _related(run: Run, reached: list[Affected]) -> list[Handled]:
    """The deployments recorded serving a revoked model: beside it in the store, or in the
    deployments folder."""
    from tekton_mlops.deploy.cutout import recorded, serving

    found: dict[tuple[str, str, str], Handled] = {}

    def add(target: str, namespace: str, name: str, model: str) -> None:
        namespace = namespace or ("default" if target == "kserve" else "")
        key = (target, namespace, name)
        handled = found.setdefault(key, Handled(target, namespace, name, []))
        if model not in handled.models:
            handled.models.append(model)

    for item in reached:
        for deploy in item.deployments:
            params = deploy.params
            add(str(params.get("target", "")), str(params.get("namespace") or ""),
                str(params.get("name", "")), item.model)  # fmt: skip
    for record in recorded(run.state):
        for item in reached:
            if serving(item.digests, item.uris)(record.model):
                add(record.target, record.namespace, record.name, item.model)
    return [found[k] for k in sorted(found)]


def _take_out(run: Run, reached: list[Affected], cluster: KServe | None) -> list[Handled]:
    from tekton_mlops.deploy.cutout import cut_out_local, serving
    from tekton_mlops.deploy.cutout_record import cut_out_statement, write_record

    params, log = run.params, run.ctx.log
    serves = serving({d for i in reached for d in i.digests}, {u for i in reached for u in i.uris})
    handled = _related(run, reached)
    for each in handled:
        if each.target != params.target:
            each.status, each.detail = "not handled here", f"run with target={each.target}"
            continue
        try:
            if params.target == "local":
                if not (run.state / each.name).is_dir():
                    each.status, each.detail = "not found", f"nothing under {run.state}"
                    continue
                each.cut = cut_out_local(run.state, each.name, serves, params.dry_run)
            else:
                from tekton_mlops.deploy.cutout_kserve import cut_out_kserve

                assert cluster is not None
                each.cut = cut_out_kserve(cluster, run.state, each.namespace, each.name, serves,
                                          params.timeout, params.dry_run)  # fmt: skip
        except MlopsError as exc:
            each.status, each.detail = "failed", str(exc).splitlines()[0]
            log.warning("%s deployment %s: %s", each.target, each.name, each.detail)
            continue
        if each.cut.already:
            each.status = "already out of service"
            continue
        each.status = "would be taken out of service" if params.dry_run else "taken out of service"
        if params.dry_run:
            continue
        record_params = {"target": each.target, "name": each.name, "namespace": each.namespace,
                    "reason": f"datasets revoked ({', '.join(run.datasets)}): {params.reason}",
                    "actor": run.actor, "revoked_datasets": run.datasets,
                    "requested_by": STEP}  # fmt: skip
        statement = cut_out_statement([each.cut], record_params, run.ctx.started, datetime.now(UTC))
        path = write_record(run.state / each.name, statement, run.key)
        attach_record([each.cut], path, run.options, log)
        log.info("%s deployment %s: out of service (%s)", each.target, each.name,
                 ", ".join(s.what for s in each.cut.taken))  # fmt: skip
    return handled


def _mark(run: Run, item: Affected) -> str:
    """The signed revocation mark beside the model in its store."""
    from tekton_mlops.lineage_store.referrers import Record
    from tekton_mlops.lineage_store.revocation import revocation_statement
    from tekton_mlops.lineage_store.store import attach
    from tekton_mlops.signing import sign_statement

    if item.marked:
        return "already marked revoked"
    if run.params.dry_run:
        return "would be marked revoked"
    recorded = {"digests": run.datasets, "reason": run.params.reason, "actor": run.actor,
                "store": run.params.store, "dry_run": False}  # fmt: skip
    finished = datetime.now(UTC)
    record = revocation_statement(item, recorded, run.ctx.started, finished)
    bundle = (json.dumps(sign_statement(record, run.key), indent=2) + "\n").encode()
    created = record["predicate"]["runDetails"]["metadata"]["finishedOn"]
    try:
        attach(item.model, [Record(STEP, bundle, True, created)], run.options)
    except (MlopsError, OSError) as exc:
        run.ctx.log.warning("%s: not marked revoked: %s", item.model, exc)
        return f"failed: {str(exc).splitlines()[0]}"
    return "marked revoked"


def _registry(run: Run, registry: RevocationRegistry | None, outcome: ModelOutcome) -> None:
    from tekton_mlops.tracking.client import TrackingError

    if registry is None:
        return
    when = datetime.now(UTC).isoformat(timespec="seconds")
    why = f"{run.params.reason} (revoked {when} by {run.actor})"
    try:
        for name, version in registry.versions_with(outcome.item.digests):
            outcome.versions.append(registry.revoke(name, version, why, outcome.item.datasets,
                                                    run.params.dry_run))  # fmt: skip
    except TrackingError as exc:
        outcome.registry = f"failed: {exc}"
        run.ctx.log.warning("%s", exc)


def _write_report(run: Run, report: dict[str, Any]) -> tuple[Path, Path]:
    """The report files, the step's lineage record naming them, the record's signed bundle."""
    from tekton_mlops.digests import sha256_file
    from tekton_mlops.signing import sign_statement, write_json_atomically
    from tekton_mlops.storage.publish import atomic_write_text

    output = Path(run.params.output)
    atomic_write_text(output / REPORT_JSON, json.dumps(report, indent=2) + "\n")
    atomic_write_text(output / REPORT_MARKDOWN, markdown(report))
    record = run.ctx.write_lineage(
        output,
        inputs=[Artifact("revoked-dataset", "", d.removeprefix("sha256:")) for d in run.datasets],
        outputs=[
            Artifact(n, (output / n).resolve().as_uri(), sha256_file(output / n))
            for n in (REPORT_JSON, REPORT_MARKDOWN)
        ],  # fmt: skip
    )
    bundle = attestation_path(record)
    write_json_atomically(bundle, sign_statement(json.loads(record.read_text()), run.key))
    return output / REPORT_JSON, bundle


def _prepare(params: Params, ctx: StepContext) -> tuple[Run, list[Any]]:
    """Everything that can fail before a change: keys, folders. Returns the run and the
    public keys."""
    from tekton_mlops.deploy.cutout_record import default_actor
    from tekton_mlops.signing import load_private_key, load_public_key
    from tekton_mlops.storage.publish import check_writable_directory

    key = load_private_key(Path(params.signing_key))
    keys = [load_public_key(Path(params.public_key))] if params.public_key else []
    check_writable_directory(Path(params.output))
    state = state_dir(params.state_dir)
    if params.target == "kserve" and not params.dry_run:
        check_writable_directory(state)  # where the cut-out records go
    options = store_options(params.endpoint_url, params.addressing_style, params.registry_auth,
                            params.insecure_registry)  # fmt: skip
    actor = params.actor or default_actor()
    return Run(params, ctx, parse_digests(params.digests), key, actor, state, options), keys


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from contextlib import nullcontext

    from tekton_mlops.lineage_store.revocation import affected
    from tekton_mlops.lineage_store.store import models_in

    revocation, keys = _prepare(params, ctx)
    opened: Any = nullcontext(None)
    if params.mlflow_tracking_uri:
        from tekton_mlops.tracking.revocation import open_registry

        opened = open_registry(params.mlflow_tracking_uri)
    with opened as registry:
        reached, failed = affected(revocation.datasets, models_in(params.store, revocation.options),
                                   keys)  # fmt: skip
        ctx.log.info("%d model(s) in %s trained on %d revoked dataset(s)%s", len(reached),
                     params.store, len(revocation.datasets),
                     "" if keys else " (signatures not checked)")  # fmt: skip
        for run_ in failed:
            ctx.log.warning("ignored, did not verify: %s (%s)", run_.attestation, run_.reason)
        cluster = None
        if params.target == "kserve" and reached:
            from tekton_mlops.deploy.kserve import KServe

            cluster = KServe.connect(params.kubeconfig)
        handled = _take_out(revocation, reached, cluster) if reached else []
        outcomes = [ModelOutcome(item) for item in reached]
        for outcome in outcomes:
            outcome.store = _mark(revocation, outcome.item)
            _registry(revocation, registry, outcome)
    header = {
        "datasets": revocation.datasets, "store": params.store, "reason": params.reason,
        "actor": revocation.actor, "dry_run": params.dry_run, "target": params.target,
        "lineage": "verified with the public key" if keys else "signatures not checked",
        "started": ctx.started.isoformat(), "finished": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    report = build(header, outcomes, handled, failed)
    report_path, bundle = _write_report(revocation, report)
    taken = report["summary"]["deployments_taken_out"]
    ctx.log.info("%d model(s), %d deployment(s) taken out of service%s; report %s",
                 len(reached), taken, " (dry run)" if params.dry_run else "",
                 report_path)  # fmt: skip
    problems = [f"deployment {h.name}: {h.detail}" for h in handled if h.status == "failed"]
    problems += [f"{o.item.model}: {o.store}" for o in outcomes if o.store.startswith("failed")]
    problems += [f"{o.item.model}: MLflow {o.registry}" for o in outcomes if o.registry]
    if problems:
        raise RevocationIncomplete(
            f"revocation incomplete, {len(problems)} problem(s): {'; '.join(problems)} "
            f"(see {report_path})"
        )
    return {"models": str(len(reached)), "deployments": str(taken),
            "report": str(report_path), "report-bundle": str(bundle)}  # fmt: skip
