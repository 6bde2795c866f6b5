"""sign-artifact: an OpenSSF model signature over a file or directory, and signed lineage."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import METADATA_DIR, sha256_file
from tekton_mlops.errors import DestinationError, IntegrityError
from tekton_mlops.lineage import RECORD_SUFFIX, Artifact
from tekton_mlops.lineage import attestation_path as attestation_path  # verify-artifact's too
from tekton_mlops.results import ResultValue
from tekton_mlops.signing import (
    content_to_sign,
    default_signature_path,
    load_private_key,
    sign_statement,
    write_json_atomically,
    write_signature,
)


@dataclass(frozen=True)
class Params:
    path: str
    private_key: str
    signature: str
    attest_lineage: bool


def lineage_records(model: Path) -> dict[Path, dict[str, Any]]:
    """The lineage statements earlier steps left in the model, read before anything is signed:
    its own and those carried from its data (``upstream/``)."""
    folder = model / METADATA_DIR / "lineage"
    records: dict[Path, dict[str, Any]] = {}
    for path in sorted(folder.rglob(f"*{RECORD_SUFFIX}")) if folder.is_dir() else []:
        try:
            records[path] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"{path}: unreadable lineage record ({exc})") from None
    return records


def _check_signature_path(signature: Path) -> None:
    """The signature is one file: refuse a directory there before hashing or loading a key."""
    from tekton_mlops.storage.publish import check_writable_directory

    if signature.is_dir():
        raise DestinationError(f"{signature}: is a directory; the signature is written as a file")
    check_writable_directory(signature.parent)


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    model = Path(params.path)
    signature = Path(params.signature) if params.signature else default_signature_path(model)
    _check_signature_path(signature)
    attest = params.attest_lineage and model.is_dir()
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Reading and hashing (most of the time) overlaps loading the key and its library;
        # nothing is written before both have succeeded.
        hashing = pool.submit(content_to_sign, model, signature)
        key = load_private_key(Path(params.private_key))
        if attest:
            lineage_records(model)  # an unreadable record fails before anything is written
        signed = hashing.result()
    write_signature(signed, key, signature)
    ctx.log.info(
        "signed %d file(s) of %s: root %s -> %s",
        len(signed.resources),
        model,
        signed.root,
        signature,
    )
    if attest:
        ctx.write_lineage(
            model,
            inputs=[Artifact("model", model.resolve().as_uri(), signed.root_hex)],
            outputs=[Artifact("signature", signature.resolve().as_uri(), sha256_file(signature))],
        )
        records = lineage_records(model)  # with this step's own record now
        for record_path, record in records.items():
            write_json_atomically(attestation_path(record_path), sign_statement(record, key))
        ctx.log.info("attested %d lineage record(s) with the same key", len(records))
    return {
        "root-digest": signed.root,
        "signature": str(signature),
        "file-count": str(len(signed.resources)),
    }
