"""OpenSSF model signing with an EC key: sign and verify files and directories.

The signature is the format of the ``model-signing`` package (1.x): a Sigstore
bundle v0.3 whose DSSE envelope carries an in-toto statement with the predicate
``https://model_signing/signature/v1.0``, "files" serialization with sha256, and
the key's hint (hex sha256 of its PEM SubjectPublicKeyInfo). ``model_signing
verify key`` accepts what :func:`sign_model` writes and :func:`verify_model`
accepts what ``model_signing sign key`` writes; the tests hold both directions.

It is written over ``cryptography`` rather than through the package because the
package imports Sigstore's whole client (0.4 s) and hashes in 1 MiB Python
chunks; signing a model is then one hashlib pass over its bytes plus one ECDSA
signature.

Example::

    signed = sign_model(Path("model"), Path("key.pem"), Path("model/model.sig"))
    signed.root                      # 'sha256:…', the statement's subject digest
    verify_model(Path("model"), load_public_key(Path("key.pub")), Path("model/model.sig"))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tekton_mlops.digests import METADATA_DIR, hash_files, list_files, root_hex, sha256_file
from tekton_mlops.errors import IntegrityError, MlopsError

if TYPE_CHECKING:  # cryptography loads when a key does, so hashing can start before it
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: Ignored by model_signing unless told otherwise; recorded so its verifier agrees.
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def _ecdsa(curve: str) -> ec.ECDSA:
    """ECDSA with the hash model_signing pairs with the curve (SHA-256 for P-256)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    digest: hashes.HashAlgorithm = {
        "secp256r1": hashes.SHA256(),
        "secp384r1": hashes.SHA384(),
        "secp521r1": hashes.SHA512(),
    }[curve]
    return ec.ECDSA(digest)


class SignatureError(MlopsError):
    """A signature is missing, malformed, made with another key, or does not match the content."""


class SigningKeyError(MlopsError):
    """A signing or verification key cannot be used."""


@dataclass(frozen=True)
class SignedContent:
    """What a signature covers: a name and the sha256 of each file."""

    name: str
    resources: Mapping[str, str]  # identifier (POSIX path, "." for a single file) -> hex
    ignore_paths: tuple[str, ...] = ()

    @property
    def root_hex(self) -> str:
        return root_hex(self.resources)

    @property
    def root(self) -> str:
        return f"sha256:{self.root_hex}"

    def statement(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.name, "digest": {"sha256": self.root_hex}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "resources": [
                    {"name": name, "algorithm": "sha256", "digest": self.resources[name]}
                    for name in sorted(self.resources)
                ],
                "serialization": {
                    "method": "files",
                    "hash_type": "sha256",
                    "allow_symlinks": False,
                    "ignore_paths": list(self.ignore_paths),
                },
            },
        }


# Keys ---------------------------------------------------------------------------------------


def _check_curve(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey, path: Path) -> None:
    if key.curve.name not in _CURVES:
        raise SigningKeyError(f"{path}: EC curve {key.curve.name} is not supported (use P-256)")


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A PEM EC private key (P-256, P-384 or P-521), unencrypted; a file or a Secret's folder."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = find_pem(path, "PRIVATE KEY")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: no such private key file") from None
    except TypeError:
        raise SigningKeyError(
            f"{path}: the private key is encrypted; give an unencrypted PEM"
        ) from None
    except (ValueError, OSError) as exc:
        raise SigningKeyError(f"{path}: not a PEM private key ({_first_line(exc)})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningKeyError(f"{path}: not an EC key (model signing uses EC P-256 keys)")
    _check_curve(key, path)
    # A step loads its key while the files hash: what signing will import is imported now,
    # off the time it waits once the last file is hashed (about 5 ms of a 0.4 s signing).
    _ecdsa(key.curve.name)
    from tekton_mlops.storage import publish  # noqa: F401 - write_json_atomically's

    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """A PEM EC public key (SubjectPublicKeyInfo); a file or a folder holding one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = find_pem(path, "PUBLIC KEY")
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: no such public key file") from None
    except (ValueError, OSError) as exc:
        raise SigningKeyError(f"{path}: not a PEM public key ({_first_line(exc)})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningKeyError(f"{path}: not an EC public key")
    _check_curve(key, path)
    return key


def find_pem(path: Path, kind: str) -> Path:
    """``path`` itself, or the one PEM file holding a ``kind`` ("PRIVATE KEY", "PUBLIC KEY")
    in a directory such as a mounted Secret (whose ``..data`` entries are skipped)."""
    if not path.is_dir():
        return path
    found = [
        child
        for child in sorted(path.iterdir())
        if not child.name.startswith("..") and child.is_file() and _holds(child, kind)
    ]
    if len(found) != 1:
        names = ", ".join(c.name for c in found) or "none"
        raise SigningKeyError(f"{path}: expected one PEM {kind.lower()} file, found {names}")
    return found[0]


def _holds(path: Path, kind: str) -> bool:
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    first = head.lstrip().split(b"\n")[0]
    return first.startswith(b"-----BEGIN") and kind.encode() in first


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """model_signing's key identifier: hex sha256 of the PEM SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# DSSE bundles -------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature is over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign_statement(statement: Mapping[str, Any], key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """Wrap an in-toto statement in a DSSE envelope inside a Sigstore bundle v0.3."""
    payload = json.dumps(statement, indent=2).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, payload), _ecdsa(key.curve.name))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key_hint(key.public_key())},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }


