"""``tekton-mlops serve``: one ONNX model behind the Open Inference Protocol (KServe V2)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from tekton_mlops.errors import MlopsError, ModelError
from tekton_mlops.serving.lifecycle import (
    drain_seconds_option,
    listen_options,
    read_timeout_option,
    serve_until_signal,
)
from tekton_mlops.serving.limits import Limits

#: After the drain, how long the payload log may take to write (and upload) its last file.
_PAYLOAD_FLUSH_SECONDS = 5.0


def model_file(path: Path) -> Path:
    """``model.onnx`` of a model directory, or the file itself."""
    found = path / "model.onnx" if path.is_dir() else path
    if not found.is_file():
        raise ModelError(f"{path}: no model.onnx (give a train-model directory or an .onnx file)")
    return found


@click.command("serve")
@click.option(
    "--model-path",
    required=True,
    type=click.Path(path_type=Path, exists=True),
    help="Model directory (with model.onnx) or an .onnx file.",
)
@click.option("--model-name", required=True, help="Name the model is served under.")
@click.option("--model-version", default="", help="Version reported in metadata; empty: none.")
@listen_options(
    "Write the server's URL here once it accepts requests (for the local deploy target)."
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(1),
    default=Limits.max_request_bytes,
    show_default=True,
    help="Largest request body; a larger one is refused with 413 before it is read.",
)
@click.option(
    "--max-elements",
    type=click.IntRange(1),
    default=Limits.max_elements,
    show_default=True,
    help="Most tensor elements one request may carry, over all inputs (413 beyond).",
)
@read_timeout_option(
    "Seconds a connection may stay silent (mid-request or idle) before it is closed."
)
@drain_seconds_option(
    25.0,
    "On SIGTERM, how long requests in flight may take before their connections are "
    "closed (within Kubernetes' default 30 s grace period).",
)
@click.option(
    "--log-payloads",
    metavar="DIR|s3://BUCKET/PREFIX",
    default=None,
    help="Log each request and response (KServe logger's CloudEvents, as JSON lines) to "
    "rotated *.jsonl files in DIR, or uploaded under an S3 prefix. No header but the "
    "request id is ever logged.",
)
@click.option(
    "--log-mode",
    type=click.Choice(["all", "request", "response"]),
    default="all",
    show_default=True,
    help="What --log-payloads records; responses only for HTTP 200.",
)
@click.option(
    "--log-sample-rate",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Share of requests logged, chosen by a hash of the request id (a request and "
    "its response together).",
)
@click.option(
    "--log-max-bytes",
    type=click.IntRange(1),
    default=1 << 20,
    show_default=True,
    help="A request or response body larger than this is not logged (it is counted).",
)
@click.option(
    "--log-rotate-bytes",
    type=click.IntRange(1),
    default=16 << 20,
    show_default=True,
    help="Start a new log file before one would grow past this size.",
)
@click.option(
    "--log-rotate-seconds",
    type=click.FloatRange(0),
    default=300.0,
    show_default=True,
    help="Also close a log file (and upload it) once it is this old; 0: by size only.",
)
def serve(
    model_path: Path,
    model_name: str,
    model_version: str,
    port: int,
    host: str,
    ready_file: Path | None,
    max_request_bytes: int,
    max_elements: int,
    read_timeout: float,
    drain_seconds: float,
    log_payloads: str | None,
    log_mode: str,
    log_sample_rate: float,
    log_max_bytes: int,
    log_rotate_bytes: int,
    log_rotate_seconds: float,
) -> None:
    """Serve an ONNX model over the Open Inference Protocol (KServe V2) REST API.

    GET /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready and
    POST /v2/models/NAME/infer. SIGTERM or Ctrl-C drains requests in flight (at most
    --drain-seconds; a second signal exits at once) and exits with 128 + the signal's
    number (143, 130).
    """
    from tekton_mlops.serving.protocol import OnnxModel
    from tekton_mlops.serving.server import make_server

    logging.basicConfig(level=logging.INFO, format="serve: %(message)s", stream=sys.stderr)
    log = logging.getLogger("tekton_mlops.serve")
    limits = Limits(max_request_bytes, max_elements)
    try:
        model = OnnxModel.load(model_file(model_path), model_name, model_version, limits=limits)
        server = make_server(model, host, port, read_timeout)
        if log_payloads:
            from tekton_mlops.serving.payload_log import LogSettings, PayloadLog

            settings = LogSettings(
                log_payloads,
                log_mode,
                log_sample_rate,
                log_max_bytes,
                log_rotate_bytes,
                log_rotate_seconds,
            )
            server.payloads = PayloadLog(settings, server.url + "/", model_name, log).start()
    except MlopsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except Exception as exc:  # onnxruntime's load errors
        raise click.ClickException(f"{model_path}: not a loadable ONNX model ({exc})") from None

    def readiness_off() -> None:  # first, so a load balancer stops sending
        model.ready.clear()
        server.live = False

    log.info(
        "%s (%d input(s), %d output(s)) at %s/v2/models/%s",
        model_name,
        len(model.inputs),
        len(model.outputs),
        server.url,
        model_name,
    )
    signum = serve_until_signal(server, "serve", ready_file, readiness_off)
    log.info("%s: draining (at most %g s)", signal.Signals(signum).name, drain_seconds)
    cut = server.drain(drain_seconds)
    if server.payloads is not None:  # after the drain: the last requests are logged too
        server.payloads.close(timeout=_PAYLOAD_FLUSH_SECONDS)
    if cut:
        log.info("stopped; %d connection(s) still busy at the deadline were closed", cut)
    else:
        log.info("stopped")
    # 128 + signal, the exit status of a process that a signal ended: a supervisor
    # sees that the server stopped because it was told to. Daemon threads cut off at
    # the deadline (a long inference) end with the process.
    sys.exit(128 + signum)
