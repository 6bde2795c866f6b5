"""Atomic publication of a step's output directory.

Output is built in a hidden sibling ``.<name>.partial-*`` and renamed into
place only when complete, so a failed, interrupted or killed step leaves
nothing at the destination. When the destination is a mount point (a Tekton
workspace root cannot be renamed), the staged entries are moved in one by one:
each is atomic, the set is not, and that is said in the docs.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tekton_mlops.errors import DestinationError


def check_destination(dest: Path, overwrite: bool) -> None:
    """Fail before any work when ``dest`` cannot take new output."""
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"{dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise DestinationError(f"{dest}: not empty (set overwrite to replace its content)")
    parent = dest.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise DestinationError(f"{parent}: not writable")


@contextmanager
def staged_directory(dest: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory; publish it as ``dest`` on success."""
    check_destination(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield stage
        _publish(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _publish(stage: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(stage, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    try:
        os.rename(dest, old / "content")
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.EXDEV, errno.EPERM, errno.EACCES):
            raise
        old.rmdir()
        _replace_children(stage, dest)  # dest is a mount point: it stays, its content moves
        return
    os.rename(stage, dest)
    shutil.rmtree(old, ignore_errors=True)


def _replace_children(stage: Path, dest: Path) -> None:
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for child in stage.iterdir():
        os.rename(child, dest / child.name)
    stage.rmdir()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file through a temporary sibling and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)
