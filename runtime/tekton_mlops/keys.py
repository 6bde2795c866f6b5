"""``tekton-mlops keys DIR``: a model signing key pair laid out as the catalog's Secrets.

The Pipeline signs with the Secret ``model-signing-key`` and verifies with
``model-verification-key``; ``tekton-mlops run --secrets-dir DIR`` reads Secrets as
``DIR/<name>/<key>``. This writes exactly that: an EC P-256 private key (PKCS#8 PEM,
readable by the owner only) and its public key, as ``openssl ecparam -name prime256v1
-genkey`` and ``openssl ec -pubout`` would. Existing keys are never overwritten.

On a cluster, the same files become Secrets::

    kubectl create secret generic model-signing-key --from-file=DIR/model-signing-key/private.pem
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

from tekton_mlops.errors import MlopsError

SIGNING_SECRET = "model-signing-key"
VERIFICATION_SECRET = "model-verification-key"


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path


def write_key_pair(folder: Path) -> KeyFiles:
    """Write a new key pair under ``folder``; refuse if either Secret folder holds a key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = folder / SIGNING_SECRET / "private.pem"
    public = folder / VERIFICATION_SECRET / "public.pem"
    for path in (private, public):
        if path.exists():
            raise MlopsError(f"{path} exists; keys are never overwritten (remove it to replace)")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private.parent.mkdir(parents=True, exist_ok=True)
    public.parent.mkdir(parents=True, exist_ok=True)
    # The private key is created owner-only: it never exists with wider permissions.
    descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public.write_bytes(public_pem)
    return KeyFiles(private, public)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def keys(folder: Path) -> None:
    """Make a model signing key pair as the Secrets a run reads.

    FOLDER gets model-signing-key/private.pem and model-verification-key/public.pem,
    ready for `tekton-mlops run --secrets-dir FOLDER`. Existing keys are kept.
    """
    try:
        written = write_key_pair(folder)
    except MlopsError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"private key  {written.private}")
    click.echo(f"public key   {written.public}")
