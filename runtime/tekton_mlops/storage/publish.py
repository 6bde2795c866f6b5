"""Atomic publication of a step's output directory.

A new destination is built in a hidden sibling ``.<name>.partial-*`` and renamed
into place when complete, so a failed, interrupted or killed step leaves
nothing there. An existing destination (typically a Tekton workspace root, a
mount point that cannot be renamed and may sit on its own filesystem) gets a
hidden ``.partial-*`` directory inside it instead, so every move stays on one
filesystem: each entry moves in atomically, the set does not, and a staging
directory left by a killed run is ignored and cleared by the next one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tekton_mlops.errors import DestinationError

_INNER_STAGE = ".partial-"


def _content(dest: Path) -> list[Path]:
    """What a directory holds, without staging left behind by an interrupted run."""
    return [child for child in dest.iterdir() if not child.name.startswith(_INNER_STAGE)]


def check_destination(dest: Path, overwrite: bool) -> None:
    """Fail before any work when ``dest`` cannot take new output."""
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"{dest}: exists and is not a directory")
    if dest.is_dir() and _content(dest) and not overwrite:
        raise DestinationError(f"{dest}: not empty (set overwrite to replace its content)")
    target = dest
    while not target.exists():
        target = target.parent
    if not os.access(target, os.W_OK):
        raise DestinationError(f"{target}: not writable")


def check_writable_directory(path: Path) -> None:
    """Fail before any work when files cannot be written into directory ``path``.

    ``path`` may exist (a directory) or not yet (it will be created): what is refused is a
    file where the directory should be, a file on the way to it, or no write permission,
    each of which would otherwise surface as an OSError after the step's work is done.
    """
    if path.exists() and not path.is_dir():
        raise DestinationError(f"{path}: exists and is not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DestinationError(f"{path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK):
        raise DestinationError(f"{path}: {existing} is not writable")


@contextmanager
def staged_directory(dest: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory; publish it as ``dest`` on success."""
    check_destination(dest, overwrite)
    if dest.exists():
        stage = Path(tempfile.mkdtemp(prefix=_INNER_STAGE, dir=dest))
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield stage
        if stage.parent == dest:
            _replace_content(stage, dest)
        else:
            os.rename(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _replace_content(stage: Path, dest: Path) -> None:
    for child in dest.iterdir():
        if child == stage:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for child in stage.iterdir():
        os.rename(child, dest / child.name)
    stage.rmdir()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file through a temporary sibling and a rename: a reader sees the old
    version or the new one, never half of one.

    The temporary name carries the process and thread, so writers of the same file side
    by side (the executor's TaskRuns finishing together) never share one; a failed write
    leaves nothing behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
