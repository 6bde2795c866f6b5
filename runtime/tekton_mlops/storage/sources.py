"""What a fetch returns, and how a source URI picks its reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from tekton_mlops.errors import SourceError


@dataclass
class Fetched:
    """Files written by a fetch: relative POSIX path -> sha256 hex, hashed in the same pass."""

    files: dict[str, str] = field(default_factory=dict)
    single: bool = True  # one object (its digest is the one a user pins), or a prefix/tree


def safe_relative(path: str, origin: str) -> str:
    """A relative path that stays inside the destination, or SourceError.

    Object keys and archive members are data from elsewhere: ``../x`` or
    ``/etc/x`` must never become a path outside the output directory.
    """
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise SourceError(f"{origin}: refusing path {path!r} that escapes the destination")
    return pure.as_posix()
