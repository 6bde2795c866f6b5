"""``tekton-mlops dashboard``: serve the runs folder's pages on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import click


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--runs-dir",
    "--run-dir",  # the name `tekton-mlops run` and `approve` give the same folder
    "runs_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".tekton-mlops/runs"),
    show_default=True,
    help="The folder `tekton-mlops run --run-dir` keeps its runs in.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9097,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port, named in the line printed at start).",
)
def dashboard(runs_dir: Path, port: int) -> None:
    """Show the runs of the local executor in a browser: read-only, on 127.0.0.1 only.

    The list of runs with their status and duration; per run the task graph coloured by
    status, a timeline of its TaskRuns and steps, each step's log, params and results, and
    the reports and lineage it made. Pages of runs still going update by themselves.
    """
    from tekton_mlops.dashboard.server import make_server

    if not runs_dir.is_dir():
        click.echo(
            f"error: no runs folder {runs_dir} (runs go where `tekton-mlops run --run-dir` "
            "says, .tekton-mlops/runs by default; name the folder with --runs-dir)",
            err=True,
        )
        sys.exit(2)
    try:
        server = make_server(runs_dir, port)
    except OSError as exc:
        click.echo(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror}", err=True)
        sys.exit(1)
    signal.signal(signal.SIGTERM, _stop)
    click.echo(
        f"dashboard: {server.url} shows the runs in {runs_dir} (read-only; Ctrl-C stops it)",
        err=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
