"""One attestation as found in a store, and what checking it with public keys says.

A signed attestation is a Sigstore bundle v0.3 whose DSSE envelope carries a lineage
statement; an unsigned one is the bare statement. Checking never raises for what it
finds: a bundle that does not verify is reported as such, with the reason, so that one
bad attestation is named while the rest of the lineage is still shown.

Example::

    checked = check(Attestation.of("train-model.sigstore.json", data), [public_key])
    checked.status          # Status.VERIFIED
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from tekton_mlops.lineage import ATTESTATION_SUFFIX, PROVENANCE_TYPE, STATEMENT_TYPE
from tekton_mlops.signing import BUNDLE_MEDIA_TYPE, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

#: The media type of a bare in-toto statement (an unsigned record).
STATEMENT_MEDIA_TYPE = "application/vnd.in-toto+json"


class Status(Enum):
    VERIFIED = "verified"
    FAILED = "NOT VERIFIED"
    UNSIGNED = "unsigned"
    UNCHECKED = "signature not checked"  # no public key was given


@dataclass(frozen=True)
class Attestation:
    """Bytes found in a store; ``name`` says where (a path, a URI, a referrer)."""

    name: str
    media_type: str
    data: bytes
    problem: str = ""  # why it could not be read, when it could not

    @classmethod
    def of(cls, name: str, data: bytes) -> Attestation:
        """Named by its file: ``*.sigstore.json`` is a bundle, anything else a statement."""
        signed = name.endswith(ATTESTATION_SUFFIX)
        return cls(name, BUNDLE_MEDIA_TYPE if signed else STATEMENT_MEDIA_TYPE, data)

    @property
    def signed(self) -> bool:
        return self.media_type == BUNDLE_MEDIA_TYPE

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Checked:
    attestation: Attestation
    status: Status
    reason: str
    statement: dict[str, Any] | None  # None when nothing it says can be used

    @property
    def step(self) -> str:
        if self.statement is None:
            return ""
        build = self.statement["predicate"].get("buildDefinition", {})
        return str(build.get("externalParameters", {}).get("step", ""))


def check(attestation: Attestation, keys: Sequence[EllipticCurvePublicKey]) -> Checked:
    """Verify a bundle with whichever of ``keys`` it names; read a bare statement as it is.

    Without keys a bundle's statement is read unverified (``UNCHECKED``): enough to search
    a store, never to vouch for it.
    """
    if attestation.problem:
        return Checked(attestation, Status.FAILED, attestation.problem, None)
    if not attestation.signed:
        try:
            statement = _statement(json.loads(attestation.data), attestation.name)
        except ValueError as exc:
            return Checked(attestation, Status.FAILED, f"not JSON ({_reason(exc, '')})", None)
        except SignatureError as exc:
            return Checked(attestation, Status.FAILED, _reason(exc, attestation.name), None)
        return Checked(attestation, Status.UNSIGNED, "", statement)
    if not keys:
        try:
            return Checked(attestation, Status.UNCHECKED, "", _unverified(attestation))
        except SignatureError as exc:
            return Checked(attestation, Status.FAILED, _reason(exc, attestation.name), None)
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"malformed signature bundle ({type(exc).__name__}: {_reason(exc, '')})"
            return Checked(attestation, Status.FAILED, reason, None)
    from tekton_mlops.signing import open_bundle_bytes

    failures: list[SignatureError] = []
    for key in keys:
        try:
            opened = open_bundle_bytes(attestation.data, attestation.name, key)
            statement = _statement(opened, attestation.name)
        except SignatureError as exc:
            failures.append(exc)
            continue
        return Checked(attestation, Status.VERIFIED, "", statement)
    # The key a bundle names is only a hint; when none matched, say so, else say what failed.
    named = [f for f in failures if "signed with another key" not in str(f)]
    reason = _reason((named or failures)[0], attestation.name)
    return Checked(attestation, Status.FAILED, reason, None)


def _unverified(attestation: Attestation) -> dict[str, Any]:
    import base64

    envelope = json.loads(attestation.data)["dsseEnvelope"]
    return _statement(json.loads(base64.b64decode(envelope["payload"])), attestation.name)


def _statement(found: Any, name: str) -> dict[str, Any]:
    if (
        not isinstance(found, dict)
        or found.get("_type") != STATEMENT_TYPE
        or found.get("predicateType") != PROVENANCE_TYPE
        or not isinstance(found.get("predicate"), dict)
    ):
        raise SignatureError(f"{name}: not a lineage statement (in-toto v1, SLSA provenance v1)")
    return found


def _reason(exc: Exception, name: str) -> str:
    """The error without the attestation's name in front: the name is shown beside it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.removeprefix(f"{name}: ")
