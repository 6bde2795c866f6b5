"""S3 (and S3-compatible) downloads with boto3: concurrent ranged GETs, hashed in order.

``aws s3 cp`` gets its speed from many ranged GETs in flight. Here the parts
are fetched by a thread pool too, but consumed strictly in order by the caller's
thread, which writes them sequentially and feeds sha256 as they arrive: the
digest costs no second read of the file. hashlib and socket reads both release
the GIL, so hashing overlaps the network. The window of parts in flight is
bounded, which bounds memory to about ``2 * concurrency * part size``.

Credentials come from boto3's usual chain (env, shared files, IRSA, …),
never from a parameter. The endpoint comes from ``AWS_ENDPOINT_URL`` or the
``endpoint-url`` parameter.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.errors import SourceError
from tekton_mlops.storage.progress import Progress
from tekton_mlops.storage.sources import Fetched, safe_relative

_PART_ATTEMPTS = 3


@dataclass(frozen=True)
class S3Settings:
    """Client settings a Task exposes as params."""

    endpoint_url: str = ""
    region: str = ""
    addressing_style: str = "auto"
    request_checksum: str = "when_supported"
    max_concurrency: int = 8
    part_size: int = 16 << 20

    @classmethod
    def from_params(cls, params: Any) -> S3Settings:
        """From a step's parameters (endpoint-url, region, … part-size-mib)."""
        return cls(
            endpoint_url=params.endpoint_url,
            region=params.region,
            addressing_style=params.addressing_style,
            request_checksum=params.request_checksum,
            max_concurrency=params.max_concurrency,
            part_size=params.part_size_mib << 20,
        )


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    etag: str
    relative: str  # where it lands under the destination


def _read_exactly(body: Any, size: int) -> bytes | bytearray:
    """A response body read straight into one buffer: the socket fills it, nothing is joined.

    urllib3 assembles a body from chunks and joins them, a second copy of every byte; on a
    machine whose cores the S3 server shares, that copy is time. The raw HTTP response
    under botocore's stream can read into a buffer directly; when it is not there (another
    HTTP stack, a wrapped body), the body is read the ordinary way.
    """
    raw = getattr(getattr(body, "_raw_stream", None), "_fp", None)
    if raw is None or not hasattr(raw, "readinto") or type(body).__name__ != "StreamingBody":
        return body.read()  # type: ignore[no-any-return]
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        count = raw.readinto(view[filled:])
        if not count:
            break
        filled += count
    # The whole declared body was read, so the connection is at a clean boundary: reuse it.
    body._raw_stream.release_conn()
    return buffer if filled == size else buffer[:filled]


def parse_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise SourceError(f"{uri}: no bucket in the S3 URI")
    return bucket, key


def make_client(settings: S3Settings) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=settings.max_concurrency + 2,
        retries={"max_attempts": 4, "mode": "standard"},
        s3={"addressing_style": settings.addressing_style},
        # botocore >= 1.36 sends CRC checksums by default, which several
        # S3-compatible stores reject; `when_required` turns that off.
        request_checksum_calculation=settings.request_checksum,
        response_checksum_validation=settings.request_checksum,
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region or session.region_name or "us-east-1",
        config=config,
    )


