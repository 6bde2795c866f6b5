"""check-mirror's second source: the payload logs KServe's loggers post to the log sink.

On KServe nothing records the mirror's answers (Istio drops them), but both
InferenceServices' loggers post every request and 200 response to ``tekton-mlops
log-sink``, which writes them under a directory or an S3 prefix (``payload-logs``). The
candidate's events are paired with the live version's by their x-request-id
(serving/mirror_pairs.py) and judged as the router's records are.

Which events count: those of the candidate InferenceService (``candidate-service``, by
default ``<name>-<version>``) and of the live one (``live-service``, by default the one
other service whose requests share the candidate's x-request-ids), logged since the
candidate's deploy began when the deployments folder holds its record
(``<state-dir>/<name>/<version>/.mlops/lineage/deploy-model.intoto.json``, as deploy-model's
kserve target writes it): an earlier candidate of the same name does not count.

Closed files (``*.jsonl``) never change, so each is read once, however often the step
looks for more while it waits. The lineage names the logs by the root digest of the files
read (OpenSSF model signing's ``files`` serialization, as a dataset's).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from tekton_mlops.digests import METADATA_DIR, root_hex
from tekton_mlops.errors import DataError, ParameterError, Violation
from tekton_mlops.serving.mirror_pairs import Event, Pairing, event_of, live_services, pair
from tekton_mlops.steps.mirror_reading import STEP, Reading, candidate_service
from tekton_mlops.storage.s3 import S3Settings


class Params(Protocol):
    """The check-mirror params the payload-log reader reads."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def candidate_service(self) -> str: ...
    @property
    def live_service(self) -> str: ...
    @property
    def payload_logs(self) -> str: ...
    @property
    def state_dir(self) -> str: ...
    @property
    def endpoint_url(self) -> str: ...
    @property
    def addressing_style(self) -> str: ...


SUFFIX = ".jsonl"


@dataclass(frozen=True)
class LogsSource:
    """Where the logs are and whose events count."""

    uri: str  # a directory or s3://bucket/prefix
    candidate: str
    live: str  # "": the one service the candidate's requests pair with
    since: float  # epoch seconds; events before it are left out
    settings: S3Settings

    @property
    def display(self) -> str:
        return self.uri if self.uri.startswith("s3://") else str(Path(self.uri).resolve())


