"""``tekton-mlops route``: the router in front of local V2 servers, its table, its mirror."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from tekton_mlops.errors import Violation
from tekton_mlops.guard import run_guarded
from tekton_mlops.serving.lifecycle import (
    drain_seconds_option,
    listen_options,
    read_timeout_option,
    serve_until_signal,
)
from tekton_mlops.serving.limits import Limits
from tekton_mlops.serving.routes import (
    KEEP,
    TableError,
    parse_mirror,
    parse_weights,
    read_table,
    records_path,
    write_table,
)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_table_option = click.option(
    "--table",
    "table_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The routing table (JSON; see `tekton-mlops route --help`).",
)


@click.group("route", context_settings=CONTEXT_SETTINGS)
def route() -> None:
    """A router in front of local V2 servers: weights, sticky routing, mirroring, blue-green.

    The table is a JSON file:

    \b
      {"model": "iris",
       "backends": {"v1": "http://127.0.0.1:8001", "v2": "http://127.0.0.1:8002"},
       "weights": {"v1": 90, "v2": 10},
       "sticky_header": "",
       "mirror": null}

    Weights are integer percents summing to 100 (a version at 0 is deployed and gets no
    traffic). With a sticky header, the header's value picks the version, the same one
    every time while the weights stay. A mirror, {"version": V, "percent": P}, gets a
    copy of P% of the inference requests, its answers recorded beside the table
    (TABLE.mirror.jsonl) and never returned; its weight must be 0. Every answer names the
    version that served it in the x-model-version header.
    """


@route.command("serve")
@_table_option
@listen_options("Write the router's URL here once it accepts requests.")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the random choices (versions, mirror sampling), for repeatable runs.",
)
@read_timeout_option("Seconds a client connection may stay silent before it is closed.")
@click.option(
    "--upstream-timeout",
    type=click.FloatRange(0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a version's server to connect or answer (504 after).",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(1),
    default=Limits.max_request_bytes,
    show_default=True,
    help="Largest request body; a larger one is refused with 413 before it is read.",
)
@click.option(
    "--mirror-workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Threads sending the mirror's copies.",
)
@click.option(
    "--mirror-queue",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Copies that may wait for a mirror worker; more are dropped and counted.",
)
@drain_seconds_option(
    10.0, "On SIGTERM, how long requests in flight may take before the router exits."
)
def serve(
    table_path: Path,
    port: int,
    host: str,
    ready_file: Path | None,
    seed: int | None,
    read_timeout: float,
    upstream_timeout: float,
    max_request_bytes: int,
    mirror_workers: int,
    mirror_queue: int,
    drain_seconds: float,
) -> None:
    """Route requests to the table's versions until SIGTERM (exit 143) or Ctrl-C (130).

    The table is read again when its file changes (checked every 50 ms) or on SIGHUP; a
    table that breaks the rules is refused in the log and the one in force stays.
    GET /router/status shows the table in force (with its sha256) and the counts.
    """
    from tekton_mlops.serving.router import describe, make_router, reload_on_sighup

    logging.basicConfig(level=logging.INFO, format="route: %(message)s", stream=sys.stderr)
    log = logging.getLogger("tekton_mlops.route")
    try:
        router = make_router(
            table_path, host, port, seed=seed, read_timeout=read_timeout,
            upstream_timeout=upstream_timeout, max_request_bytes=max_request_bytes,
            mirror_workers=mirror_workers, mirror_queue=mirror_queue,
        )  # fmt: skip
    except TableError as exc:
        click.echo(f"error: {_as_option(exc, 'route serve')}", err=True)
        sys.exit(2)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None

    reload_on_sighup(router)
    table = router.current.table
    log.info("%s at %s: %s", table.model, router.url, describe(table))
    signum = serve_until_signal(router, "route", ready_file)
    cut = router.drain(drain_seconds)
    log.info("stopped%s", f"; {cut} request(s) still in flight were cut off" if cut else "")
    sys.exit(128 + signum)


def _as_option(error: TableError, where: str) -> TableError:
    """The same violations, reported as those of ``where`` (a command, not a file)."""
    return TableError(error.violations, where)


@route.command("set")
@_table_option
@click.option("--weights", default=None, metavar="V=P,...",
              help="New weights, e.g. v1=90,v2=10; versions left out get 0.")  # fmt: skip
@click.option("--sticky-header", default=None, metavar="NAME",
              help="Route by this request header's value (empty: random by weight).")  # fmt: skip
@click.option("--mirror", default=None, metavar="V:P",
              help="Copy P% of inference requests to V (at weight 0); 'none' to stop.")  # fmt: skip
@click.option("--backend", "backends", multiple=True, metavar="V=URL",
              help="Add a version, or point one at another server (repeatable).")  # fmt: skip
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def set_(
    table_path: Path,
    weights: str | None,
    sticky_header: str | None,
    mirror: str | None,
    backends: tuple[str, ...],
    debug: bool,
) -> None:
    """Change the table in one atomic rename; the router takes it within 50 ms.

    The new table is checked whole first: weights that do not sum to 100, an unknown
    version, a mirror with traffic or a bad header name exit 2, naming the option,
    and leave the file as it was. Options not given keep their value.
    """
    if weights is None and sticky_header is None and mirror is None and not backends:
        raise click.UsageError("give at least one of --weights, --sticky-header, --mirror, "
                               "--backend")  # fmt: skip

    def change() -> None:
        try:
            table, _ = read_table(table_path)
        except TableError as exc:
            raise _as_option(exc, "route set") from None
        try:
            new = table.changed(
                backends={**table.backends, **_backends(backends)} if backends else None,
                weights=parse_weights(weights) if weights is not None else None,
                sticky_header=sticky_header,
                mirror=parse_mirror(mirror) if mirror is not None else KEEP,
            )
        except TableError as exc:
            raise _as_option(exc, "route set") from None
        digest = write_table(table_path, new)
        from tekton_mlops.serving.router import describe

        click.echo(f"{table_path}: {describe(new)} ({digest})")

    run_guarded(change, debug)


def _backends(items: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        version, equals, url = item.partition("=")
        if not equals:
            raise TableError([Violation("backend", item, "must be VERSION=URL")], "route set")
        found[version.strip()] = url.strip()
    return found


@route.command("mirror-summary")
@_table_option
@click.option("--version", default="", help="Only the copies sent to this mirror version.")
def mirror_summary(table_path: Path, version: str) -> None:
    """Print what the mirror records beside TABLE say, as JSON.

    requests, agreement_rate (answers equal to the live version's, floats within 1e-6),
    mirror_error_rate, dropped copies, and the p50/p95 latency of each side in ms.
    """
    from tekton_mlops.serving.mirror import summarize

    records = records_path(table_path)
    summary = summarize(records, (lambda r: r["mirror"] == version) if version else None)
    click.echo(json.dumps({"records": str(records), **summary}, indent=2))
