"""push-model: a signed model directory to an OCI registry, S3 or a folder, content-addressed.

After a push the step writes its lineage record beside the model it pushed,
``<model>/.mlops/lineage/push-model.intoto.json``: the model's root digest in, the pushed
artifact (the OCI manifest digest, or the root digest naming the S3 or folder copy) out.
That record is never pushed itself: pushing the same model again must give the same
manifest, and a record of this push cannot be part of what it pushed. A model mounted
read-only is pushed all the same, without a record (one log line says so). Once the model
is stored, its signed lineage attestations and the push record are attached beside it
(OCI referrers; in S3 and folders, files under the model's folder): see lineage_store.

With ``mlflow-tracking-uri`` the push is registered in MLflow as a new version of a
registered model (source: the pushed URI), tagged with the model's digests so that
deploy-model finds it by the digest it verifies. The server and the registered model
are checked before anything is pushed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import METADATA_DIR, as_digest, hash_files, list_files, root_hex
from tekton_mlops.errors import DataError, ParameterError, Violation
from tekton_mlops.lineage import Artifact, lineage_path
from tekton_mlops.results import ResultValue
from tekton_mlops.signing import GIT_PATHS, claimed_digests
from tekton_mlops.storage.s3 import S3Settings

if TYPE_CHECKING:
    from tekton_mlops.tracking.lifecycle import RegisteredModel


@dataclass(frozen=True)
class Params:
    path: str
    destination: str
    signature: str
    require_signature: bool
    insecure_registry: bool
    registry_auth: str
    endpoint_url: str
    region: str
    addressing_style: str
    request_checksum: str
    max_concurrency: int
    part_size_mib: int
    mlflow_tracking_uri: str
    mlflow_model_name: str
    mlflow_run_id: str


def _check(params: Params, model: Path) -> None:
    """Everything that can be refused before a byte is sent."""
    if not model.is_dir():
        raise DataError(f"{model}: not a directory (push-model pushes a model directory)")
    if params.require_signature and not (model / params.signature).is_file():
        raise DataError(
            f"{model / params.signature}: no signature; sign the model first "
            "(sign-artifact) or set require-signature to false"
        )
    if params.destination.startswith("file://"):
        from tekton_mlops.storage.files import local_path
        from tekton_mlops.storage.publish import check_writable_directory

        check_writable_directory(local_path(params.destination))  # a model store is a folder
    if not params.destination.startswith("oci://") and params.insecure_registry:
        rule = "applies to oci:// destinations only"
        raise ParameterError("push-model", [Violation("insecure-registry", "true", rule)])
    if params.mlflow_tracking_uri and params.destination.startswith("file://"):
        # MLflow refuses a local path as a version's source (a server must not be made to
        # serve its own disk), so this would fail only after the push.
        rule = "registers oci:// and s3:// pushes only: MLflow refuses file:// sources"
        violation = Violation("mlflow-tracking-uri", params.mlflow_tracking_uri, rule)
        raise ParameterError("push-model", [violation])


def _push_oci(
    params: Params, model: Path, digests: dict[str, str], root: str, ctx: StepContext
) -> dict[str, ResultValue]:
    from tekton_mlops.storage.oci import Registry, docker_credentials, parse_reference
    from tekton_mlops.storage.oci_model import annotations_for, push_directory

    reference = parse_reference(params.destination)
    credentials = (
        docker_credentials(Path(params.registry_auth), reference.host)
        if params.registry_auth
        else None
    )
    registry = Registry(reference.host, params.insecure_registry or None, credentials)
    signature = params.signature if (model / params.signature).is_file() else ""
    pushed = push_directory(
        registry, reference, model, digests, annotations_for(model, root, signature), ctx.log
    )
    repository = f"{reference.host}/{reference.repository}"
    ctx.log.info(
        "pushed %s@%s: %d of %d bytes uploaded, %d blob(s) new",
        repository,
        pushed.digest,
        pushed.uploaded_bytes,
        pushed.total_bytes,
        pushed.uploaded_blobs,
    )
    url = f"{repository}:{reference.tag or 'latest'}"
    return {
        "model-uri": f"oci://{repository}@{pushed.digest}",
        "MODEL_IMAGE_URL": url,
        "MODEL_IMAGE_DIGEST": pushed.digest,
        "model_ARTIFACT_OUTPUTS": {"uri": url, "digest": pushed.digest, "isBuildArtifact": "true"},
        "uploaded-bytes": str(pushed.uploaded_bytes),
    }


def _push_s3(
    params: Params, model: Path, digests: dict[str, str], root: str, ctx: StepContext
) -> dict[str, ResultValue]:
    from tekton_mlops.storage.s3_push import push_directory

    settings = S3Settings.from_params(params)
    # Content-addressed: the root digest names the folder, so the same model always lands
    # in the same place and another one can never overwrite it.
    folder = f"{params.destination.rstrip('/')}/sha256-{root.removeprefix('sha256:')}"
    pushed = push_directory(folder, model, digests, settings, ctx.log)
    ctx.log.info(
        "pushed %s (root %s): %d of %d bytes uploaded, %d object(s) new",
        pushed.uri,
        root,
        pushed.uploaded_bytes,
        pushed.total_bytes,
        pushed.uploaded_objects,
    )
    return _stored(pushed.uri, root, pushed.uploaded_bytes)


def _stored(uri: str, root: str, uploaded_bytes: int) -> dict[str, ResultValue]:
    """Results of a push to a store addressed by root digest (S3, a folder)."""
    return {
        "model-uri": uri,
        # Chains reads these for OCI pushes only; empty, they say "no image".
        "MODEL_IMAGE_URL": "",
        "MODEL_IMAGE_DIGEST": "",
        "model_ARTIFACT_OUTPUTS": {"uri": uri, "digest": root, "isBuildArtifact": "true"},
        "uploaded-bytes": str(uploaded_bytes),
    }


def _digests(params: Params, model: Path) -> dict[str, str]:
    """sha256 of every file to push, the runtime's metadata (lineage) included.

    To a registry, the digests the signature claims are used as they are, unread: the
    registry recomputes every blob's digest and refuses a mismatch, so a file changed
    since it was signed fails the push, and signed bytes are read once, not twice.
    """
    # S3 and folders record our digest as metadata: only a registry checks every byte.
    to_registry = params.destination.startswith("oci://")
    claimed = claimed_digests(model / params.signature) if to_registry else {}
    own_record = lineage_path(Path(), "push-model").as_posix()
    listing = list_files(model, [*GIT_PATHS, own_record])
    todo = [rel for rel in listing if rel not in claimed]
    hashed = hash_files(model, todo)
    return {rel: claimed.get(rel) or hashed[rel] for rel in listing}


def _push_file(
    params: Params, model: Path, digests: dict[str, str], root: str, ctx: StepContext
) -> dict[str, ResultValue]:
    from tekton_mlops.storage.files import local_path
    from tekton_mlops.storage.folder_push import push_directory

    store = local_path(params.destination)
    pushed = push_directory(store / f"sha256-{root.removeprefix('sha256:')}", model, digests)
    ctx.log.info("pushed %s (root %s): %d of %d bytes copied", pushed.uri, root,
                 pushed.uploaded_bytes, pushed.total_bytes)  # fmt: skip
    return _stored(pushed.uri, root, pushed.uploaded_bytes)


def _version_tags(
    params: Params, model: Path, digests: dict[str, str], root: str
) -> dict[str, str]:
    """The digests a registered version carries: the signed root digest computed over the
    pushed bytes of the files the signature lists (what deploy-model verifies and reports),
    the pushed root digest and the signature file's sha256."""
    from tekton_mlops.tracking.registry import MODEL_DIGEST, PUSHED_DIGEST, SIGNATURE_DIGEST

    tags = {PUSHED_DIGEST: root}
    signed = claimed_digests(model / params.signature)
    if signed and all(rel in digests for rel in signed):
        tags[MODEL_DIGEST] = as_digest(root_hex({rel: digests[rel] for rel in signed}))
    if params.signature in digests:
        tags[SIGNATURE_DIGEST] = as_digest(digests[params.signature])
    return tags


