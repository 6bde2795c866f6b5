"""deploy-model: a verified model to KServe (InferenceService) or a local V2 server; canaries.

A deploy writes its lineage record into the deployments folder (``state-dir``, the
``deployments`` workspace): for the local target inside the slot it started,
``<state>/<name>/<stable|canary>/.mlops/lineage/deploy-model.intoto.json`` (a promotion
carries it along with the slot), for KServe ``<state>/<name>/.mlops/lineage/…``. Its input
is the model URI with the root digest its signature verified, its subject the deployment's
URL with that same digest (the URL and revision as a byproduct). The record is also attached
beside the model in its store (``oci://``, ``s3://``, ``file://``: see lineage_store), where
``tekton-mlops lineage`` finds it. Promote, rollback and stop move traffic between
deployments that already have their record, and write none.

With ``mlflow-tracking-uri`` the registered model's aliases follow the traffic: a canary
deploy makes its version ``challenger`` (a full deploy: ``champion``), promote makes the
challenger ``champion``, rollback removes ``challenger``. The version deployed is found
by the digest the deploy verified (push-model tags each version with it) unless
``mlflow-model-version`` names it. The server and the registered model are checked
before anything is deployed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.contract import StepContext
from tekton_mlops.deploy.kserve import DeployError
from tekton_mlops.errors import ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue

if TYPE_CHECKING:
    from tekton_mlops.tracking.lifecycle import RegisteredModel

#: Where KServe's storage initializer can read from (file:// is this machine only).
KSERVE_SCHEMES = ("s3://", "oci://", "gs://", "pvc://", "https://", "http://", "hf://")
#: What this step can pull to check a signature.
VERIFIABLE_SCHEMES = ("s3://", "oci://", "file://", "https://", "http://")


@dataclass(frozen=True)
class Params:
    model_uri: str
    target: str
    name: str
    namespace: str
    canary_traffic_percent: int
    strategy: str
    version: str
    weights: dict[str, int]
    sticky_header: str
    mirror_percent: float
    payload_log_url: str
    promote: bool
    rollback: bool
    stop: bool
    retire: bool
    public_key: str
    signature: str
    allow_unverified: bool
    service_account: str
    deployment_mode: str
    resources: dict[str, Any]
    timeout: int
    kubeconfig: str
    port: int
    state_dir: str
    endpoint_url: str
    addressing_style: str
    registry_auth: str
    insecure_registry: bool
    mlflow_tracking_uri: str
    mlflow_model_name: str
    mlflow_model_version: str


def _action(params: Params) -> str:
    chosen = [a for a in ("promote", "rollback", "stop", "retire") if getattr(params, a)]
    problems = []
    if len(chosen) > 1:
        problems.append(Violation(chosen[1], "true", f"cannot be combined with {chosen[0]}"))
    action = chosen[0] if chosen else "deploy"
    if action == "deploy" and params.strategy == "abn" and not params.model_uri and params.weights:
        action = "route"  # new weights for versions already deployed
    if action == "retire" and params.strategy == "canary":
        problems.append(Violation("retire", "true", "applies to blue-green, mirror and abn"))
    if action == "deploy" and not params.model_uri:
        problems.append(Violation("model-uri", "", "is required to deploy"))
    if action == "stop" and params.target != "local":
        problems.append(Violation("stop", "true", "applies to the local target only"))
    if action == "deploy" and params.target == "kserve" and params.model_uri.startswith("file://"):
        problems.append(Violation("model-uri", params.model_uri, "KServe cannot read file:// URIs"))
    if params.payload_log_url and params.target != "kserve":
        rule = (
            "applies to the kserve target (locally, the router records mirrored answers and "
            "tekton-mlops serve --log-payloads logs payloads)"
        )
        problems.append(Violation("payload-log-url", params.payload_log_url, rule))
    elif params.payload_log_url and action != "deploy":
        rule = f"applies to a deploy (model-uri), not {action}: the logger is part of a version"
        problems.append(Violation("payload-log-url", params.payload_log_url, rule))
    if action == "deploy" and not params.public_key and not params.allow_unverified:
        rule = (
            "refusing to deploy an unverified model: give the public key "
            "(verification-key workspace) or set allow-unverified"
        )
        problems.append(Violation("public-key", "", rule))
    if problems:
        raise ParameterError("deploy-model", problems)
    if params.strategy != "canary" and action != "stop":
        from tekton_mlops.steps import deploy_strategies

        deploy_strategies.check(params, action)
    return action


def _pull(params: Params, stage: Path, ctx: StepContext) -> str:
    """Fetch the model into ``stage`` and verify its signature; return the signed root."""
    from tekton_mlops.signing import load_public_key, verify_model
    from tekton_mlops.storage.fetch import FetchOptions, fetch
    from tekton_mlops.storage.s3 import S3Settings

    if not params.model_uri.startswith(VERIFIABLE_SCHEMES):
        raise DeployError(f"{params.model_uri}: cannot be pulled here to verify its signature")
    if params.model_uri.startswith("file://"):
        from tekton_mlops.storage.files import local_path

        # A model is a directory; a lone file would be copied only to fail verification,
        # with a message about the staging folder rather than what the user named.
        if local_path(params.model_uri).is_file():
            raise DeployError(
                f"{params.model_uri}: is a file; deploy-model deploys a model directory"
            )
    key = load_public_key(Path(params.public_key)) if params.public_key else None
    options = FetchOptions(
        S3Settings(endpoint_url=params.endpoint_url, addressing_style=params.addressing_style),
        params.registry_auth,
        params.insecure_registry,
    )
    fetch(params.model_uri, stage, options, ctx.log)
    if key is None:
        ctx.log.warning("deploying %s WITHOUT signature verification", params.model_uri)
        return ""
    signed = verify_model(stage, key, stage / params.signature)
    ctx.log.info("signature verified: %s is %s", params.model_uri, signed.root)
    return signed.root


def _state(params: Params) -> Path:
    return Path(params.state_dir or Path(tempfile.gettempdir()) / "tekton-mlops-deployments")


def _record(
    params: Params, ctx: StepContext, folder: Path, url: str, digest: str, revision: str = ""
) -> None:
    """The lineage of one deploy: the verified model in, the endpoint serving it out (its
    URL and revision as a byproduct: a subject has a digest, not a place)."""
    from datetime import UTC, datetime

    from tekton_mlops.lineage import statement, write_statement

    hex_digest = digest.removeprefix("sha256:")
    endpoint: dict[str, Any] = {"name": "deployment", "uri": url}
    if revision:
        endpoint["annotations"] = {"revision": revision}
    record = statement(
        ctx.step,
        ctx.params,
        inputs=[Artifact("model", params.model_uri, hex_digest)],
        outputs=[Artifact("deployment", url, hex_digest)],
        started=ctx.started,
        finished=datetime.now(UTC),
        byproducts=[endpoint],
    )
    _attach(params, ctx, write_statement(folder, ctx.step, record))


def _attach(params: Params, ctx: StepContext, record: Path) -> None:
    """The deployment's record beside the model in its store too, where ``lineage uses``
    finds it. The deployment is live by now: a store that refuses the record (read-only
    credentials) is a warning, and the record stays in the deployments folder."""
    from tekton_mlops.errors import MlopsError
    from tekton_mlops.lineage_store.publish import publish_record
    from tekton_mlops.lineage_store.store import STORE_SCHEMES
    from tekton_mlops.storage.fetch import FetchOptions
    from tekton_mlops.storage.s3 import S3Settings

    if not params.model_uri.startswith(STORE_SCHEMES):
        return
    settings = S3Settings(
        endpoint_url=params.endpoint_url, addressing_style=params.addressing_style
    )
    options = FetchOptions(settings, params.registry_auth, params.insecure_registry)
    try:
        where = publish_record(params.model_uri, record, options)
    except (MlopsError, OSError, ValueError) as exc:
        ctx.log.warning("deployment record not attached to %s: %s", params.model_uri, exc)
        return
    ctx.log.info("deployment record attached: %s", ", ".join(where))


def _kserve(params: Params, action: str, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.deploy.kserve import Deployment, KServe, render, with_traffic

    namespace = params.namespace or "default"
    digest = ""
    if action == "deploy":
        from tekton_mlops.storage.publish import check_writable_directory

        check_writable_directory(_state(params))  # the record's folder, before any change
    if action == "deploy" and params.public_key:
        with tempfile.TemporaryDirectory(prefix="deploy-model-") as stage:
            digest = _pull(params, Path(stage), ctx)
    cluster = KServe.connect(params.kubeconfig)
    if action == "deploy":
        isvc = render(
            Deployment(
                params.name,
                namespace,
                params.model_uri,
                canary=params.canary_traffic_percent,
                service_account=params.service_account,
                resources=params.resources,
                deployment_mode=params.deployment_mode,
                model_digest=digest,
                payload_log_url=params.payload_log_url,
            )
        )
    else:
        current = cluster.get(namespace, params.name)
        isvc = with_traffic(current, 0 if action == "rollback" else None)
    url, revision = cluster.apply_and_wait(isvc, params.timeout)
    traffic = isvc["spec"]["predictor"].get("canaryTrafficPercent")
    ctx.log.info(
        "%s InferenceService %s/%s: Ready at %s, revision %s, canary %s",
        action, namespace, params.name, url, revision,
        "none" if traffic is None else f"{traffic}%",
    )  # fmt: skip
    if action == "deploy":
        _record(params, ctx, _state(params) / params.name, url, digest, revision)
    return {"url": url, "revision": revision, "model-digest": digest, "versions": "",
            "candidate-url": ""}  # fmt: skip


def _local(params: Params, action: str, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.deploy import local

    state = _state(params)
    digest = ""
    if action == "deploy":
        from tekton_mlops.storage.publish import check_writable_directory

        check_writable_directory(state)  # before the model is pulled and a server started
        with tempfile.TemporaryDirectory(prefix="deploy-model-") as stage:
            digest = _pull(params, Path(stage), ctx)
            slot = local.start(
                state, params.name, Path(stage), params.canary_traffic_percent > 0, params.port
            )
        _record(params, ctx, slot.folder, slot.url, digest, slot.folder.name)
    elif action == "promote":
        slot = local.promote(state, params.name)
    elif action == "rollback":
        slot = local.rollback(state, params.name)
    else:
        from tekton_mlops.deploy import local_routes

        stopped = [w for w in (local.CANARY, local.STABLE)
                   if local.stop(local.slot(state, params.name, w))]  # fmt: skip
        stopped += local_routes.stop(state, params.name)
        ctx.log.info("stopped %s server(s) of %s", ", ".join(stopped) or "no", params.name)
        return {"url": "", "revision": "", "model-digest": "", "versions": "", "candidate-url": ""}
    revision = slot.folder.name
    ctx.log.info("%s %s: %s serving at %s", action, params.name, revision, slot.url)
    return {"url": slot.url, "revision": revision, "model-digest": digest, "versions": "",
            "candidate-url": ""}  # fmt: skip


def _strategy(params: Params, action: str, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.steps import deploy_strategies

    release = deploy_strategies.local if params.target == "local" else deploy_strategies.kserve
    return release(params, action, ctx, _state(params), _pull, _record)


@contextmanager
def _registry(params: Params, action: str) -> Iterator[RegisteredModel | None]:
    """The registered model when tracking is on, checked before anything is deployed."""
    if not params.mlflow_tracking_uri or action == "stop":
        yield None
        return
    from tekton_mlops.tracking.lifecycle import open_registry

    name = params.mlflow_model_name or params.name
    with open_registry(params.mlflow_tracking_uri, name, create=False) as registered:
        yield registered


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    action = _action(params)
    deploy = _kserve if params.target == "kserve" else _local
    if params.strategy != "canary" and action != "stop":
        deploy = _strategy
    with _registry(params, action) as registered:
        results = deploy(params, action, ctx)
        version = ""
        if registered is not None and action not in ("retire", "route"):
            # A version deployed without all the traffic is the challenger, as a canary is.
            canary = params.canary_traffic_percent > 0 or (
                params.strategy != "canary" and results["revision"] != params.version
            )
            digest = str(results["model-digest"])
            version = registered.move_aliases(action, canary, digest, params.mlflow_model_version)
            ctx.log.info(
                "%s: version %s of %s in MLflow", action, version or "none", registered.name
            )
    return {**results, "action": action, "mlflow-model-version": version}