def describe(exc: Exception, uri: str) -> SourceError:
    """One clear line for any boto failure."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return SourceError(
            f"{uri}: no AWS credentials found; mount a Secret with credentials/config files "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, EndpointConnectionError):
        return SourceError(f"{uri}: cannot reach the S3 endpoint ({exc})")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        message = error.get("Message", "") or exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", ""
        )
        if code in ("PreconditionFailed", "412"):
            return SourceError(f"{uri}: the object changed during the download; run again")
        return SourceError(f"{uri}: {code}: {message}")
    return SourceError(f"{uri}: {type(exc).__name__}: {exc}")


class S3Source:
    """One object (``s3://b/key``) or every object under a prefix (``s3://b/prefix/``)."""

    def __init__(self, uri: str, settings: S3Settings, log: logging.Logger) -> None:
        self.uri = uri
        self.bucket, self.key = parse_uri(uri)
        self.settings = settings
        self.log = log
        self.client = make_client(settings)

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def objects(self) -> list[RemoteObject]:
        try:
            if not self.is_prefix:
                head = self.client.head_object(Bucket=self.bucket, Key=self.key)
                name = safe_relative(self.key.rsplit("/", 1)[-1], self.uri)
                return [RemoteObject(self.key, head["ContentLength"], head["ETag"], name)]
            found = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.key
            )
            for page in pages:
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/"):
                        continue  # a "folder" marker, not data
                    relative = safe_relative(item["Key"][len(self.key) :], self.uri)
                    found.append(RemoteObject(item["Key"], item["Size"], item["ETag"], relative))
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore's errors have no common base here
            raise describe(exc, self.uri) from exc
        if not found:
            raise SourceError(f"{self.uri}: no objects under this prefix")
        return found

    def fetch(self, dest: Path) -> Fetched:
        objects = self.objects()
        total = sum(o.size for o in objects)
        progress = Progress(f"downloading {self.uri}", total, self.log)
        self.log.info("fetching %d object(s), %d bytes, from %s", len(objects), total, self.uri)
        fetched = Fetched(single=not self.is_prefix)
        try:
            self._download(objects, dest, progress, fetched)
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, self.uri) from exc
        progress.finish()
        return fetched

    def _parts(self, objects: list[RemoteObject]) -> Iterator[tuple[RemoteObject, int, int]]:
        size = self.settings.part_size
        for obj in objects:
            if obj.size <= size:
                yield obj, 0, obj.size  # one plain GET (also for empty objects)
                continue
            for start in range(0, obj.size, size):
                yield obj, start, min(start + size, obj.size)

    def _get(self, obj: RemoteObject, start: int, end: int) -> bytes | bytearray:
        from botocore.exceptions import BotoCoreError

        request: dict[str, Any] = {"Bucket": self.bucket, "Key": obj.key, "IfMatch": obj.etag}
        if end - start < obj.size:
            request["Range"] = f"bytes={start}-{end - 1}"
        for attempt in range(1, _PART_ATTEMPTS + 1):
            try:
                body = self.client.get_object(**request)["Body"]
                data = _read_exactly(body, end - start)
                if len(data) != end - start:
                    raise SourceError(
                        f"s3://{self.bucket}/{obj.key}: expected {end - start} bytes "
                        f"at offset {start}, got {len(data)}"
                    )
                return data
            except (BotoCoreError, OSError) as exc:
                # botocore retries requests, not a body cut off mid-stream.
                if attempt == _PART_ATTEMPTS:
                    raise
                self.log.debug("retrying part at %d of %s: %s", start, obj.key, exc)
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _download(
        self, objects: list[RemoteObject], dest: Path, progress: Progress, fetched: Fetched
    ) -> None:
        window = 2 * self.settings.max_concurrency
        parts = self._parts(objects)
        pending: deque[tuple[RemoteObject, Future[bytes | bytearray]]] = deque()
        pool = ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="s3-part")

        def submit_next() -> None:
            part = next(parts, None)
            if part is not None:
                pending.append((part[0], pool.submit(self._get, *part)))

        current: RemoteObject | None = None
        handle = None
        hasher = hashlib.sha256()
        try:
            for _ in range(window):
                submit_next()
            while pending:
                obj, future = pending.popleft()
                data = future.result()
                submit_next()
                if obj is not current:
                    if handle is not None and current is not None:
                        handle.close()
                        fetched.files[current.relative] = hasher.hexdigest()
                    current, hasher = obj, hashlib.sha256()
                    target = dest / obj.relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    handle = target.open("wb")
                assert handle is not None
                handle.write(data)
                hasher.update(data)
                progress.advance(len(data))
            if handle is not None and current is not None:
                handle.close()
                fetched.files[current.relative] = hasher.hexdigest()
        finally:
            if handle is not None and not handle.closed:
                handle.close()
            pool.shutdown(wait=True, cancel_futures=True)
