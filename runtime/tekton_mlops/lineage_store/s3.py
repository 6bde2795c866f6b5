"""Attestations of a model under an S3 prefix (``s3://bucket/…/sha256-<root>/``).

Each attached attestation is one object, so it appears whole or not at all; its
``sha256`` user metadata is what push-model records on every object it uploads.

Example::

    attach("s3://models/iris/sha256-…/", [("deploy-model", record, False)], settings)
    read_model("s3://models/iris/sha256-…/", settings)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from tekton_mlops.digests import METADATA_DIR
from tekton_mlops.lineage_store.attestations import Attestation
from tekton_mlops.lineage_store.layout import (
    ATTACHED,
    MODEL_FOLDER,
    attached_name,
    attestation_files,
)
from tekton_mlops.storage.s3 import S3Settings, describe, make_client, parse_uri


def _prefix(uri: str) -> tuple[str, str]:
    bucket, key = parse_uri(uri)
    return bucket, key.rstrip("/") + "/" if key.strip("/") else ""


def _keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _read(client: Any, bucket: str, prefix: str, keys: Sequence[str]) -> list[Attestation]:
    relative = [k.removeprefix(prefix) for k in keys]
    return [
        Attestation.of(
            f"s3://{bucket}/{prefix}{rel}",
            client.get_object(Bucket=bucket, Key=f"{prefix}{rel}")["Body"].read(),
        )
        for rel in attestation_files(relative)
    ]


def read_model(uri: str, settings: S3Settings) -> list[Attestation]:
    """Every attestation under the model folder ``uri``."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _prefix(uri)
    client = make_client(settings)
    try:
        return _read(client, bucket, prefix, _keys(client, bucket, f"{prefix}{METADATA_DIR}/"))
    except (BotoCoreError, ClientError) as exc:
        raise describe(exc, uri) from None


def attach(uri: str, records: Sequence[tuple[str, bytes, bool]], settings: S3Settings) -> list[str]:
    """Put each (step, bytes, signed) under ``<uri>/.mlops/attestations/``; return the URIs."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _prefix(uri)
    client = make_client(settings)
    written: list[str] = []
    try:
        for step, data, signed in records:
            key = f"{prefix}{ATTACHED}{attached_name(step, data, signed)}"
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                Metadata={"sha256": hashlib.sha256(data).hexdigest()},
            )
            written.append(f"s3://{bucket}/{key}")
    except (BotoCoreError, ClientError) as exc:
        raise describe(exc, uri) from None
    return written


def models(store: str, settings: S3Settings) -> dict[str, list[Attestation]]:
    """Each model folder under ``store`` (at any depth) with its attestations, by URI.

    One listing of the store finds them all: only the attestation objects are read.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _prefix(store)
    client = make_client(settings)
    try:
        by_model: dict[str, list[str]] = {}
        for key in _keys(client, bucket, prefix):
            match = MODEL_FOLDER.search(key)
            if match and key[match.end() :].startswith(f"{METADATA_DIR}/"):
                folder = key[: match.end()]
                by_model.setdefault(folder.removeprefix("/"), []).append(key)
        return {
            f"s3://{bucket}/{folder}": _read(client, bucket, folder, keys)
            for folder, keys in sorted(by_model.items())
        }
    except (BotoCoreError, ClientError) as exc:
        raise describe(exc, store) from None
