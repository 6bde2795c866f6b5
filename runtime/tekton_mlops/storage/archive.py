"""Safe extraction of tar and zip archives.

An archive is data from elsewhere. Members with absolute paths, ``..``
components, links (symbolic or hard) that point outside the target, and
device or FIFO entries are refused before anything is extracted, with the
offending member named.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from tekton_mlops.errors import SourceError
from tekton_mlops.storage.sources import safe_relative

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)


def is_archive(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES + ZIP_SUFFIXES)


def _resolve_parts(path: str) -> str:
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part == "..":
            if not parts:
                return "../"
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def extract(archive: Path, target: Path) -> list[str]:
    """Extract ``archive`` into ``target``; return the relative paths written."""
    name = archive.name.lower()
    try:
        if name.endswith(ZIP_SUFFIXES):
            return _extract_zip(archive, target)
        return _extract_tar(archive, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise SourceError(f"{archive.name}: not a readable archive ({exc})") from None


def _extract_tar(archive: Path, target: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            safe_relative(member.name, archive.name)
            if member.issym() or member.islnk():
                link = member.linkname
                base = "" if member.islnk() else str(PurePosixPath(member.name).parent)
                if PurePosixPath(link).is_absolute() or _resolve_parts(
                    str(PurePosixPath(base) / link)
                ).startswith("../"):
                    raise SourceError(
                        f"{archive.name}: link {member.name} -> {link} points outside the target"
                    )
            elif not (member.isfile() or member.isdir()):
                raise SourceError(f"{archive.name}: {member.name} is a device or FIFO entry")
        # The "data" filter re-checks all of the above inside the standard library.
        tar.extractall(target, filter="data")
        return sorted(m.name for m in members if m.isfile())


def _extract_zip(archive: Path, target: Path) -> list[str]:
    with zipfile.ZipFile(archive) as zipped:
        infos = zipped.infolist()
        for info in infos:
            safe_relative(info.filename, archive.name)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise SourceError(f"{archive.name}: {info.filename} is a symbolic link")
        zipped.extractall(target)
        return sorted(i.filename for i in infos if not i.is_dir())
