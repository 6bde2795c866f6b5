"""Decision records: a release check's verdict, signed, in the lineage of the model it judged.

check-slo, check-golden, check-mirror and detect-drift each decide whether a model goes on
(a Task result a Pipeline's ``when`` reads). Their lineage record carries that decision (the
step's results, as the byproduct ``decision``) besides the reports it wrote; with a
``signing-key`` it is signed as sign-artifact signs lineage (``<step>.sigstore.json``, a DSSE
envelope in a Sigstore bundle, beside the record), and with a ``model-uri`` it is attached
beside that stored model (``oci://``, ``s3://``, ``file://``), where ``tekton-mlops lineage
show`` finds and verifies it. Without a key the bare record is attached, shown unsigned.

The order, since the decision is what gates a release:

1. :func:`prepare`, before the check measures anything: the key is loaded and the model is
   looked up in its store. A key that cannot be used, a store that cannot be reached or a
   URI that holds no model fails the step there, with nothing written.
2. The check runs; the step writes its reports, then :func:`write` writes the record with
   the decision (and the bundle).
3. :func:`attach`, before any result is written and before a failing check fails the step:
   a store that refuses the record (read-only credentials, gone meanwhile) fails the step
   with one line naming it. The reports and the record stay in the output folder, no result
   says ``passed``, and running the check again attaches it (names are by content, so
   nothing is attached twice).

Example::

    recorder = prepare(params)                    # the step's params (model-uri, signing-key…)
    …                                             # the check, its reports
    path = write(recorder, output, ctx.step, ctx.params, ctx.started, inputs, outputs,
                 decision(results, output / "golden-report.json"))
    attach(recorder, path, ctx.log)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tekton_mlops.errors import DestinationError, MlopsError, SourceError
from tekton_mlops.lineage import Artifact, attestation_path, statement, write_statement
from tekton_mlops.storage.fetch import FetchOptions

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from tekton_mlops.contract import StepContext

#: The byproduct of a check's record that holds its decision.
DECISION = "decision"
#: Results that are not part of the decision: where this pod wrote the report (a subject).
_NOT_DECIDED = ("report",)


class DecisionParams(Protocol):
    """The params each deciding step takes for its record (names as in deploy-model)."""

    @property
    def model_uri(self) -> str: ...
    @property
    def signing_key(self) -> str: ...
    @property
    def endpoint_url(self) -> str: ...
    @property
    def addressing_style(self) -> str: ...
    @property
    def registry_auth(self) -> str: ...
    @property
    def insecure_registry(self) -> bool: ...


@dataclass(frozen=True)
class Recorder:
    """Where a decision goes: the key that signs it, the stored model it is attached to."""

    key: EllipticCurvePrivateKey | None
    model_uri: str  # "": the record stays in the output folder
    options: FetchOptions


def prepare(params: DecisionParams) -> Recorder:
    """Load the signing key and find the model in its store, before the check runs."""
    from tekton_mlops.storage.s3 import S3Settings

    key = None
    if params.signing_key:
        from tekton_mlops.signing import load_private_key

        key = load_private_key(Path(params.signing_key))
    settings = S3Settings(
        endpoint_url=params.endpoint_url, addressing_style=params.addressing_style
    )
    options = FetchOptions(settings, params.registry_auth, params.insecure_registry)
    if params.model_uri:
        _check_stored(params.model_uri, options)
    return Recorder(key, params.model_uri, options)


def _check_stored(model_uri: str, options: FetchOptions) -> None:
    """The model is there: a folder that holds something, objects under the S3 prefix, a
    manifest in the registry. Only looked at, never written: a check that cannot record its
    decision fails before it measures anything."""
    if model_uri.startswith("file://"):
        from tekton_mlops.storage.files import local_path

        folder = local_path(model_uri)
        if not folder.is_dir():
            raise SourceError(f"{model_uri}: no such model folder")
        if not any(folder.iterdir()):
            raise SourceError(f"{model_uri}: an empty folder, no stored model")
    elif model_uri.startswith("s3://"):
        _check_s3(model_uri, options)
    elif model_uri.startswith("oci://"):
        from tekton_mlops.lineage_store.store import registry_for
        from tekton_mlops.storage.oci import parse_reference

        reference = parse_reference(model_uri)
        found = registry_for(reference, options).find_manifest(
            reference.repository, reference.target
        )
        if found is None:
            raise SourceError(f"{model_uri}: no such model in registry {reference.host}")
    else:  # the schemas' pattern admits only the three; a caller from elsewhere may not
        raise SourceError(f"{model_uri}: not an oci://, s3:// or file:// model URI")


def _check_s3(model_uri: str, options: FetchOptions) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from tekton_mlops.storage.s3 import describe, make_client, parse_uri

    bucket, key = parse_uri(model_uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    try:
        listed = make_client(options.s3).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except (BotoCoreError, ClientError) as exc:
        raise describe(exc, model_uri) from None
    if not listed.get("KeyCount"):
        raise SourceError(f"{model_uri}: no stored model there (no object under the prefix)")


def decision(results: Mapping[str, Any], report: Path) -> dict[str, Any]:
    """The byproduct that carries a check's decision: its results (empty ones and the
    report's local path aside), named by the report they come from."""
    decided = {k: v for k, v in results.items() if k not in _NOT_DECIDED and v not in ("", None)}
    return {"name": DECISION, "uri": report.resolve().as_uri(), "annotations": decided}


