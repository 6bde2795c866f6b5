"""fetch-data: a dataset from S3, HTTP(S) or a file URI, verified and published atomically."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import build_manifest, parse_digest, write_manifest
from tekton_mlops.errors import IntegrityError, ParameterError, Violation
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.storage import archive
from tekton_mlops.storage.fetch import FetchOptions, fetch
from tekton_mlops.storage.publish import check_destination, staged_directory
from tekton_mlops.storage.s3 import S3Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey


@dataclass(frozen=True)
class Params:
    source: str
    output: str
    sha256: str
    extract: bool
    overwrite: bool
    endpoint_url: str
    region: str
    addressing_style: str
    request_checksum: str
    max_concurrency: int
    part_size_mib: int
    public_key: str
    signature: str
    registry_auth: str
    insecure_registry: bool


def _check_combination(params: Params) -> None:
    """Rules that span parameters, checked before anything is fetched."""
    if params.extract:
        is_tree = params.source.endswith("/") or (
            params.source.startswith("file://") and Path(params.source[7:]).is_dir()
        )
        if is_tree or not archive.is_archive(params.source):
            rule = "the source must be a single .tar, .tgz, .tar.gz, .tar.bz2, .tar.xz or .zip"
            raise ParameterError("fetch-data", [Violation("extract", "true", rule)])


def _options(params: Params) -> FetchOptions:
    return FetchOptions(
        S3Settings.from_params(params), params.registry_auth, params.insecure_registry
    )


def _verify_signature(
    params: Params, key: EllipticCurvePublicKey, stage: Path, ctx: StepContext
) -> None:
    """Check the content against its signature while it is still staged, unpublished."""
    from tekton_mlops.signing import verify_model

    signed = verify_model(stage, key, stage / params.signature)
    ctx.log.info("signature verified: %d file(s), root %s", len(signed.resources), signed.root)


def _public_key(params: Params) -> EllipticCurvePublicKey | None:
    """The verification key, loaded before anything is fetched: a bad key costs no download."""
    if not params.public_key:
        return None
    from tekton_mlops.signing import load_public_key

    return load_public_key(Path(params.public_key))


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    _check_combination(params)
    output = Path(params.output)
    check_destination(output, params.overwrite)
    expected = parse_digest(params.sha256) if params.sha256 else ""
    key = _public_key(params)

    with staged_directory(output, overwrite=params.overwrite) as stage:
        fetched = fetch(params.source, stage, _options(params), ctx.log)
        fetched_digest = ""
        if fetched.single:
            fetched_digest = next(iter(fetched.files.values()))
            if expected and fetched_digest != expected:
                raise IntegrityError(
                    f"{params.source}: sha256 {fetched_digest} does not match the expected "
                    f"{expected}; nothing was written"
                )
        known = fetched.files
        if params.extract:
            archive_path = stage / next(iter(fetched.files))
            archive.extract(archive_path, stage)
            archive_path.unlink()
            known = {}
            ctx.log.info("extracted %s", archive_path.name)
        if key is not None:
            _verify_signature(params, key, stage, ctx)
        manifest = build_manifest(stage, known=known)
        if expected and not fetched.single and manifest.root_hex != expected:
            raise IntegrityError(
                f"{params.source}: root digest {manifest.root_hex} does not match the expected "
                f"{expected}; nothing was written"
            )
        write_manifest(
            stage,
            manifest,
            source=params.source,
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        source_digest = fetched_digest or manifest.root_hex
        ctx.write_lineage(
            stage,
            inputs=[Artifact("source", params.source, source_digest)],
            outputs=[Artifact("dataset", output.resolve().as_uri(), manifest.root_hex)],
        )

    ctx.log.info(
        "fetched %d file(s), %d bytes, root %s -> %s",
        len(manifest.files),
        manifest.total_bytes,
        manifest.root,
        output,
    )
    return {
        "dataset-digest": manifest.root,
        "file-count": str(len(manifest.files)),
        "total-bytes": str(manifest.total_bytes),
        "dataset_ARTIFACT_OUTPUTS": {
            "uri": params.source,
            "digest": manifest.root,
            "isBuildArtifact": "false",
        },
    }