@contextmanager
def _registry(params: Params) -> Iterator[RegisteredModel | None]:
    """The model registry when tracking is on, checked before anything is pushed."""
    if not params.mlflow_tracking_uri:
        yield None
        return
    from tekton_mlops.tracking.lifecycle import default_model_name, open_registry

    name = params.mlflow_model_name or default_model_name(params.destination)
    with open_registry(params.mlflow_tracking_uri, name, create=True) as registry:
        yield registry


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    model = Path(params.path)
    _check(params, model)
    with _registry(params) as registered:
        digests = _digests(params, model)
        results = _push_model(params, model, digests, ctx)
        version = ""
        if registered is not None:
            uri, root = str(results["model-uri"]), str(results["root-digest"])
            tags = _version_tags(params, model, digests, root)
            version = registered.register_push(uri, tags, params.mlflow_run_id)
            ctx.log.info("registered %s as version %s of %s", uri, version, registered.name)
    return {**results, "mlflow-model-version": version}


def _push_model(
    params: Params, model: Path, digests: dict[str, str], ctx: StepContext
) -> dict[str, ResultValue]:
    # The root digest covers the files outside .mlops, as fetch-data's does, so a fetch
    # of the push can pin it.
    content = {k: v for k, v in digests.items() if not k.startswith(f"{METADATA_DIR}/")}
    root = as_digest(root_hex(content))
    scheme = params.destination.split("://", 1)[0]
    push = {"s3": _push_s3, "file": _push_file}.get(scheme, _push_oci)
    results = push(params, model, digests, root, ctx)
    chains = results["model_ARTIFACT_OUTPUTS"]
    assert isinstance(chains, dict)
    pushed_uri = str(results["model-uri"])
    record = ctx.write_lineage_beside(
        model,
        inputs=[Artifact("model", model.resolve().as_uri(), root.removeprefix("sha256:"))],
        outputs=[Artifact("pushed-model", pushed_uri, chains["digest"].removeprefix("sha256:"))],
    )
    _attach_lineage(params, model, digests, pushed_uri, record, ctx)
    return {**results, "root-digest": root}


def _attach_lineage(
    params: Params,
    model: Path,
    digests: dict[str, str],
    pushed_uri: str,
    record: Path | None,
    ctx: StepContext,
) -> None:
    """The model's lineage beside it in the store, once the model itself is complete there
    (the model's manifest, or its last object, first: an attestation never refers to a
    model that is not there). A failure leaves the model pushed and says to push again,
    which attaches the rest and nothing twice."""
    from tekton_mlops.errors import DestinationError, MlopsError
    from tekton_mlops.lineage_store.publish import publish_push
    from tekton_mlops.storage.fetch import FetchOptions

    options = FetchOptions(S3Settings.from_params(params), params.registry_auth,
                           params.insecure_registry)  # fmt: skip
    try:
        where = publish_push(model, digests, pushed_uri, record, options)
    except (MlopsError, OSError) as exc:
        raise DestinationError(
            f"pushed {pushed_uri}, but attaching its lineage failed ({exc}); "
            "push again to complete it"
        ) from None
    if where:
        ctx.log.info("lineage attached: %s", ", ".join(where))
