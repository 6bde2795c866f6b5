"""A release: version checks, the runtime image pushed and pinned, one bundle per resource.

    tekton-mlops catalog release --registry ghcr.io/tekton-mlops

1. Every version directory has its label and a changelog entry.
2. The image `make image` built (localhost/tekton-mlops-runtime:<version>) is pushed to
   <registry>/runtime:<version>; its digest is what the Tasks will run.
3. That reference, repo:tag@sha256:…, replaces the old one in runtime-image.txt (the one
   source of truth) and in every catalog file that names it.
4. Each Task and Pipeline is pushed as a Tekton bundle <registry>/catalog/<kind>s/<name>:<X.Y>.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tekton_mlops import __version__
from tekton_mlops.errors import MlopsError
from tekton_mlops.storage.oci import parse_reference
from tekton_mlops.tekton.bundles import push
from tekton_mlops.yamlio import load

CONTAINERS_CONF = Path(__file__).resolve().parents[3] / "hack" / "containers.conf"


class ReleaseError(MlopsError):
    """The catalog or the image is not in a state to release."""


@dataclass
class Release:
    image: str = ""
    bundles: list[str] = field(default_factory=list)
    pinned_files: list[Path] = field(default_factory=list)


def check_versions(root: Path) -> list[str]:
    """Problems that stop a release: labels, directories and changelogs that disagree."""
    problems = []
    for path in sorted(root.glob("*/*/*/*.yaml")):
        if path.parent.parent.parent.name not in ("task", "pipeline"):
            continue
        resource = load(path.read_text())
        version = str(resource["metadata"].get("labels", {}).get("app.kubernetes.io/version"))
        if version != path.parent.name:
            problems.append(f"{path}: version label {version!r} is not the directory's")
        changelog = path.parent.parent / "CHANGELOG.md"
        if not changelog.is_file() or not re.search(
            rf"^## {re.escape(path.parent.name)}\b", changelog.read_text(), re.MULTILINE
        ):
            problems.append(f"{changelog}: no '## {path.parent.name}' entry")
    return problems


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if CONTAINERS_CONF.is_file():
        env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=env)


def push_image(local: str, target: str) -> str:
    """Push a local image; return target pinned by the digest the registry stored."""
    reference = parse_reference(target)
    loopback = reference.host.split(":")[0] in ("127.0.0.1", "localhost")
    with tempfile.TemporaryDirectory() as scratch:
        digest_file = Path(scratch) / "digest"
        pushed = _podman(
            "push",
            "--quiet",
            f"--tls-verify={'false' if loopback else 'true'}",
            "--digestfile",
            str(digest_file),
            local,
            target,
        )
        if pushed.returncode != 0:
            raise ReleaseError(f"pushing {local} to {target} failed: {pushed.stderr.strip()}")
        digest = digest_file.read_text().strip()
    return f"{target}@{digest}"


def pin(root: Path, new_reference: str) -> list[Path]:
    """Replace the pinned runtime reference everywhere; return the files changed."""
    source = root / "runtime-image.txt"
    old = source.read_text().strip()
    changed = []
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(old, new_reference))
            changed.append(path)
    source.write_text(new_reference + "\n")
    return [source, *changed]


def release(root: Path, registry: str, revision: str) -> Release:
    problems = check_versions(root)
    if problems:
        raise ReleaseError("; ".join(problems))
    outcome = Release()
    local = f"localhost/tekton-mlops-runtime:{__version__}"
    if _podman("image", "exists", local).returncode != 0:
        raise ReleaseError(f"{local} is not built; run make image (and make image-test) first")
    outcome.image = push_image(local, f"{registry}/runtime:{__version__}")
    outcome.pinned_files = pin(root, outcome.image)
    annotations = {
        "org.opencontainers.image.source": "https://github.com/tekton-mlops/tekton-mlops",
        "org.opencontainers.image.revision": revision,
    }
    for path in sorted(root.glob("*/*/*/*.yaml")):
        kind = path.parent.parent.parent.name
        if kind not in ("task", "pipeline"):
            continue
        resource = load(path.read_text())
        version = path.parent.name
        target = parse_reference(f"{registry}/catalog/{kind}s/{path.stem}:{version}")
        digest = push(
            target, [resource], {**annotations, "org.opencontainers.image.version": version}
        )
        outcome.bundles.append(f"{target}@{digest}")
    return outcome
