"""How the long-running servers (``serve``, ``route serve``, ``log-sink``) start and stop.

The same contract for all three, which the local deploy target and Kubernetes rely on:
the URL goes to ``--ready-file`` once the socket accepts; the first SIGTERM or Ctrl-C
stops accepting (after ``on_signal``, e.g. readiness off) and lets the caller drain;
a second one exits at once; the exit status is 128 + the signal's number (143, 130),
the status of a process a signal ended.

Example::

    @click.command()
    @listen_options("Write the router's URL here once it accepts requests.")
    def serve(port, host, ready_file): ...
        signum = serve_until_signal(server, "route", ready_file)
        server.drain(drain_seconds)
        sys.exit(128 + signum)
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class Serving(Protocol):
    @property
    def url(self) -> str: ...
    def serve_forever(self, poll_interval: float = 0.5) -> None: ...
    def shutdown(self) -> None: ...


def listen_options(ready_help: str, host_help: str = "Address to listen on.") -> Callable[[F], F]:
    """``--port``, ``--host`` and ``--ready-file`` (``ready_help`` says what it gets)."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                click.option(
                    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True
                ),
                click.option("--host", default="127.0.0.1", show_default=True, help=host_help),
                click.option(
                    "--ready-file",
                    type=click.Path(path_type=Path, dir_okay=False),
                    default=None,
                    help=ready_help,
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


def read_timeout_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--read-timeout",
        type=click.FloatRange(0, min_open=True),
        default=30.0,
        show_default=True,
        help=help_text,
    )


def drain_seconds_option(default: float, help_text: str) -> Callable[[F], F]:
    return click.option(
        "--drain-seconds",
        type=click.FloatRange(0),
        default=default,
        show_default=True,
        help=help_text,
    )


def serve_until_signal(
    server: Serving,
    program: str,
    ready_file: Path | None,
    on_signal: Callable[[], None] | None = None,
) -> int:
    """Serve until SIGTERM or SIGINT; the signal's number. The caller drains and exits."""
    received: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        if received:  # a second signal: no more waiting for the drain
            os.write(2, f"{program}: second signal; exiting now\n".encode())  # no logging here
            os._exit(128 + signum)
        received.append(signum)
        if on_signal is not None:
            on_signal()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.write_text(server.url + "\n")
    server.serve_forever(poll_interval=0.2)
    return received[0]
