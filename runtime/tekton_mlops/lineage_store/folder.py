"""Attestations of a model in a folder: a model directory, or a ``file://`` model store.

Example::

    attach(Path("/models/iris/sha256-…"), [("push-model", record_bytes, False)])
    read_model(Path("/models/iris/sha256-…"))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tekton_mlops.digests import METADATA_DIR
from tekton_mlops.errors import DestinationError
from tekton_mlops.lineage_store.attestations import Attestation
from tekton_mlops.lineage_store.layout import (
    ATTACHED,
    MODEL_FOLDER,
    attached_name,
    attestation_files,
)


def read_model(model: Path) -> list[Attestation]:
    """Every attestation in ``model/.mlops``, named by its path."""
    metadata = model / METADATA_DIR
    if not metadata.is_dir():
        return []
    relative = [
        path.relative_to(model).as_posix()
        for path in metadata.rglob("*.json")
        if path.is_file() and not path.is_symlink()
    ]
    return [Attestation.of(str(model / rel), (model / rel).read_bytes()) for rel in
            attestation_files(relative)]  # fmt: skip


def attach(model: Path, records: Sequence[tuple[str, bytes, bool]]) -> list[str]:
    """Write each (step, bytes, signed) into ``model/.mlops/attestations/``; return the paths.

    Each file appears whole (written beside and renamed); a file of that name already
    holds the same bytes, since the name is the content's digest.
    """
    folder = model / ATTACHED
    written: list[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for step, data, signed in records:
            target = folder / attached_name(step, data, signed)
            if not target.exists():
                partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
                partial.write_bytes(data)
                os.replace(partial, target)
            written.append(str(target))
    except OSError as exc:
        raise DestinationError(f"{folder}: cannot attach attestations ({exc.strerror})") from None
    return written


def models(store: Path) -> list[Path]:
    """The model folders (``sha256-<root>``) anywhere under ``store``, in path order."""
    found: list[Path] = []
    for root, dirs, _ in os.walk(store):
        here = Path(root)
        if MODEL_FOLDER.search(f"/{here.name}/"):
            found.append(here)
            dirs[:] = []  # a model's own folders hold no other model
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)
