"""``tekton-mlops lineage``: show a model's signed lineage, find the models trained on a dataset.

Exit codes: 0 everything shown verified (or is unsigned, and said so), 1 an attestation
did not verify (each one named on stderr, after the output) or the store could not be
read, 2 bad arguments.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tekton_mlops.errors import MlopsError
from tekton_mlops.guard import run_guarded

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from tekton_mlops.lineage_store.graph import StepRun
    from tekton_mlops.storage.fetch import FetchOptions

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LineageError(MlopsError):
    """Attestations that do not verify (or are unsigned where signatures are required)."""


def _store_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How to reach a store: the options fetch-data and deploy-model take for the same."""
    for option in reversed([
        click.option("--endpoint-url", envvar="PARAM_ENDPOINT_URL", default="", show_envvar=True,
                     help="S3 endpoint for s3:// stores (MinIO, Ceph); empty: AWS."),
        click.option("--addressing-style", envvar="PARAM_ADDRESSING_STYLE", default="auto",
                     type=click.Choice(["auto", "path", "virtual"]), show_default=True,
                     help="S3 addressing style."),
        click.option("--registry-auth", envvar="PARAM_REGISTRY_AUTH", default="",
                     show_envvar=True, help="Docker config file (or Secret folder) for oci://."),
        click.option("--insecure-registry", envvar="PARAM_INSECURE_REGISTRY", is_flag=True,
                     help="Plain HTTP to the registry (loopback registries always are)."),
        click.option("--debug", envvar="TEKTON_MLOPS_DEBUG", is_flag=True,
                     help="Show tracebacks."),
    ]):  # fmt: skip
        command = option(command)
    return command


def _options(
    endpoint_url: str, addressing_style: str, registry_auth: str, insecure: bool
) -> FetchOptions:
    from tekton_mlops.storage.fetch import FetchOptions
    from tekton_mlops.storage.s3 import S3Settings

    settings = S3Settings(endpoint_url=endpoint_url, addressing_style=addressing_style)
    return FetchOptions(settings, registry_auth, insecure)


def _keys(paths: Sequence[Path]) -> list[EllipticCurvePublicKey]:
    from tekton_mlops.signing import load_public_key

    return [load_public_key(path) for path in paths]


def _emit(data: str | bytes, to: Path | None) -> None:
    if to is not None:
        if isinstance(data, str):
            to.write_text(data)
        else:
            to.write_bytes(data)
        return
    if isinstance(data, bytes):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        click.echo(data, nl=False)


def _refuse(failed: Sequence[StepRun], unsigned: Sequence[StepRun]) -> None:
    problems = [f"{r.attestation}: NOT VERIFIED ({r.reason})" for r in failed]
    problems += [f"{r.attestation}: unsigned ({r.step})" for r in unsigned]
    if problems:
        raise LineageError(
            f"{len(problems)} attestation(s) failed the check: " + "; ".join(problems)
        )


@click.group("lineage", context_settings=CONTEXT_SETTINGS)
def lineage() -> None:
    """The signed lineage of models, read from where the models are stored.

    push-model stores a model's lineage attestations beside it (OCI referrers, or files
    under the model's folder in S3 and folders) and deploy-model adds each deployment.
    `show` verifies them and draws the graph back to the data; `uses` finds every model
    and deployment trained on a dataset.
    """


@lineage.command(context_settings=CONTEXT_SETTINGS)
@click.argument("ref")
@click.option("--public-key", "public_keys", multiple=True, required=True,
              type=click.Path(path_type=Path),
              help="PEM public key (or a Secret folder holding one) the attestations must "
              "verify with; repeat for several signers.")  # fmt: skip
@click.option("-o", "--output", "output_format", default="text", show_default=True,
              type=click.Choice(["text", "json", "dot", "svg", "png"]),
              help="A text tree, JSON, Graphviz DOT, or a picture through Graphviz.")  # fmt: skip
