"""``file://`` sources: a file or a directory tree, copied and hashed in one pass."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from tekton_mlops.errors import SourceError
from tekton_mlops.storage.progress import Progress
from tekton_mlops.storage.sources import Fetched

_CHUNK = 1 << 20


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise SourceError(f"{uri}: file URIs must name a local path (file:///path)")
    return Path(unquote(parsed.path))


def _copy(source: Path, target: Path, progress: Progress) -> str:
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)
            digest.update(chunk)
            progress.advance(len(chunk))
    return digest.hexdigest()


def fetch_file(uri: str, dest: Path, log: logging.Logger) -> Fetched:
    source = local_path(uri)
    if source.is_symlink():
        raise SourceError(f"{uri}: is a symbolic link; name its target instead")
    if source.is_file():
        progress = Progress(f"copying {uri}", source.stat().st_size, log)
        fetched = Fetched({source.name: _copy(source, dest / source.name, progress)})
        progress.finish()
        return fetched
    if not source.is_dir():
        raise SourceError(f"{uri}: no such file or directory")
    files: list[Path] = []
    for root, dirs, names in os.walk(source):
        for name in dirs + names:
            if (Path(root) / name).is_symlink():
                raise SourceError(f"{Path(root) / name}: symbolic links are not copied")
        files.extend(Path(root) / n for n in names)
    if not files:
        raise SourceError(f"{uri}: directory is empty")
    progress = Progress(f"copying {uri}", sum(f.stat().st_size for f in files), log)
    fetched = Fetched(single=False)
    for path in sorted(files):
        relative = path.relative_to(source).as_posix()
        fetched.files[relative] = _copy(path, dest / relative, progress)
    progress.finish()
    return fetched