def open_bundle(path: Path, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """Check a bundle's signature with ``key``; return the statement it signs.

    Raises:
        SignatureError: the file is missing or malformed, or another key signed it.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{path}: no signature file") from None
    except OSError as exc:
        raise SignatureError(f"{path}: unreadable signature ({_first_line(exc)})") from None
    return open_bundle_bytes(data, str(path), key)


def open_bundle_bytes(data: bytes, path: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """:func:`open_bundle` for a bundle read from elsewhere (a registry, S3); ``path`` names
    it in errors."""
    try:
        bundle = json.loads(data)
    except ValueError as exc:
        raise SignatureError(
            f"{path}: malformed signature, not JSON ({_first_line(exc)})"
        ) from None
    try:
        if bundle["mediaType"] != BUNDLE_MEDIA_TYPE:
            raise SignatureError(f"{path}: not a Sigstore bundle v0.3 ({bundle['mediaType']!r})")
        envelope = bundle["dsseEnvelope"]
        hint = bundle["verificationMaterial"]["publicKey"]["hint"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
        signature = base64.b64decode(signatures[0]["sig"], validate=True)
        payload_type = envelope["payloadType"]
    except (KeyError, IndexError, TypeError, binascii.Error) as exc:
        raise SignatureError(
            f"{path}: malformed signature bundle ({type(exc).__name__}: {exc})"
        ) from None
    if len(signatures) != 1:
        raise SignatureError(f"{path}: expected one signature, found {len(signatures)}")
    if payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"{path}: payload type {payload_type!r} is not {PAYLOAD_TYPE}")
    if hint != key_hint(key):
        raise SignatureError(f"{path}: signed with another key (key hint {str(hint)[:16]}…)")
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, pae(payload_type, payload), _ecdsa(key.curve.name))
    except InvalidSignature:
        raise SignatureError(
            f"{path}: the signature does not verify with this public key"
        ) from None
    try:
        statement = json.loads(payload)
    except ValueError:
        raise SignatureError(f"{path}: the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise SignatureError(f"{path}: the signed payload is not an in-toto v1 statement")
    return statement


# Models -------------------------------------------------------------------------------------


def hash_content(model: Path, ignore: Iterable[str] = ()) -> SignedContent:
    """sha256 of every file under ``model`` (or of the file itself) outside ``ignore``.

    Files hash in parallel: hashlib releases the GIL, so a model of many files
    uses every core while a single large file runs at one core's hashing speed.
    """
    if model.is_symlink():
        raise IntegrityError(f"{model}: symbolic links are not allowed in an artifact")
    if model.is_file():
        return SignedContent(model.name, {".": sha256_file(model)})
    if not model.is_dir():
        raise IntegrityError(f"{model}: no such file or directory")
    ignore_set = frozenset(ignore)
    resources = hash_files(model, list_files(model, ignore_set))
    return SignedContent(model.name, resources, tuple(sorted(ignore_set)))


def default_ignores(model: Path, signature: Path) -> list[str]:
    """What a model signature leaves out: git files, the runtime's metadata, the signature."""
    ignore = [*GIT_PATHS, METADATA_DIR]
    inside = _inside(model, signature)
    if inside is not None:
        ignore.append(inside)
    return ignore


def _inside(model: Path, path: Path) -> str | None:
    try:
        return path.resolve().relative_to(model.resolve()).as_posix()
    except ValueError:
        return None


def default_signature_path(model: Path) -> Path:
    """``model.sig`` in a model directory (model_signing's default), else ``<file>.sig``."""
    return model / "model.sig" if model.is_dir() else model.with_name(model.name + ".sig")


def content_to_sign(model: Path, signature: Path) -> SignedContent:
    """Hash what a signature of ``model`` covers (reads only; needs no key)."""
    ignore = default_ignores(model, signature) if model.is_dir() else []
    content = hash_content(model, ignore)
    if not content.resources:
        raise IntegrityError(f"{model}: nothing to sign (no files outside {', '.join(ignore)})")
    return content


def write_signature(
    content: SignedContent, key: ec.EllipticCurvePrivateKey, signature: Path
) -> None:
    write_json_atomically(signature, sign_statement(content.statement(), key))


def sign_model(model: Path, key: ec.EllipticCurvePrivateKey, signature: Path) -> SignedContent:
    """Sign ``model`` (file or directory) into ``signature``; return what was signed."""
    content = content_to_sign(model, signature)
    write_signature(content, key, signature)
    return content


def verify_model(
    model: Path,
    key: ec.EllipticCurvePublicKey,
    signature: Path,
    ignore_unsigned: bool = False,
) -> SignedContent:
    """Verify ``model`` against ``signature`` with ``key``; fail closed on any difference.

    Raises:
        SignatureError: naming what failed: the bundle, the key, the statement,
            or the files (changed, missing, unsigned).
    """
    statement = open_bundle(signature, key)
    signed = _signed_content(signature, statement)
    if not model.exists() and not model.is_symlink():
        raise SignatureError(f"{model}: no such file or directory to verify")
    if model.is_dir():
        ignore = {*signed.ignore_paths, *GIT_PATHS}
        if (inside := _inside(model, signature)) is not None:
            ignore.add(inside)
        if ignore_unsigned:
            files = [f for f in signed.resources if (model / f).is_file()]
            actual = _hash_listed(model, files)
        else:
            actual = hash_content(model, ignore)
    else:
        actual = hash_content(model)
    _compare(model, signed, actual)
    return signed


def _hash_listed(model: Path, files: list[str]) -> SignedContent:
    return SignedContent(model.name, {f: sha256_file(model / f) for f in files})


def claimed_digests(signature: Path) -> dict[str, str]:
    """The per-file digests a signature claims, read without checking it (no key at hand).

    Only a hint: whoever uses them must have the bytes checked against them anyway, as a
    registry does with every blob it receives. Empty when there is no readable signature.
    """
    try:
        bundle = json.loads(signature.read_bytes())
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        return dict(_signed_content(signature, statement).resources)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error, SignatureError):
        return {}


