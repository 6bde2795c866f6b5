"""A small client for OCI registries (the distribution v2 API): blobs and manifests.

Content-addressed: a blob the registry already has is not uploaded again.
Loopback registries are spoken to over plain HTTP, others over HTTPS unless
``insecure`` says otherwise.

Example::

    registry = Registry("127.0.0.1:5000")
    digest = registry.push_blob("team/model", b"...")
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from tekton_mlops.errors import SourceError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_REFERENCE = re.compile(
    r"^(?P<host>[^/]+)/(?P<repo>[a-z0-9._/-]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class Reference:
    host: str
    repository: str
    tag: str
    digest: str

    @property
    def target(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        text += f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str) -> Reference:
    """``host/repo:tag@sha256:…`` (``oci://`` prefix allowed)."""
    match = _REFERENCE.match(text.removeprefix("oci://"))
    if (
        not match
        or "." not in match["host"]
        and ":" not in match["host"]
        and match["host"] != "localhost"
    ):
        raise SourceError(f"{text!r} is not an OCI reference like registry.example/repo:tag")
    return Reference(match["host"], match["repo"], match["tag"] or "", match["digest"] or "")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, host: str, insecure: bool | None = None) -> None:
        loopback = host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]")
        plain = loopback if insecure is None else insecure
        self.base = f"{'http' if plain else 'https'}://{host}/v2"
        self.host = host

    def _request(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return exc.code, dict(exc.headers), body
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(
                f"cannot reach registry {self.host}: {getattr(exc, 'reason', exc)}"
            ) from None

    def _fail(self, what: str, status: int, body: bytes) -> SourceError:
        detail = body.decode(errors="replace").strip()[:300]
        return SourceError(f"registry {self.host}: {what}: HTTP {status} {detail}")

    def has_blob(self, repository: str, digest: str) -> bool:
        status, _, _ = self._request("HEAD", f"{self.base}/{repository}/blobs/{digest}")
        return status == 200

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload a blob unless the registry has it already; return its digest."""
        digest = sha256_digest(data)
        if self.has_blob(repository, digest):
            return digest
        status, headers, body = self._request("POST", f"{self.base}/{repository}/blobs/uploads/")
        if status != 202:
            raise self._fail(f"starting an upload to {repository}", status, body)
        location = urllib.parse.urljoin(f"{self.base}/", headers.get("Location", ""))
        separator = "&" if "?" in location else "?"
        status, _, body = self._request(
            "PUT",
            f"{location}{separator}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        if status != 201:
            raise self._fail(f"uploading {digest}", status, body)
        return digest

    def push_manifest(self, repository: str, reference: str, manifest: dict[str, Any]) -> str:
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        status, _, reply = self._request(
            "PUT",
            f"{self.base}/{repository}/manifests/{reference}",
            body,
            {"Content-Type": manifest.get("mediaType", OCI_MANIFEST)},
        )
        if status != 201:
            raise self._fail(f"pushing the manifest {repository}:{reference}", status, reply)
        return sha256_digest(body)

    def manifest(self, repository: str, reference: str) -> tuple[dict[str, Any], str]:
        """The manifest and its digest, verified when the reference is a digest."""
        status, _, body = self._request(
            "GET",
            f"{self.base}/{repository}/manifests/{reference}",
            headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"},
        )
        if status != 200:
            raise self._fail(f"manifest {repository}:{reference}", status, body)
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise SourceError(f"registry {self.host}: manifest digest {digest} is not {reference}")
        return json.loads(body), digest

    def blob(self, repository: str, digest: str) -> bytes:
        status, _, body = self._request("GET", f"{self.base}/{repository}/blobs/{digest}")
        if status != 200:
            raise self._fail(f"blob {digest}", status, body)
        if sha256_digest(body) != digest:
            raise SourceError(f"registry {self.host}: blob {digest} arrived with another digest")
        return body