def deploy_started(state: Path, name: str, version: str) -> float:
    """When deploy-model began deploying ``version`` (its kserve record), epoch seconds."""
    record = state / name / version / METADATA_DIR / "lineage" / "deploy-model.intoto.json"
    try:
        statement = json.loads(record.read_text(encoding="utf-8"))
        started = statement["predicate"]["runDetails"]["metadata"]["startedOn"]
        return datetime.fromisoformat(started).timestamp()
    except FileNotFoundError:
        raise DataError(
            f"{record}: no deploy record of {name} version {version} (deploy-model writes it "
            "into its deployments folder); without state-dir every logged event counts"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{record}: not a deploy-model lineage record ({exc})") from None


@dataclass(frozen=True)
class _File:
    relative: str  # its name in the root digest
    key: str  # what it is cached by
    where: str  # what a message calls it
    load: Callable[[], bytes]


class LogReader:
    """Reads the closed log files under a directory or S3 prefix, each file once."""

    def __init__(self, source: LogsSource) -> None:
        self.source = source
        self._cache: dict[str, tuple[str, list[Event]]] = {}  # key -> (sha256, events)
        self._client: Any = None

    def read(self) -> tuple[list[Event], str]:
        """Every event of every closed file, and the root digest of those files."""
        listed = self._s3_files() if self.source.uri.startswith("s3://") else self._local_files()
        events: list[Event] = []
        digests: dict[str, str] = {}
        for file in listed:
            if file.key not in self._cache:
                data = file.load()
                self._cache[file.key] = (
                    hashlib.sha256(data).hexdigest(),
                    _events(data, file.where),
                )
            digest, found = self._cache[file.key]
            digests[file.relative] = digest
            events += found
        return events, root_hex(digests)

    def _local_files(self) -> list[_File]:
        folder = Path(self.source.uri)
        if not folder.is_dir():
            what = "no such directory" if not folder.exists() else "not a directory"
            raise DataError(f"{folder}: {what}; payload-logs names the log sink's folder")
        found = []
        for path in sorted(folder.rglob(f"*{SUFFIX}")):
            relative = path.relative_to(folder)
            if path.is_file() and METADATA_DIR not in relative.parts:
                found.append(_File(relative.as_posix(), str(path), str(path),
                                   partial(_read, path)))  # fmt: skip
        return found

    def _s3_files(self) -> list[_File]:
        from tekton_mlops.storage.s3 import describe, make_client, parse_uri

        bucket, prefix = parse_uri(self.source.uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        try:
            if self._client is None:
                self._client = make_client(self.source.settings)
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            items = [item for page in pages for item in page.get("Contents", [])]
        except Exception as exc:  # noqa: BLE001 - botocore's errors have no common base here
            raise describe(exc, self.source.uri) from exc
        found = []
        for item in sorted(items, key=lambda i: str(i["Key"])):
            key = str(item["Key"])
            if key.endswith(SUFFIX):
                # Keyed by the ETag too: an object written again under its name is read again.
                found.append(
                    _File(
                        key[len(prefix) :],
                        f"{key}@{item['ETag']}",
                        f"s3://{bucket}/{key}",
                        partial(self._get, bucket, key),
                    )
                )
        return found

    def _get(self, bucket: str, key: str) -> bytes:
        from tekton_mlops.storage.s3 import describe

        try:
            return bytes(self._client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:  # noqa: BLE001
            raise describe(exc, f"s3://{bucket}/{key}") from exc


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _events(data: bytes, where: str) -> list[Event]:
    """The events of one file; a line that is not a payload-log record names its place."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{where}: not UTF-8 text; a payload log is JSON lines") from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(event_of(json.loads(line)))
        except (ValueError, TypeError, RecursionError) as exc:
            raise DataError(f"{where}:{number}: not a payload-log record ({exc})") from None
    return found


def logs_reader(params: Params) -> tuple[Callable[[], Reading], LogsSource]:
    """A function reading the payload logs into a Reading as the router's records give one,
    and the source it reads. The deploy record (with state-dir) is read now: a missing one
    fails before any wait."""
    from tekton_mlops.serving.mirror import summarize_rows

    since = 0.0
    if params.state_dir:
        since = deploy_started(Path(params.state_dir), params.name, params.version)
    settings = S3Settings(endpoint_url=params.endpoint_url,
                          addressing_style=params.addressing_style)  # fmt: skip
    candidate = candidate_service(params)
    source = LogsSource(params.payload_logs, candidate, params.live_service, since, settings)
    reader = LogReader(source)

    def read() -> Reading:
        live, pairing, digest = _read_pairs(reader)
        summary = summarize_rows(pairing.records)
        summary["live_versions"] = [live] if live else []
        summary["mirror_versions"] = [candidate]
        return Reading(params.version or candidate, summary, digest, pairing.counts())

    return read, source


def _read_pairs(reader: LogReader) -> tuple[str, Pairing, str]:
    """Read the logs once: the live service judged against, the Pairing, the digest."""
    source = reader.source
    events, digest = reader.read()
    live = source.live
    if not live:
        found = live_services(events, source.candidate)
        if len(found) > 1:
            rule = (
                f"the requests of {source.candidate} pair with several services "
                f"({', '.join(found)}); name the live one"
            )
            raise ParameterError(STEP, [Violation("live-service", "", rule)])
        live = found[0] if found else ""
    return live, pair(events, live, source.candidate, source.since), digest
