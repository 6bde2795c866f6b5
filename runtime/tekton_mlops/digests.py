"""sha256 digests of files and directory manifests.

A directory's *root digest* follows the OpenSSF model signing ``files``
serialization: sha256 over the raw sha256 digests of its files, sorted by
relative path. A model directory's root digest is therefore the subject digest
that ``model_signing`` signs for the same files, and a dataset gets the same
kind of identity. The manifest keeps paths, sizes and per-file digests, so a
consumer verifies exactly the files it reads.

Example::

    manifest = build_manifest(Path("/ws/data/iris"))
    manifest.root            # 'sha256:…'
    write_manifest(Path("/ws/data/iris"), manifest, source="s3://bucket/iris/")
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.errors import DataError, IntegrityError

#: Metadata the runtime keeps beside an artifact; never part of its digest.
METADATA_DIR = ".mlops"
MANIFEST_NAME = "manifest.json"
_MAP_FROM = 16 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < _MAP_FROM:
            return hashlib.file_digest(handle, "sha256").hexdigest()
        # Large files are hashed straight from the page cache, skipping the copy into a read
        # buffer (about 8% of the time of a pass). A file truncated while mapped raises
        # SIGBUS: the step dies rather than report a digest of bytes it never saw.
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest()


def as_digest(hex_digest: str) -> str:
    """``abc…`` -> ``sha256:abc…`` (the form Tekton Chains and OCI use)."""
    return f"sha256:{hex_digest}"


def parse_digest(text: str) -> str:
    """Accept ``sha256:<hex>`` or ``<hex>``; return lower-case hex."""
    hex_digest = text.strip().lower().removeprefix("sha256:")
    if not _HEX64.match(hex_digest):
        raise ValueError(f"not a sha256 digest: {text!r}")
    return hex_digest


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest."""

    path: str  # POSIX, relative to the artifact directory
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """Per-file digests of a directory and their root digest."""

    files: tuple[FileEntry, ...]
    source: str = ""  # where the artifact came from, when a fetch recorded it

    @property
    def root_hex(self) -> str:
        return root_hex({e.path: e.sha256 for e in self.files})

    @property
    def root(self) -> str:
        return as_digest(self.root_hex)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.files)

    def entry(self, path: str) -> FileEntry | None:
        return next((e for e in self.files if e.path == path), None)

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {
            "version": 1,
            "root": self.root,
            "files": [
                {"path": e.path, "sha256": e.sha256, "size": e.size}
                for e in sorted(self.files, key=lambda e: e.path)
            ],
            **extra,
        }


def list_files(directory: Path, ignore: Iterable[str] = ()) -> list[str]:
    """Relative POSIX paths of the files under ``directory``, sorted, outside ``ignore``
    (files or folders, relative to ``directory``).

    Symbolic links are refused: a link could point outside the artifact and
    make its digest say nothing about what a consumer reads.
    """
    ignored = frozenset(p.rstrip("/") for p in ignore)
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        here = Path(root)
        for name in dirs + files:
            rel = (here / name).relative_to(directory).as_posix()
            if rel in ignored or any(rel.startswith(f"{p}/") for p in ignored):
                if name in dirs:
                    dirs.remove(name)
                continue
            if (here / name).is_symlink():
                raise DataError(f"{here / name}: symbolic links are not allowed in an artifact")
            if name in files:
                found.append(rel)
    return sorted(found)


def hash_files(directory: Path, files: Iterable[str]) -> dict[str, str]:
    """Relative path -> sha256 hex, in parallel: hashlib releases the GIL, so many files use
    every core while one large file runs at one core's hashing speed."""
    files = list(files)
    workers = min(len(files), os.cpu_count() or 1) or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(lambda rel: sha256_file(directory / rel), files))
    return dict(zip(files, digests, strict=True))


def root_hex(digests: Mapping[str, str]) -> str:
    """The root digest of files (relative path -> sha256 hex), as model signing computes it."""
    root = hashlib.sha256()
    for rel in sorted(digests):
        root.update(bytes.fromhex(digests[rel]))
    return root.hexdigest()


def artifact_files(directory: Path) -> list[Path]:
    """Files of an artifact directory, without the runtime's metadata."""
    return [directory / rel for rel in list_files(directory, [METADATA_DIR])]


def build_manifest(directory: Path, known: Mapping[str, str] | None = None) -> Manifest:
    """Hash every file of ``directory`` but the runtime's metadata.

    ``known`` maps relative paths to digests already computed in the same pass
    as a download, so those files are not read twice.
    """
    known = known or {}
    files = list_files(directory, [METADATA_DIR])
    hashed = hash_files(directory, [rel for rel in files if rel not in known])
    return Manifest(
        tuple(
            FileEntry(rel, known.get(rel) or hashed[rel], (directory / rel).stat().st_size)
            for rel in files
        )
    )


def manifest_path(directory: Path) -> Path:
    return directory / METADATA_DIR / MANIFEST_NAME


def write_manifest(directory: Path, manifest: Manifest, **extra: Any) -> Path:
    """Write ``<dir>/.mlops/manifest.json``."""
    path = manifest_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest.to_json(**extra), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest a previous step left in ``directory``, or None."""
    path = manifest_path(directory)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return Manifest(
            tuple(FileEntry(f["path"], f["sha256"], int(f["size"])) for f in data["files"]),
            source=str(data.get("source") or ""),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: unreadable manifest ({exc})") from None


def verify_files(directory: Path, manifest: Manifest, paths: Iterable[str]) -> None:
    """Check that each named file exists and matches its manifest digest.

    Raises:
        IntegrityError: naming the first file that is missing, unlisted or changed.
    """
    for rel in paths:
        path = directory / rel
        if manifest.entry(rel) is not None and not path.is_file():
            raise IntegrityError(f"{path}: listed in the manifest but missing")
        check_file_digest(directory, manifest, rel, sha256_file(path) if path.is_file() else "")


def check_file_digest(directory: Path, manifest: Manifest, rel: str, actual: str) -> None:
    """Compare a digest already computed (e.g. of bytes in hand) with the manifest's.

    Hashing the bytes a step goes on to use, rather than the file before reading it,
    leaves no window in which the file could change between check and use.
    """
    entry = manifest.entry(rel)
    if entry is None:
        raise IntegrityError(f"{directory / rel}: not listed in the artifact's manifest")
    if actual != entry.sha256:
        raise IntegrityError(
            f"{directory / rel}: sha256 {actual} does not match the manifest's {entry.sha256}"
        )
