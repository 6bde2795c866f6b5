"""The one place where a command's errors become one line and an exit code.

Steps, ``kfp launch`` and ``kfp compile`` all end the same way: a known error prints
``error: <message>`` and exits with its code (2 bad input, 1 failure), SIGTERM (Tekton
stopping a timed-out or cancelled step) unwinds like Ctrl-C so every staging area cleans
itself up, and anything unexpected is one line, with the traceback under ``--debug``.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

import click

from tekton_mlops.errors import MlopsError


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    # Raising lets every `with` on the way out remove what it staged.
    raise KeyboardInterrupt(f"signal {signum}")


def run_guarded(
    action: Callable[[], object], debug: bool, interrupted: str = "interrupted"
) -> None:
    """Run ``action``; ``interrupted`` is what a stop by signal or Ctrl-C reports."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        action()
    except MlopsError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(f"error: {interrupted}", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback with --debug
        if debug:
            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(
            f"error: internal error: {type(exc).__name__}: {detail} (rerun with --debug)", err=True
        )
        sys.exit(1)
