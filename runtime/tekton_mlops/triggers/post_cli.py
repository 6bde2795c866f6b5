"""``tekton-mlops post-event``: post a signed schedule event to an EventListener."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from tekton_mlops.errors import MlopsError


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{pair!r}: expected NAME=VALUE", param_hint="'--param'")
        found[name] = value
    return found


@click.command("post-event")
@click.argument("url")
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The shared webhook secret the EventListener's github interceptor checks.",
)
@click.option("--schedule", required=True, help="Name of the schedule that fired, for the run.")
@click.option(
    "--param",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for the trigger's binding, under body.params (repeatable).",
)
def post_event(url: str, secret_file: Path, schedule: str, pairs: tuple[str, ...]) -> None:
    """Post a schedule event to URL, signed with HMAC-SHA256 as GitHub signs webhooks.

    What the retrain-on-schedule CronJob runs; Tekton Triggers has no schedules of its own.
    The listener's answer is printed as JSON. Exit 1 when the listener cannot be reached or
    answers an error; an EventListener answers 202 even to an event its interceptors refuse
    (a wrong secret or event type), which then starts nothing and shows in its log.
    """
    from tekton_mlops.triggers.post import post, schedule_event

    params = _params(pairs)
    # The bytes as they are: the github interceptor keys the HMAC with the Secret's bytes.
    secret = secret_file.read_bytes()
    if not secret.strip():
        raise click.BadParameter(f"{secret_file} is empty", param_hint="'--secret-file'")
    event = schedule_event(schedule, params, datetime.now(UTC))
    try:
        status, answer = post(url, event, secret)
    except MlopsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"status": status, "delivery": event.delivery, "answer": answer}))
