"""S3 (and S3-compatible) downloads with boto3: concurrent ranged GETs, hashed in order.

``aws s3 cp`` gets its speed from many ranged GETs in flight. Here the parts
are fetched by a thread pool too, but hashed strictly in order by the caller's
thread as they arrive: the digest costs no second read of the file. hashlib and
socket reads both release the GIL, so hashing overlaps the network.

A large object is received straight into a shared mapping of its (preallocated)
file: the socket read is the only copy, there is no ``write`` copying a buffer
into the page cache, and no buffer is allocated per part. On a machine whose
cores the S3 server shares, that copy and the page faults of fresh buffers were
most of the client's system time, and the writes sat on the hashing thread's
path. Small objects
(and files a mapping cannot back) are read into a buffer and written at their
offset by the thread that fetched them. The window of parts in flight is
bounded, which bounds buffers to about ``2 * concurrency * part size``.

Two keys of a prefix that land on one path (``p/x`` and ``p/x/.``, ``p//x``,
a "folder" ``p/x/``, or ``p/x`` beside ``p/x/y``) are refused before anything is
written: the later one would otherwise replace the earlier without a word.

Credentials come from boto3's usual chain (env, shared files, IRSA, …),
never from a parameter. The endpoint comes from ``AWS_ENDPOINT_URL`` or the
``endpoint-url`` parameter.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import mmap
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tekton_mlops.errors import DestinationError, SourceError
from tekton_mlops.storage.progress import Progress, human_bytes
from tekton_mlops.storage.sources import Fetched, safe_relative

_PART_ATTEMPTS = 3
#: Objects this large are received into a mapping of their file; smaller ones are written.
_MAP_FROM = 1 << 20


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


def _read_into(body: Any, into: memoryview) -> int:
    """Read a response body into ``into``; return how many bytes the body had.

    The socket fills ``into`` directly, nothing is joined: urllib3 assembles a body from
    chunks and joins them, a second copy of every byte, and on a machine whose cores the
    S3 server shares that copy is time. The raw HTTP response under botocore's stream can
    read into a buffer; when it is not there (another HTTP stack, a wrapped body), the
    body is read the ordinary way and copied.
    """
    raw = getattr(getattr(body, "_raw_stream", None), "_fp", None)
    if raw is None or not hasattr(raw, "readinto") or type(body).__name__ != "StreamingBody":
        data = body.read()
        into[: min(len(data), len(into))] = data[: len(into)]
        return len(data)
    filled = 0
    while filled < len(into):
        count = raw.readinto(into[filled:])
        if not count:
            break
        filled += count
    left = getattr(raw, "length", None) or 0
    if left:
        # A longer body than asked for (a server ignoring Range): the connection is mid-body,
        # so it must not go back to the pool; the caller sees the size mismatch.
        body.close()
        return filled + int(left)
    # The whole body was read, so the connection is at a clean boundary: reuse it.
    body._raw_stream.release_conn()
    return filled


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
            folders: dict[str, str] = {}  # relative path -> the "folder" marker key naming it
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.key
            )
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item["Key"][len(self.key) :]
                    if item["Key"].endswith("/"):
                        # A "folder" marker, not data; it still says its path is a folder.
                        # One that names no path here (the prefix's own, "p//") writes nothing.
                        with contextlib.suppress(SourceError):
                            folders.setdefault(safe_relative(rest, self.uri), item["Key"])
                        continue
                    relative = safe_relative(rest, self.uri)
                    found.append(RemoteObject(item["Key"], item["Size"], item["ETag"], relative))
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore's errors have no common base here
            raise describe(exc, self.uri) from exc
        if not found:
            raise SourceError(f"{self.uri}: no objects under this prefix")
        _refuse_shared_paths(self.uri, found, folders)
        return found

    def fetch(self, dest: Path) -> Fetched:
        objects = self.objects()
        total = sum(o.size for o in objects)
        progress = Progress(f"downloading {self.uri}", total, self.log)
        self.log.info("fetching %d object(s), %d bytes, from %s", len(objects), total, self.uri)
        fetched = Fetched(single=not self.is_prefix)
        try:
            self._download(objects, dest, progress, fetched)
        except (SourceError, DestinationError):
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

    def _get(self, obj: RemoteObject, target: _Target, start: int, end: int) -> bytearray | None:
        """Fetch one part into ``target``; return it when it is not already in the mapping."""
        from botocore.exceptions import BotoCoreError

        request: dict[str, Any] = {"Bucket": self.bucket, "Key": obj.key, "IfMatch": obj.etag}
        if end - start < obj.size:
            request["Range"] = f"bytes={start}-{end - 1}"
        for attempt in range(1, _PART_ATTEMPTS + 1):
            try:
                body = self.client.get_object(**request)["Body"]
                into = target.slot(start, end)
                buffer = None
                if into is None:
                    buffer = bytearray(end - start)
                    into = memoryview(buffer)
                with into:
                    count = _read_into(body, into)
                if count != end - start:
                    raise SourceError(
                        f"s3://{self.bucket}/{obj.key}: expected {end - start} bytes "
                        f"at offset {start}, got {count}"
                    )
                if buffer is not None:
                    target.write_at(buffer, start)
                return buffer
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
        pending: deque[tuple[RemoteObject, _Target, int, int, Future[bytearray | None]]]
        pending = deque()
        targets: list[_Target] = []  # open files, in the order their parts are consumed
        pool = ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="s3-part")

        def submit_next() -> None:
            part = next(parts, None)
            if part is None:
                return
            obj, start, end = part
            if start == 0:  # the object's first part: its file must exist before any write
                targets.append(_Target(dest / obj.relative, obj.size))
            target = targets[-1]
            pending.append(
                (obj, target, start, end, pool.submit(self._get, obj, target, *part[1:]))
            )

        try:
            for _ in range(window):
                submit_next()
            while pending:
                obj, target, start, end, future = pending.popleft()
                data = future.result()
                submit_next()
                # In order, on this thread: sha256 is one stream per object.
                target.hash(start, end, data)
                progress.advance(end - start)
                if end == obj.size:  # the last part: every earlier one was consumed already
                    fetched.files[obj.relative] = target.close()
                    targets.remove(target)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for target in targets:
                target.close()


class _Target:
    """One object's file, open from its first part's request to its last part's hashing.

    An object of ``_MAP_FROM`` bytes or more is preallocated and mapped: parts are
    received into the mapping (the page cache) and hashed from it. Preallocating first
    makes a full disk an error here rather than a SIGBUS when a page is first touched;
    where the file system cannot preallocate or map, the object takes the buffered path.
    """

    def __init__(self, path: Path, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: paths were checked to be distinct; never replace a file without a word.
        # 0o666 less the umask, as open("wb") gives: a workspace shared by group keeps working.
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        self.hasher = hashlib.sha256()
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None
        if size >= _MAP_FROM:
            self._open_map(size)

    def _open_map(self, size: int) -> None:
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                os.close(self.fd)
                raise DestinationError(
                    f"{self.path}: no space left for {human_bytes(size)} ({exc.strerror})"
                ) from None
            return  # no preallocation here (some network file systems): write instead
        try:
            self._map = mmap.mmap(self.fd, size)
        except OSError:
            return
        self._view = memoryview(self._map)

    def slot(self, start: int, end: int) -> memoryview | None:
        """Where a part is received, or None when it comes in a buffer of its own."""
        return None if self._view is None else self._view[start:end]

    def write_at(self, data: bytearray, offset: int) -> None:
        with memoryview(data) as view:
            done = 0
            while done < len(view):
                done += os.pwrite(self.fd, view[done:], offset + done)

    def hash(self, start: int, end: int, data: bytearray | None) -> None:
        if data is not None:
            self.hasher.update(data)
        elif self._view is not None and self._map is not None:
            self.hasher.update(self._view[start:end])
            # Hashed, the part needs no mapping: its bytes stay in the page cache, to be
            # written back and reclaimed like those of a write(). Unmapped, they do not look
            # like a working set to a pod's memory accounting, and what is mapped at once
            # stays within the window of parts in flight.
            self._map.madvise(mmap.MADV_DONTNEED, start, end - start)

    def close(self) -> str:
        """Unmap and close the file; return its sha256 hex."""
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._map is not None:
            # A part's view can outlive an interrupted download (a traceback holds it): the
            # mapping then goes when that view does, and the staged output is removed anyway.
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        return self.hasher.hexdigest()


def _refuse_shared_paths(uri: str, objects: list[RemoteObject], folders: dict[str, str]) -> None:
    """Refuse keys that would land on one local path, naming both, before anything is written.

    ``p/x`` and ``p/x/.`` or ``p//x`` are one file once the path is normalised; ``p/x``
    beside ``p/x/y`` (or beside a "folder" marker ``p/x/``) needs ``x`` to be a file and a
    folder at once. Written one after the other, the later would win without a word.
    """
    files: dict[str, str] = {}  # relative path -> key
    for obj in objects:
        if (other := files.get(obj.relative)) is not None:
            raise SourceError(
                f"{uri}: keys {other!r} and {obj.key!r} both map to {obj.relative!r}; "
                "nothing was written"
            )
        files[obj.relative] = obj.key
    needed = dict(folders)  # relative folder -> a key that needs it to be a folder
    for relative, key in files.items():
        for parent in PurePosixPath(relative).parents[:-1]:  # [-1] is "."
            needed.setdefault(parent.as_posix(), key)
    for relative, folder in folders.items():
        for parent in PurePosixPath(relative).parents[:-1]:
            needed.setdefault(parent.as_posix(), folder)
    for relative, key in files.items():
        if (other := needed.get(relative)) is not None:
            raise SourceError(
                f"{uri}: key {key!r} is a file at {relative!r} where key {other!r} needs a "
                "folder; nothing was written"
            )
