"""What a policy judges, verified: the model's signature and every lineage attestation.

The model is a local directory (a workspace, or a ``file://`` URI: verified where it is)
or a stored model (``oci://``, ``s3://``: pulled into a temporary folder, verified there,
and removed). Its signature is checked with :func:`tekton_mlops.signing.verify_model`,
and every attestation the lineage store finds beside it with the same public key. What
does not verify is collected, each named, rather than raised: the report lists every
problem at once, and no rule runs over evidence that did not verify.

JSON files of the model that a verified attestation names as its subject by digest (the
evaluation report evaluate-model wrote into the model) are read while the files are at
hand: they are covered by the model's signature and vouched for by the attestation.

Example::

    evidence = gather(Subject("oci://r.example/team/iris@sha256:…", "", "model.sig"),
                      load_public_key(Path("key.pub")), FetchOptions(), log)
    evidence.problems     # [] when everything verified
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.errors import SourceError
from tekton_mlops.lineage_store.attestations import Checked, Status

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from tekton_mlops.storage.fetch import FetchOptions

#: A subject file larger than this is not a report a rule needs.
MAX_DOCUMENT_BYTES = 1 << 20


@dataclass(frozen=True)
class Subject:
    """The model asked about: a URI (``oci://``, ``s3://``, ``file://``) or a local path."""

    model_uri: str
    model_path: str
    signature: str  # relative to the model

    @property
    def ref(self) -> str:
        return self.model_uri or self.model_path


@dataclass(frozen=True)
class ModelFacts:
    uri: str  # pinned by digest where the store has one
    root: str  # "sha256:<hex>" the signature covers; empty when it did not verify
    files: Mapping[str, str]  # path -> "sha256:<hex>", as signed
    signer: str  # the public key's hint (hex sha256 of its PEM), as bundles name it
    signature: str
    problem: str = ""  # why the signature did not verify

    @property
    def verified(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class Evidence:
    model: ModelFacts
    attestations: tuple[Checked, ...]
    documents: Mapping[str, Any] = field(default_factory=dict)  # "sha256:<hex>" -> JSON

    @property
    def problems(self) -> list[str]:
        """Everything that did not verify, each naming what it is about."""
        found = [self.model.problem] if self.model.problem else []
        found += [
            f"{c.attestation.name}: NOT VERIFIED ({c.reason})"
            for c in self.attestations
            if c.status is Status.FAILED
        ]
        if not self.attestations:
            found.append(f"{self.model.uri}: no lineage attestations found beside the model")
        return found


def gather(
    subject: Subject, key: EllipticCurvePublicKey, options: FetchOptions, log: logging.Logger
) -> Evidence:
    """Verify the model and its attestations; raise only when the model cannot be read."""
    local = _local(subject)
    if local is not None:
        return _evidence(subject, local, subject.ref, key, options)
    from tekton_mlops.storage.fetch import fetch

    with tempfile.TemporaryDirectory(prefix="verify-policy-") as stage:
        fetch(subject.model_uri, Path(stage), options, log)
        return _evidence(subject, Path(stage), subject.model_uri, key, options)


def _local(subject: Subject) -> Path | None:
    if subject.model_uri and not subject.model_uri.startswith("file://"):
        return None
    from tekton_mlops.storage.files import local_path

    path = local_path(subject.model_uri) if subject.model_uri else Path(subject.model_path)
    if not path.is_dir():
        what = "no such model directory" if not path.exists() else "not a model directory"
        raise SourceError(f"{subject.ref}: {what}")
    return path


def _evidence(
    subject: Subject, model: Path, shown: str, key: EllipticCurvePublicKey, options: FetchOptions
) -> Evidence:
    from tekton_mlops.lineage_store.attestations import check
    from tekton_mlops.lineage_store.store import model_attestations
    from tekton_mlops.signing import SignatureError, key_hint, verify_model

    signer = key_hint(key)
    try:
        signed = verify_model(model, key, model / subject.signature)
    except SignatureError as exc:
        # A pulled model sits in a temporary folder: name what the user named instead.
        problem = str(exc).replace(str(model), shown) if shown != str(model) else str(exc)
        facts = ModelFacts(shown, "", {}, signer, subject.signature, problem)
    else:
        files = {name: f"sha256:{digest}" for name, digest in signed.resources.items()}
        facts = ModelFacts(shown, signed.root, files, signer, subject.signature)
    found = model_attestations(subject.ref if subject.model_uri else str(model), options)
    checked = tuple(check(a, [key]) for a in found.attestations)
    if found.subject.startswith(("oci://", "s3://")):
        facts = ModelFacts(found.subject, facts.root, facts.files, facts.signer,
                           facts.signature, facts.problem)  # fmt: skip
    return Evidence(facts, checked, _documents(model, facts, checked))


def _documents(model: Path, facts: ModelFacts, checked: tuple[Checked, ...]) -> dict[str, Any]:
    """The model's JSON files that a verified attestation names as a subject, parsed."""
    if not facts.verified:
        return {}
    attested = {
        f"sha256:{s['digest']['sha256']}"
        for c in checked
        if c.status is Status.VERIFIED and c.statement is not None
        for s in c.statement.get("subject") or []
        if isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get("sha256")
    }
    documents: dict[str, Any] = {}
    for name, digest in facts.files.items():
        if digest not in attested or not name.endswith(".json"):
            continue
        try:
            if (model / name).stat().st_size > MAX_DOCUMENT_BYTES:
                continue
            data = (model / name).read_bytes()
        except OSError:
            continue  # gone since the signature was checked: nothing to read
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
            continue  # changed since the signature was checked: not the signed document
        try:
            documents[digest] = json.loads(data)
        except ValueError:
            continue  # signed bytes that are not JSON: nothing a rule can read
    return documents
