"""HTTP(S) downloads: one streamed GET, hashed while it is written.

TLS uses the system trust store; a private CA is added through the standard
``SSL_CERT_FILE`` environment variable.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from tekton_mlops import __version__
from tekton_mlops.errors import SourceError
from tekton_mlops.storage.progress import Progress
from tekton_mlops.storage.sources import Fetched, safe_relative

_CHUNK = 1 << 20
_TIMEOUT_SECONDS = 60


def file_name(uri: str) -> str:
    """The name the download gets: the last path segment, or ``data``."""
    name = PurePosixPath(unquote(urlparse(uri).path)).name
    return safe_relative(name or "data", uri)


def fetch_http(uri: str, dest: Path, log: logging.Logger) -> Fetched:
    name = file_name(uri)
    request = urllib.request.Request(uri, headers={"User-Agent": f"tekton-mlops/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
            total = int(response.headers.get("Content-Length") or 0)
            progress = Progress(f"downloading {uri}", total, log)
            digest = hashlib.sha256()
            written = 0
            with (dest / name).open("wb") as handle:
                while chunk := response.read(_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    progress.advance(len(chunk))
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{uri}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceError(f"{uri}: cannot download ({reason})") from None
    if total and written != total:
        raise SourceError(f"{uri}: connection closed after {written} of {total} bytes")
    progress.total = progress.total or written
    progress.finish()
    return Fetched({name: digest.hexdigest()}, single=True)