def write(
    recorder: Recorder,
    folder: Path,
    step: str,
    params: Mapping[str, Any],
    started: datetime,
    inputs: Sequence[Artifact],
    outputs: Sequence[Artifact],
    decided: Mapping[str, Any],
) -> Path:
    """Write the step's record with its decision into ``folder`` (and sign it with the key);
    return what :func:`attach` attaches: the bundle when signed, else the record."""
    record = statement(step, params, inputs, outputs, started, datetime.now(UTC), [decided])
    path = write_statement(folder, step, record)
    bundle = attestation_path(path)
    if recorder.key is None:
        bundle.unlink(missing_ok=True)  # an earlier run's, about another record
        return path
    from tekton_mlops.signing import sign_statement, write_json_atomically

    write_json_atomically(bundle, sign_statement(record, recorder.key))
    return bundle


def attach(recorder: Recorder, attestation: Path, log: logging.Logger) -> list[str]:
    """Attach the record (or its bundle) beside the stored model; fail the step when the
    store refuses it."""
    if not recorder.model_uri:
        return []
    from tekton_mlops.lineage_store.publish import publish_record

    try:
        where = publish_record(recorder.model_uri, attestation, recorder.options)
    except (MlopsError, OSError, ValueError) as exc:
        raise DestinationError(
            f"decision not recorded beside {recorder.model_uri} ({exc}); the reports and the "
            f"record are in {attestation.parent}, no result was written"
        ) from None
    log.info("decision %s attached: %s", "signed" if recorder.key else "unsigned", ", ".join(where))
    return where


def settle(
    recorder: Recorder,
    output: Path,
    ctx: StepContext,
    inputs: Sequence[Artifact],
    reports: Sequence[str],
    results: Mapping[str, Any],
) -> list[str]:
    """The usual end of a check: its record (the reports in ``output`` out, the decision
    read from the first report and ``results``) written, signed and attached."""
    from tekton_mlops.digests import sha256_file

    outputs = [
        Artifact(n, (output / n).resolve().as_uri(), sha256_file(output / n)) for n in reports
    ]
    record = write(
        recorder, output, ctx.step, ctx.params, ctx.started, inputs, outputs,
        decision(results, output / reports[0]),
    )  # fmt: skip
    return attach(recorder, record, ctx.log)  # a verdict not on record decides nothing
