"""verify-artifact: a file or directory against its OpenSSF model signature; fails closed.

Only after everything verified does the step write its lineage record, beside the model:
``<model>/.mlops/lineage/verify-artifact.intoto.json`` (for a single file, in the file's
folder). ``.mlops`` is outside every signed digest, so the record changes no signature, and
it travels with the model to push-model and on to the registry. A model mounted read-only
is verified all the same, without a record (one log line says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import parse_digest, sha256_file
from tekton_mlops.lineage import Artifact
from tekton_mlops.results import ResultValue
from tekton_mlops.signing import (
    SignatureError,
    default_signature_path,
    find_pem,
    load_public_key,
    open_bundle,
    verify_model,
)
from tekton_mlops.steps.sign_artifact import attestation_path, lineage_records

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey


@dataclass(frozen=True)
class Params:
    path: str
    public_key: str
    signature: str
    ignore_unsigned_files: bool
    expected_digest: str


def verify_attestations(model: Path, key: EllipticCurvePublicKey) -> int:
    """Each lineage record that was attested must still be what its attestation signs."""
    count = 0
    for record_path, record in lineage_records(model).items():
        attestation = attestation_path(record_path)
        if not attestation.exists():
            continue
        if open_bundle(attestation, key) != record:
            raise SignatureError(f"{record_path}: differs from what {attestation.name} signs")
        count += 1
    return count


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    model = Path(params.path)
    signature = Path(params.signature) if params.signature else default_signature_path(model)
    key_file = find_pem(Path(params.public_key), "PUBLIC KEY")
    key = load_public_key(key_file)
    signed = verify_model(model, key, signature, params.ignore_unsigned_files)
    if params.expected_digest and parse_digest(params.expected_digest) != signed.root_hex:
        raise SignatureError(
            f"{model}: signed root {signed.root} is not the expected "
            f"sha256:{parse_digest(params.expected_digest)}"
        )
    attested = verify_attestations(model, key) if model.is_dir() else 0
    uri = model.resolve().as_uri()
    ctx.write_lineage_beside(
        model if model.is_dir() else model.parent,
        inputs=[
            Artifact("model", uri, signed.root_hex),
            Artifact("signature", signature.resolve().as_uri(), sha256_file(signature)),
            Artifact("public-key", key_file.resolve().as_uri(), sha256_file(key_file)),
        ],
        outputs=[Artifact("verified-model", uri, signed.root_hex)],
    )
    ctx.log.info(
        "verified %d file(s) of %s against %s: root %s; %d lineage attestation(s) verified",
        len(signed.resources),
        model,
        signature,
        signed.root,
        attested,
    )
    return {"verified": "true", "root-digest": signed.root}
