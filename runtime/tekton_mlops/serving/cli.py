"""``tekton-mlops serve``: one ONNX model behind the Open Inference Protocol (KServe V2)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from tekton_mlops.errors import MlopsError, ModelError


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
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--ready-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the server's URL here once it accepts requests (for the local deploy target).",
)
def serve(
    model_path: Path,
    model_name: str,
    model_version: str,
    port: int,
    host: str,
    ready_file: Path | None,
) -> None:
    """Serve an ONNX model over the Open Inference Protocol (KServe V2) REST API.

    GET /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready and
    POST /v2/models/NAME/infer. SIGTERM or Ctrl-C drains requests in flight and exits 0.
    """
    from tekton_mlops.serving.protocol import OnnxModel
    from tekton_mlops.serving.server import make_server

    logging.basicConfig(level=logging.INFO, format="serve: %(message)s", stream=sys.stderr)
    try:
        model = OnnxModel.load(model_file(model_path), model_name, model_version)
        server = make_server(model, host, port)
    except MlopsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except Exception as exc:  # onnxruntime's load errors
        raise click.ClickException(f"{model_path}: not a loadable ONNX model ({exc})") from None

    def stop(signum: int, _frame: FrameType | None) -> None:
        model.ready.clear()  # readiness off first, so a load balancer stops sending
        server.live = False
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("tekton_mlops.serve").info(
        "%s (%d input(s), %d output(s)) at %s/v2/models/%s",
        model_name,
        len(model.inputs),
        len(model.outputs),
        server.url,
        model_name,
    )
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.write_text(server.url + "\n")
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # joins the threads of requests in flight
    logging.getLogger("tekton_mlops.serve").info("stopped")
