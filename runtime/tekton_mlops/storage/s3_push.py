"""Upload a model directory under an S3 prefix: idempotent, never overwriting another model.

Each object carries its sha256 as user metadata (``x-amz-meta-sha256``). An
object already there with the same digest is not uploaded again, so a re-run
after a failure finishes the job and a repeated push sends nothing. A prefix
that holds other content (another model, a changed file) is refused before any
upload: a pushed model is immutable. Only the runtime's metadata folder
(lineage records, outside every digest) may be replaced.

Example::

    pushed = push_directory("s3://models/iris/sha256-…", Path("model"), digests, settings, log)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.digests import METADATA_DIR
from tekton_mlops.errors import DestinationError, SourceError
from tekton_mlops.storage.s3 import S3Settings, describe, make_client, parse_uri

SHA256_METADATA = "sha256"


@dataclass(frozen=True)
class S3Pushed:
    uri: str  # s3://bucket/prefix/
    uploaded_objects: int
    uploaded_bytes: int
    total_bytes: int


def _existing(client: Any, bucket: str, prefix: str) -> dict[str, str]:
    """key -> sha256 metadata ("" when absent) of every object under the prefix."""
    found: dict[str, str] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            head = client.head_object(Bucket=bucket, Key=item["Key"])
            found[item["Key"]] = head.get("Metadata", {}).get(SHA256_METADATA, "")
    return found


def push_directory(
    uri: str,
    directory: Path,
    digests: Mapping[str, str],
    settings: S3Settings,
    log: logging.Logger,
) -> S3Pushed:
    """Upload the files named in ``digests`` (relative path -> sha256 hex) under ``uri``."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    target = f"s3://{bucket}/{prefix}"
    client = make_client(settings)
    keys = {f"{prefix}{rel}": rel for rel in digests}
    try:
        existing = _existing(client, bucket, prefix)
    except (BotoCoreError, ClientError) as exc:
        raise describe(exc, target) from None
    replaceable = f"{prefix}{METADATA_DIR}/"
    foreign = sorted(k for k in existing if k not in keys and not k.startswith(replaceable))
    changed = sorted(
        k
        for k, d in existing.items()
        if k in keys and d != digests[keys[k]] and not k.startswith(replaceable)
    )
    if foreign or changed:
        shown = ", ".join((foreign + changed)[:3])
        raise DestinationError(
            f"{target}: already holds other content ({shown}); "
            "a pushed model is immutable, push to a new prefix"
        )
    todo = sorted(k for k in keys if existing.get(k) != digests[keys[k]])
    transfer = TransferConfig(
        multipart_threshold=settings.part_size,
        multipart_chunksize=settings.part_size,
        max_concurrency=settings.max_concurrency,
    )

    def upload(key: str) -> None:
        rel = keys[key]
        client.upload_file(
            str(directory / rel),
            bucket,
            key,
            ExtraArgs={"Metadata": {SHA256_METADATA: digests[rel]}},
            Config=transfer,
        )
        log.info("pushed %s", rel)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(upload, todo))
    except (BotoCoreError, ClientError) as exc:
        raise describe(exc, target) from None
    except OSError as exc:
        raise SourceError(f"{target}: upload failed ({exc})") from None
    sizes = {key: (directory / rel).stat().st_size for key, rel in keys.items()}
    if present := len(keys) - len(todo):
        log.info("%d object(s) already present with the same sha256", present)
    return S3Pushed(
        target,
        uploaded_objects=len(todo),
        uploaded_bytes=sum(sizes[k] for k in todo),
        total_bytes=sum(sizes.values()),
    )
