"""A model directory copied into a content-addressed folder: a model store on a disk or a PVC.

The folder is named by the model's root digest, so the same model always lands in
the same place: a push of content already there copies nothing, and a folder
holding anything else is refused (a pushed model is immutable). A new folder is
built beside its final name and renamed into place, so a failed copy leaves
nothing a deployment could pick up.

Example::

    pushed = push_directory(Path("/models/iris/sha256-…"), Path("model"), digests)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tekton_mlops.digests import METADATA_DIR, hash_files, list_files
from tekton_mlops.errors import DestinationError


@dataclass(frozen=True)
class FolderPushed:
    uri: str
    uploaded_bytes: int
    total_bytes: int


def push_directory(target: Path, directory: Path, digests: Mapping[str, str]) -> FolderPushed:
    """Copy the files named in ``digests`` (relative path -> sha256 hex) into ``target``."""
    total = sum((directory / rel).stat().st_size for rel in digests)
    uri = target.resolve().as_uri() + "/"
    if target.exists():
        present = list_files(target, [METADATA_DIR])
        expected = {rel: d for rel, d in digests.items() if not rel.startswith(f"{METADATA_DIR}/")}
        if sorted(present) != sorted(expected) or hash_files(target, present) != expected:
            raise DestinationError(
                f"{target}: already holds other content; a pushed model is immutable"
            )
        return FolderPushed(uri, 0, total)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        for rel in sorted(digests):
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(directory / rel, stage / rel)
        os.rename(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return FolderPushed(uri, total, total)
