"""``tekton-mlops catalog``: lint the catalog and generate its READMEs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

CATALOG = Path("catalog")

# The catalog root: where task/, pipeline/ and runtime-image.txt are.
_root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=CATALOG,
    show_default=True,
    help="The catalog root (holds task/, pipeline/ and runtime-image.txt).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def catalog() -> None:
    """Work with the catalog: lint the Tasks and Pipelines, generate their docs."""


@catalog.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=CATALOG,
    show_default=True,
    help="The catalog root (holds runtime-image.txt).",
)
@click.option(
    "--format",
    "style",
    type=click.Choice(["text", "github"]),
    default="text",
    show_default=True,
    help="github prints workflow annotations.",
)
def lint(paths: tuple[Path, ...], root: Path, style: str) -> None:
    """Check Tekton's admission rules, catlin's rules and the project's rules.

    Prints file:line: rule: message for each finding and exits 1 when there is any.
    """
    import yaml

    from tekton_mlops.catalog.lint import lint_tree, yaml_files
    from tekton_mlops.catalog.rules import RULES

    findings = lint_tree(root, list(paths) or None)
    for finding in findings:
        click.echo(finding.format(style))
    files = yaml_files(list(paths) or [root])
    documents = sum(
        1 for path in files for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)
    )
    summary = (
        f"{documents} documents in {len(files)} files, {len(RULES)} rules, "
        f"{len(findings)} problem(s)"
    )
    if findings:
        click.echo(summary, err=True)
        sys.exit(1)
    click.echo(summary)


@catalog.command()
def rules() -> None:
    """List the lint rules."""
    from tekton_mlops.catalog.rules import RULES

    for name, text in RULES.items():
        click.echo(f"{name:18} {text}")


@catalog.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=CATALOG,
    show_default=True,
    help="The catalog root.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a README is stale.")
def docs(root: Path, check: bool) -> None:
    """Generate each README's tables, install lines and usage from the YAML and schema."""
    from tekton_mlops.catalog.docs import sync

    stale = sync(root, check)
    for readme in stale:
        click.echo(f"{readme}: {'stale, run tekton-mlops catalog docs' if check else 'updated'}")
    total = len(list(root.glob("*/*/*/README.md")))
    if check and stale:
        click.echo(f"{len(stale)} of {total} READMEs stale", err=True)
        sys.exit(1)
    click.echo(f"{total} READMEs in sync" if check else f"{total} READMEs, {len(stale)} updated")


@catalog.command()
@click.argument("reference")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--annotate",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="An OCI manifest annotation, e.g. org.opencontainers.image.version=0.1.",
)
def bundle(reference: str, paths: tuple[Path, ...], annotations: tuple[str, ...]) -> None:
    """Push Tasks and Pipelines as a Tekton bundle to REFERENCE (host/repo:tag).

    Prints the pinned reference (REFERENCE@sha256:...), as the bundles resolver wants it.
    """
    from tekton_mlops.errors import MlopsError
    from tekton_mlops.storage.oci import parse_reference
    from tekton_mlops.tekton.bundles import push
    from tekton_mlops.yamlio import load_all

    try:
        target = parse_reference(reference)
        resources = [d for p in paths for d in load_all(p.read_text()) if isinstance(d, dict)]
        notes = dict(item.split("=", 1) for item in annotations)
        digest = push(target, resources, notes or None)
    except MlopsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{target.host}/{target.repository}:{target.tag or 'latest'}@{digest}")


@catalog.command(name="release")
@_root_option
@click.option(
    "--registry",
    required=True,
    metavar="HOST/ORG",
    help="Where the image and bundles go, e.g. ghcr.io/tekton-mlops.",
)
def release_command(root: Path, registry: str) -> None:
    """Push the runtime image and pin it into every Task; push every resource as a bundle.

    Checks versions and changelogs first. The image must have been built (make image).
    """
    import subprocess as _subprocess

    from tekton_mlops.catalog.docs import sync
    from tekton_mlops.catalog.release import release
    from tekton_mlops.errors import MlopsError

    revision = _subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    try:
        outcome = release(root, registry, revision.stdout.strip() or "unknown")
    except MlopsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    sync(root, check=False)
    click.echo(f"image   {outcome.image}")
    for path in outcome.pinned_files:
        click.echo(f"pinned  {path}")
    for bundle in outcome.bundles:
        click.echo(f"bundle  {bundle}")