def _signed_content(path: Path, statement: Mapping[str, Any]) -> SignedContent:
    """Read the model-signing predicate; check its root digest against the subject."""
    try:
        if statement["predicateType"] != PREDICATE_TYPE:
            raise SignatureError(
                f"{path}: predicate {statement['predicateType']!r} is not a model signature"
            )
        (subject,) = statement["subject"]
        predicate = statement["predicate"]
        serialization_ = predicate["serialization"]
        resources = {r["name"]: r["digest"] for r in predicate["resources"]}
        algorithms = {r["algorithm"] for r in predicate["resources"]}
        ignore = tuple(str(p) for p in serialization_.get("ignore_paths", []))
        method, hash_type = serialization_["method"], serialization_["hash_type"]
        subject_digest, name = subject["digest"]["sha256"], subject["name"]
    except (KeyError, TypeError, ValueError) as exc:
        raise SignatureError(f"{path}: malformed model signature statement ({exc!r})") from None
    if method != "files" or hash_type != "sha256" or algorithms - {"sha256"}:
        raise SignatureError(
            f"{path}: serialization {method}/{hash_type} is not supported (files/sha256 is)"
        )
    content = SignedContent(str(name), resources, ignore)
    if content.root_hex != subject_digest:
        raise SignatureError(f"{path}: the statement's files do not hash to its subject digest")
    return content


def _compare(model: Path, signed: SignedContent, actual: SignedContent) -> None:
    problems: list[str] = []
    if extra := sorted(set(actual.resources) - set(signed.resources)):
        problems.append("unsigned file(s): " + ", ".join(extra[:5]))
    if missing := sorted(set(signed.resources) - set(actual.resources)):
        problems.append("missing file(s): " + ", ".join(missing[:5]))
    changed = sorted(
        f
        for f in set(signed.resources) & set(actual.resources)
        if signed.resources[f] != actual.resources[f]
    )
    if changed:
        problems.append("changed file(s): " + ", ".join(changed[:5]))
    if problems:
        raise SignatureError(f"{model}: does not match its signature: " + "; ".join(problems))


def write_json_atomically(path: Path, document: Mapping[str, Any]) -> None:
    from tekton_mlops.storage.publish import atomic_write_text

    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
