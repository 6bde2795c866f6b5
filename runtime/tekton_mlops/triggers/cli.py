"""``tekton-mlops listen``: serve an EventListener from trigger YAML on this machine."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click


@click.command("listen")
@click.argument("folder", type=click.Path(path_type=Path, exists=True))
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--secrets-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Secrets as DIR/<name>/<key> (webhook secrets; passed on to the runs too).",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".tekton-mlops/triggered"),
    show_default=True,
    help="Where each created PipelineRun is written (and its run kept).",
)
@click.option(
    "--listener", "name", default="", help="EventListener to serve; default: the only one."
)
@click.option("--dry-run", is_flag=True, help="Write the PipelineRuns, do not run them.")
@click.option(
    "--git-mirror",
    multiple=True,
    metavar="URL=PATH",
    help="Passed to each run: resolve the git repository URL from a local PATH.",
)
@click.option(
    "--host-path",
    "host_paths",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Passed to each run: a directory of this machine its steps may use (repeatable).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="How many runs execute at once; they start in the order their events came.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1),
    default=4 << 20,
    show_default=True,
    help="Larger webhook bodies are refused with 413.",
)
def listen(
    folder: Path,
    port: int,
    host: str,
    secrets_dir: Path,
    runs_dir: Path,
    name: str,
    dry_run: bool,
    git_mirror: tuple[str, ...],
    host_paths: tuple[Path, ...],
    concurrency: int,
    max_body_bytes: int,
) -> None:
    """Serve the EventListener in FOLDER's trigger YAML on HOST:PORT.

    GitHub (X-Hub-Signature-256), GitLab (X-Gitlab-Token) and CEL interceptors, bindings from
    $(body…), $(header…) and $(extensions…), templates with $(tt.params…): each accepted event
    creates the template's PipelineRun and runs it with `tekton-mlops run`.
    """
    from tekton_mlops.triggers.listener import Listener, ListenerServer
    from tekton_mlops.triggers.resources import TriggerError, load_triggers

    try:
        import celpy  # noqa: F401 - the cel interceptor's engine
    except ImportError:
        raise click.ClickException(
            "the listener needs cel-python: pip install 'tekton-mlops[trigger]'"
        ) from None
    logging.basicConfig(level=logging.INFO, format="listen: %(message)s", stream=sys.stderr)
    triggers = load_triggers(folder)
    if not name:
        if len(triggers.listeners) != 1:
            known = ", ".join(sorted(triggers.listeners)) or "none"
            raise click.UsageError(f"choose one EventListener with --listener ({known})")
        name = next(iter(triggers.listeners))
    run_args = ["--secrets-dir", str(secrets_dir)]
    for mirror in git_mirror:
        run_args += ["--git-mirror", mirror]
    for path in host_paths:
        run_args += ["--host-path", str(path.resolve())]
    try:
        listener = Listener(
            triggers, name, secrets_dir, runs_dir, dry_run, run_args, concurrency=concurrency
        )
        server = ListenerServer((host, port), listener, max_body_bytes)
    except TriggerError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None

    def stop(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("tekton_mlops.listen").info(
        "EventListener %s on http://%s:%d (%s)", name, host, server.server_address[1],
        "dry run" if dry_run else f"runs in {runs_dir}",
    )  # fmt: skip
    server.serve_forever(poll_interval=0.2)
    server.server_close()