@click.option("--to", "to", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the output to this file instead of stdout.")  # fmt: skip
@click.option("--require-signed", is_flag=True,
              help="Fail on unsigned records too (push and deploy records are).")  # fmt: skip
@_store_options
def show(
    ref: str,
    public_keys: tuple[Path, ...],
    output_format: str,
    to: Path | None,
    require_signed: bool,
    endpoint_url: str,
    addressing_style: str,
    registry_auth: str,
    insecure_registry: bool,
    debug: bool,
) -> None:
    """Verify a model's lineage attestations and show its graph.

    REF is a model directory, a model URI (oci://, s3://, file:// as push-model gives it)
    or a deployment folder (<state-dir>/<name>/<slot>)."""

    def act() -> None:
        from tekton_mlops.lineage_store import render
        from tekton_mlops.lineage_store.attestations import check
        from tekton_mlops.lineage_store.graph import build
        from tekton_mlops.lineage_store.store import model_attestations

        keys = _keys(public_keys)
        options = _options(endpoint_url, addressing_style, registry_auth, insecure_registry)
        found = model_attestations(ref, options)
        if not found.attestations:
            raise LineageError(f"{ref}: no lineage attestations found")
        graph = build(found.subject, [check(a, keys) for a in found.attestations],
                      found.deployment)  # fmt: skip
        if output_format == "json":
            _emit(json.dumps(graph.to_json(), indent=2) + "\n", to)
        elif output_format == "dot":
            _emit(render.dot(graph), to)
        elif output_format in ("svg", "png"):
            _emit(render.picture(render.dot(graph), output_format), to)
        else:
            _emit(render.text(graph), to)
        _refuse(graph.failed, graph.unsigned if require_signed else [])

    run_guarded(act, debug)


@lineage.command(context_settings=CONTEXT_SETTINGS)
@click.argument("dataset_digest", metavar="DATASET-DIGEST")
@click.option("--store", required=True,
              help="Where models are pushed: a folder or file:// URI, s3://bucket/prefix, "
              "oci://host/repository or oci://host (every repository).")  # fmt: skip
@click.option("--public-key", "public_keys", multiple=True,
              type=click.Path(path_type=Path),
              help="PEM public key: only attestations that verify count. Without one, "
              "signatures are not checked.")  # fmt: skip
@click.option("-o", "--output", "output_format", default="text", show_default=True,
              type=click.Choice(["text", "json"]))  # fmt: skip
@_store_options
def uses(
    dataset_digest: str,
    store: str,
    public_keys: tuple[Path, ...],
    output_format: str,
    endpoint_url: str,
    addressing_style: str,
    registry_auth: str,
    insecure_registry: bool,
    debug: bool,
) -> None:
    """List the models and deployments trained on a dataset.

    Every model in the store trained on DATASET-DIGEST (sha256:<hex>), directly or
    through datasets prepared from it, and every deployment of those models."""
    from tekton_mlops.digests import parse_digest

    try:
        digest = "sha256:" + parse_digest(dataset_digest)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="DATASET-DIGEST") from None

    def act() -> None:
        from tekton_mlops.lineage_store.store import models_in
        from tekton_mlops.lineage_store.uses import uses as find

        keys = _keys(public_keys)
        options = _options(endpoint_url, addressing_style, registry_auth, insecure_registry)
        answer = find(digest, models_in(store, options), keys)
        if output_format == "json":
            click.echo(json.dumps(answer.to_json(), indent=2))
        else:
            click.echo(f"dataset {digest}")
            for use in answer.uses:
                how = "through " + " -> ".join(use.via) if use.via else "directly"
                revoked = "  REVOKED" if use.revoked else ""
                click.echo(f"model {use.model}  (trained {how}){revoked}")
                for run in use.deployments:
                    gone = "  out of service" if use.out_of_service(run) else ""
                    click.echo("  deployment " + _deployment(run) + gone)
            deployments = sum(len(u.deployments) for u in answer.uses)
            click.echo(f"{len(answer.uses)} model(s), {deployments} deployment(s)")
        if not keys:
            click.echo("note: signatures not checked (no --public-key)", err=True)
        _refuse(answer.failed, [])

    run_guarded(act, debug)


def _deployment(run: StepRun) -> str:
    """target, namespace/name, URL, when, status: one deployment on one line."""
    params = run.params
    name = "/".join(str(p) for p in (params.get("namespace"), params.get("name")) if p)
    where = next((str(b.get("uri", "")) for b in run.byproducts if b.get("uri")), "")
    facts = [str(params.get("target", "")), name, where, run.finished, f"[{run.status.value}]"]
    return "  ".join(f for f in facts if f)
