"""What a bring-your-own training step wrote: surveyed, bounded, then copied out.

The training step ran code this project did not write, so its output directory is read
as untrusted: only regular files count; a symbolic link is followed only when it ends at
a regular file inside the directory (what is published is that file's content, never a
link, so nothing outside the directory can be signed or pushed in its name); ``.mlops``
is the runtime's own. Count and size are checked from the survey, before a byte is
copied, so a runaway output fails fast and costs no copy.

Example::

    produced = survey(Path("/workspace/train-custom/model"), Limits(1, 10 << 30, 10_000))
    copy(produced, stage)
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from tekton_mlops.digests import METADATA_DIR
from tekton_mlops.errors import ModelError

HINT = "the training step writes its model into MODEL_DIR"


@dataclass(frozen=True)
class Limits:
    min_bytes: int
    max_bytes: int
    max_files: int


@dataclass(frozen=True)
class Produced:
    root: Path
    files: tuple[tuple[str, Path], ...]  # relative POSIX name -> the file to read
    total_bytes: int


def survey(root: Path, limits: Limits) -> Produced:
    """The files under ``root``, checked against the rules and ``limits``, or a ModelError."""
    if root.is_symlink() or not root.is_dir():
        raise ModelError(f"{root}: no such directory ({HINT}; is work-dir the same in every step?)")
    real = Path(os.path.realpath(root))
    files: list[tuple[str, Path]] = []
    total = 0
    try:
        for here, dirs, names in os.walk(root):
            folder = Path(here)
            if folder == root and METADATA_DIR in dirs + names:
                raise ModelError(
                    f"{root / METADATA_DIR}: reserved for the runtime's manifest and lineage; "
                    "the training step must not write it"
                )
            for name in dirs:
                if (folder / name).is_symlink():
                    raise ModelError(
                        f"{folder / name}: symbolic link to a directory; write the files themselves"
                    )
            for name in names:
                path = folder / name
                readable, size = _regular(path, real)
                files.append((path.relative_to(root).as_posix(), readable))
                total += size
                if len(files) > limits.max_files:
                    raise ModelError(f"{root}: more than max-files ({limits.max_files}) files")
                if total > limits.max_bytes:
                    raise ModelError(
                        f"{root}: more than max-bytes ({limits.max_bytes}) bytes of model files"
                    )
    except OSError as exc:
        raise ModelError(f"{exc.filename or root}: cannot read ({exc.strerror or exc})") from None
    if not files:
        raise ModelError(f"{root}: empty ({HINT})")
    if total < limits.min_bytes:
        raise ModelError(
            f"{root}: {total} bytes of model files, under min-bytes ({limits.min_bytes})"
        )
    return Produced(root, tuple(sorted(files)), total)


def _regular(path: Path, real_root: Path) -> tuple[Path, int]:
    """The regular file ``path`` names (itself, or a link's target inside the root), its size."""
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return path, os.lstat(path).st_size
    if not stat.S_ISLNK(mode):
        raise ModelError(f"{path}: not a regular file")
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(real_root):
        raise ModelError(f"{path}: symbolic link to {target}, outside the model directory")
    if not target.is_file():
        raise ModelError(f"{path}: symbolic link to {target}, which is not a regular file")
    return target, target.stat().st_size


def copy(produced: Produced, stage: Path) -> None:
    """Copy the surveyed files into ``stage`` (links become the files they point to)."""
    for name, source in produced.files:
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(source, target)
        except OSError as exc:
            where = produced.root / name
            raise ModelError(f"{where}: cannot copy ({exc.strerror or exc})") from None
