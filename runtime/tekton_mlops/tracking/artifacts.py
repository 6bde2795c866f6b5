"""A run's artifacts: files and folders into the run's artifact location.

A server started with ``--artifacts-destination`` (serving artifacts, MLflow's default
since 2.0) gives runs an ``mlflow-artifacts:`` location and stores what is uploaded
through it, so a pod needs no storage credentials and no shared disk: that is the way
this runtime logs artifacts. A location that is a local folder (``file:`` or a path, a
disk the server and the step share) is written to directly. Any other store (``s3://``
and so on without the proxy) is refused with a line saying how to serve artifacts, rather
than logging nothing.
"""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path, PurePosixPath

from tekton_mlops.tracking.client import RestClient, TrackingError

PROXY_SCHEME = "mlflow-artifacts"


def _relative(artifact_path: str, name: str) -> str:
    parts = PurePosixPath(artifact_path.strip("/")) / name if artifact_path.strip("/") else name
    return str(parts)


class ArtifactStore:
    """Where one run's artifacts go (``artifact_uri`` of the run, as the server gave it)."""

    def __init__(self, client: RestClient, artifact_uri: str) -> None:
        self.client = client
        self.artifact_uri = artifact_uri
        parsed = urllib.parse.urlsplit(artifact_uri)
        self._proxy_path = parsed.path if parsed.scheme == PROXY_SCHEME else None
        self._folder: Path | None = None
        if parsed.scheme == "file":
            self._folder = Path(urllib.parse.unquote(parsed.path))
        elif parsed.scheme == "" and artifact_uri.startswith("/"):
            self._folder = Path(artifact_uri)

    def log_file(self, source: Path, artifact_path: str = "") -> str:
        """Upload one file under ``artifact_path``; its path inside the run's artifacts."""
        if not source.is_file():
            raise TrackingError(f"{source}: no such file to log as an artifact")
        target = _relative(artifact_path, source.name)
        self._put(target, source)
        return target

    def log_folder(self, source: Path, artifact_path: str = "") -> list[str]:
        """Upload every file under ``source`` (its layout kept) under ``artifact_path``."""
        if not source.is_dir():
            raise TrackingError(f"{source}: no such folder to log as artifacts")
        logged = []
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            target = _relative(artifact_path, path.relative_to(source).as_posix())
            self._put(target, path)
            logged.append(target)
        return logged

    def _put(self, target: str, source: Path) -> None:
        if self._proxy_path is not None:
            self.client.upload(f"{self._proxy_path.strip('/')}/{target}", source)
        elif self._folder is not None:
            destination = self._folder / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        else:
            raise TrackingError(
                f"MLflow tracking server {self.client.uri}: the run's artifact location "
                f"{self.artifact_uri} is not served by the server; start it with "
                "--artifacts-destination (serving artifacts) so steps can upload through it"
            )
