"""``tekton-mlops log-sink``: receive KServe's payload-logger events, write payload logs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from tekton_mlops.serving.lifecycle import (
    drain_seconds_option,
    listen_options,
    read_timeout_option,
    serve_until_signal,
)

#: After the drain, how long the writer may take to write (and upload) its last file.
_FLUSH_SECONDS = 10.0


def _target(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A directory that can be written, or an s3://bucket/prefix (exit 2 otherwise)."""
    if value.startswith("s3://"):
        if not value.removeprefix("s3://").split("/", 1)[0]:
            raise click.BadParameter(f"{value!r}: no bucket in the S3 URI", ctx, param)
        return value
    if not value.strip():
        raise click.BadParameter("give a directory or an s3://bucket/prefix", ctx, param)
    from tekton_mlops.errors import DestinationError
    from tekton_mlops.storage.publish import check_writable_directory

    try:
        check_writable_directory(Path(value))
    except DestinationError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return value


@click.command("log-sink", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dir",
    "target",
    required=True,
    metavar="DIR|s3://BUCKET/PREFIX",
    callback=_target,
    help="Where the payload logs go: rotated *.jsonl files in DIR, or uploaded under an S3 "
    "prefix (endpoint from AWS_ENDPOINT_URL, credentials from the usual AWS chain).",
)
@listen_options(
    "Write the sink's URL here once it accepts events.", "Address to listen on (0.0.0.0 in a pod)."
)
@click.option(
    "--max-bytes",
    type=click.IntRange(1),
    default=8 << 20,
    show_default=True,
    help="Largest event body; a larger one is refused with 413 before it is read.",
)
@click.option(
    "--rotate-bytes",
    type=click.IntRange(1),
    default=16 << 20,
    show_default=True,
    help="Start a new log file before one would grow past this size.",
)
@click.option(
    "--rotate-seconds",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Close a log file (and upload it) once it is this old, so readers such as "
    "check-mirror see the events soon; 0: by size only.",
)
@read_timeout_option("Seconds a connection may stay silent before it is closed.")
@drain_seconds_option(
    10.0, "On SIGTERM, how long events being received may take to reach the writer."
)
def log_sink(
    target: str,
    port: int,
    host: str,
    ready_file: Path | None,
    max_bytes: int,
    rotate_bytes: int,
    rotate_seconds: float,
    read_timeout: float,
    drain_seconds: float,
) -> None:
    """Receive KServe payload-logger CloudEvents over HTTP and write them as payload logs.

    Point an InferenceService's spec.predictor.logger.url here (deploy-model's
    payload-log-url). Each request and response event, binary mode (Ce-* headers) or
    structured (application/cloudevents+json), becomes one JSON line as serve
    --log-payloads writes them, with the InferenceService's name and the selected
    headers (metadata). 202 accepted, 400 naming what is missing, 413 too large.
    SIGTERM drains, writes the last file and exits 143.
    """
    from tekton_mlops.serving.log_sink import ENVELOPE_BYTES, make_sink
    from tekton_mlops.serving.payload_log import LogSettings, PayloadLog

    logging.basicConfig(level=logging.INFO, format="log-sink: %(message)s", stream=sys.stderr)
    log = logging.getLogger("tekton_mlops.log_sink")
    settings = LogSettings(
        target,
        max_bytes=max_bytes + ENVELOPE_BYTES,
        rotate_bytes=rotate_bytes,
        rotate_seconds=rotate_seconds,
    )
    if not target.startswith("s3://"):
        try:  # there from the start: a reader polling it meanwhile finds it, empty
            Path(target).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(f"cannot create {target}: {exc.strerror}") from None
    payloads = PayloadLog(settings, "", "", log)
    try:
        sink = make_sink(payloads, host, port, max_bytes, read_timeout)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    payloads.start()

    log.info("listening at %s, writing to %s", sink.url, target)
    signum = serve_until_signal(sink, "log-sink", ready_file)
    cut = sink.drain(drain_seconds)
    payloads.close(timeout=_FLUSH_SECONDS)
    log.info(
        "stopped: %d event(s) accepted, %d refused%s",
        sink.accepted,
        sink.refused,
        f"; {cut} still being received were cut off" if cut else "",
    )
    sys.exit(128 + signum)
