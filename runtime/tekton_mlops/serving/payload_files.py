"""Where payload records go: rotated JSONL files in a directory, optionally shipped to S3.

A file is written as ``<name>.jsonl.partial`` and renamed to ``<name>.jsonl`` once it
is closed (rotated by size or age, or at shutdown): a reader that takes ``*.jsonl``
never sees a file still growing, nor half a line. A write that fails part-way (a full
disk, a file size limit) is cut back to the last whole line before the error goes up,
so even the partial file holds whole lines only.

Names sort by time (``payloads-20260101T120000123456Z-<pid>-<n>.jsonl``); the process
id keeps the files of replicas that share a volume apart.

For ``s3://bucket/prefix``, the files are staged in a local temporary directory and
each closed file is uploaded as ``prefix/<name>.jsonl`` by a thread of its own, then
deleted; a failed upload stays staged and is tried again after the next rotation.

Example::

    files = RotatingFiles(Path("/var/log/payloads"), rotate_bytes=16 << 20, rotate_seconds=300)
    files.write([b'{"id": "1"}\\n'])   # WriteError when the directory cannot take it
    files.close()                       # the last file renamed into place
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PARTIAL = ".partial"
SUFFIX = ".jsonl"


class WriteError(Exception):
    """Writing failed (``cause``) after ``lines`` of the lines given were written whole."""

    def __init__(self, cause: OSError, lines: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.lines = lines


class _Partial(Exception):
    def __init__(self, cause: OSError, lines: int) -> None:
        self.cause = cause
        self.lines = lines


class RotatingFiles:
    """Append whole lines to the current file; rotate by size and age. Not thread-safe:
    one writer thread owns it."""

    def __init__(
        self,
        directory: Path,
        rotate_bytes: int,
        rotate_seconds: float = 0.0,
        on_closed: Callable[[Path], None] | None = None,
    ) -> None:
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.on_closed = on_closed
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0  # bytes of whole lines in the current file
        self._opened = 0.0
        self._sequence = 0

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"payloads-{stamp}-{os.getpid()}-{self._sequence:06d}{SUFFIX}"
        path = self.directory / (name + PARTIAL)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self._path, self._size, self._opened = path, 0, time.monotonic()

    def due(self) -> bool:
        """Whether the current file is older than ``rotate_seconds`` (and holds a line)."""
        return (
            self._fd is not None
            and self._size > 0
            and self.rotate_seconds > 0
            and time.monotonic() - self._opened >= self.rotate_seconds
        )

    def write(self, lines: Sequence[bytes]) -> None:
        """Append ``lines`` (each ending in a newline), rotating before one that would take
        the file past ``rotate_bytes``. A failure raises :class:`WriteError`, saying how
        many of the lines made it; the file keeps only whole lines."""
        done = 0
        pending: list[bytes] = []
        size = 0
        try:
            for line in lines:
                if self._fd is None:
                    self._open()
                if self._size + size + len(line) > self.rotate_bytes and self._size + size > 0:
                    done += self._append(pending)
                    pending, size = [], 0
                    self.rotate()
                    self._open()
                pending.append(line)
                size += len(line)
            if pending:
                done += self._append(pending)
        except _Partial as exc:
            raise WriteError(exc.cause, done + exc.lines) from None
        except OSError as exc:
            raise WriteError(exc, done) from None

    def _append(self, lines: list[bytes]) -> int:
        assert self._fd is not None
        view = memoryview(b"".join(lines))
        total = 0
        try:
            while view:
                count = os.write(self._fd, view)
                view = view[count:]
                total += count
        except OSError as exc:
            # A write that stopped part-way (a full disk takes what fits): keep the lines
            # that got in whole, cut the rest.
            whole = kept = 0
            for line in lines:
                if kept + len(line) > total:
                    break
                kept += len(line)
                whole += 1
            self._size += kept
            self._cut_back()
            raise _Partial(exc, whole) from None
        self._size += total
        return len(lines)

    def _cut_back(self) -> None:
        """After a failed write: back to the last whole line, or no file at all."""
        assert self._fd is not None
        assert self._path is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            with contextlib.suppress(OSError):
                os.close(self._fd)
                self._path.unlink()
            self._fd, self._path = None, None
            return
        if self._size == 0:  # nothing in it: no empty file left behind
            with contextlib.suppress(OSError):
                os.close(self._fd)
                self._path.unlink()
            self._fd, self._path = None, None

    def rotate(self) -> Path | None:
        """Close the current file and rename it into place; the final path (None when
        there was no file or it was empty and removed)."""
        if self._fd is None or self._path is None:
            return None
        fd, path, size = self._fd, self._path, self._size
        self._fd, self._path = None, None
        try:
            os.fsync(fd)  # the data is on disk before the name says it is complete
        finally:
            os.close(fd)
        if size == 0:
            path.unlink()
            return None
        final = path.with_name(path.name.removesuffix(PARTIAL))
        os.rename(path, final)
        if self.on_closed is not None:
            self.on_closed(final)
        return final

    def close(self) -> Path | None:
        return self.rotate()


class S3Shipper:
    """Uploads closed files under ``s3://bucket/prefix/`` from its own thread, then deletes
    them; what fails stays in the staging directory for the next try."""

    def __init__(self, uri: str, staging: Path, log: logging.Logger) -> None:
        from tekton_mlops.storage.s3 import parse_uri

        self.uri = uri.rstrip("/")
        bucket, prefix = parse_uri(uri)
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.staging = staging
        self.log = log
        self.uploaded = 0
        self._client: Any = None
        self._failing = False
        self._work: queue.Queue[bool] = queue.Queue()  # True: a file was closed; False: stop
        self._thread = threading.Thread(target=self._run, name="payload-upload", daemon=True)

    def start(self) -> S3Shipper:
        self._thread.start()
        return self

    def closed(self, path: Path) -> None:
        """``RotatingFiles.on_closed``: a file is ready to go."""
        self._work.put(True)

    def stop(self, timeout: float) -> int:
        """Upload what is staged (within ``timeout`` seconds); how many files are left."""
        self._work.put(False)
        self._thread.join(timeout)
        return len(self._pending())

    def _pending(self) -> list[Path]:
        return sorted(self.staging.glob(f"*{SUFFIX}"))

    def _run(self) -> None:
        while True:
            more = self._work.get()
            self._ship()
            if not more:
                return

    def _ship(self) -> None:
        for path in self._pending():
            key = f"{self.prefix}/{path.name}" if self.prefix else path.name
            try:
                if self._client is None:
                    from tekton_mlops.storage.s3 import S3Settings, make_client

                    self._client = make_client(S3Settings())
                self._client.upload_file(
                    str(path), self.bucket, key, ExtraArgs={"ContentType": "application/jsonl"}
                )
            except Exception as exc:  # noqa: BLE001 - boto's errors are many; serving goes on
                if not self._failing:
                    self._failing = True
                    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    self.log.warning(
                        "payload log: cannot upload to %s (%s); files stay in %s and are "
                        "tried again after the next rotation",
                        self.uri,
                        detail,
                        self.staging,
                    )
                return
            path.unlink()
            self.uploaded += 1
            if self._failing:
                self._failing = False
                self.log.info("payload log: uploading to %s again", self.uri)
