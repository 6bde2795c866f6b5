"""A small client for OCI registries (the distribution v2 API): blobs and manifests.

Content-addressed: a blob the registry already has is not uploaded again.
Large blobs stream from and to files in 1 MiB blocks over one kept-alive
connection. Loopback registries are spoken to over plain HTTP, others over
HTTPS unless ``insecure`` says otherwise. Credentials (from a Docker config
file, as a ``kubernetes.io/dockerconfigjson`` Secret holds them) answer the
registry's Basic or Bearer challenge and are never logged or put in errors.

Example::

    registry = Registry("127.0.0.1:5000", credentials=docker_credentials(config, host))
    digest = registry.push_blob("team/model", b"...")
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tekton_mlops.errors import IntegrityError, SourceError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_BLOCK = 1 << 20
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
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


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"Credentials(username={self.username!r}, password=***)"


def docker_credentials(config: Path, host: str) -> Credentials | None:
    """The credentials a Docker config file (``.dockerconfigjson`` or ``config.json``) holds
    for ``host``, or None. ``config`` may be the file or the directory of a mounted Secret."""
    if config.is_dir():
        candidates = [config / ".dockerconfigjson", config / "config.json"]
        config = next((c for c in candidates if c.is_file()), candidates[0])
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except FileNotFoundError:
        raise SourceError(f"{config}: no Docker config file (.dockerconfigjson)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise SourceError(f"{config}: not a Docker config file ({type(exc).__name__})") from None
    for key, entry in auths.items():
        name = re.sub(r"^https?://", "", key).split("/")[0]
        if name != host or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise SourceError(f"{config}: the auth entry for {host} is not base64") from None
            return Credentials(user, password)
        if entry.get("username"):
            return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


class Registry:
    def __init__(
        self, host: str, insecure: bool | None = None, credentials: Credentials | None = None
    ) -> None:
        loopback = host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]")
        self.plain = loopback if insecure is None else insecure
        self.base = f"{'http' if self.plain else 'https'}://{host}/v2"
        self.host = host
        self._credentials = credentials
        self._authorization = ""
        self._local = threading.local()  # one kept-alive connection per thread

    # Transport ---------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPConnection if self.plain else http.client.HTTPSConnection
            connection = kind(self.host, timeout=60, blocksize=_BLOCK)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | IO[bytes] | None,
        headers: dict[str, str],
        sink: Callable[[bytes], None] | None,
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        reused = getattr(self._local, "connection", None) is not None
        connection = self._connection()
        try:
            try:
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
                # The server closed an idle kept-alive connection: one fresh try.
                self._drop_connection()
                if body is not None and not isinstance(body, bytes):
                    body.seek(0)
                connection = self._connection()
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
            if sink is not None and response.status == 200:
                while block := response.read(_BLOCK):
                    sink(block)
                return response.status, reply_headers, b""
            return response.status, reply_headers, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            raise SourceError(
                f"cannot reach registry {self.host}: {exc or type(exc).__name__}"
            ) from None

    def _request(
        self,
        method: str,
        url: str,
        data: bytes | Path | None = None,
        headers: dict[str, str] | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; a 401 challenge is answered once with the credentials."""
        for attempt in (1, 2):
            sent = dict(headers or {})
            if self._authorization:
                sent["Authorization"] = self._authorization
            if isinstance(data, Path):
                sent["Content-Length"] = str(data.stat().st_size)
                with data.open("rb") as handle:
                    status, reply, body = self._send(method, url, handle, sent, sink)
            else:
                if data is not None:
                    sent["Content-Length"] = str(len(data))
                status, reply, body = self._send(method, url, data, sent, sink)
            if status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                return self._follow(method, urllib.parse.urljoin(url, reply["location"]), sink)
            if status != 401 or attempt == 2 or not self._answer(reply.get("www-authenticate", "")):
                return status, reply, body
        raise AssertionError("unreachable")

    @staticmethod
    def _at(url: str) -> Registry:
        """A client without credentials for another host (a redirect, a token service)."""
        parts = urllib.parse.urlsplit(url)
        return Registry(parts.netloc, insecure=parts.scheme == "http")

    def _follow(
        self, method: str, url: str, sink: Callable[[bytes], None] | None
    ) -> tuple[int, dict[str, str], bytes]:
        # Blob storage behind a redirect gets no registry credentials.
        return self._at(url)._send(method, url, None, {}, sink)

    def _answer(self, challenge: str) -> bool:
        """Set the Authorization header a challenge asks for; False when there is none to give."""
        if self._credentials is None or not challenge:
            return False
        scheme, _, rest = challenge.partition(" ")
        pair = f"{self._credentials.username}:{self._credentials.password}".encode()
        basic = "Basic " + base64.b64encode(pair).decode()
        if scheme.lower() == "basic":
            self._authorization = basic
            return True
        if scheme.lower() != "bearer":
            return False
        params = dict(_CHALLENGE_PARAM.findall(rest))
        realm = params.pop("realm", "")
        if not realm:
            return False
        query = urllib.parse.urlencode(
            {k: v for k, v in params.items() if k in ("service", "scope")}
        )
        url = f"{realm}?{query}" if query else realm
        status, _, body = self._at(url)._send("GET", url, None, {"Authorization": basic}, None)
        if status != 200:
            raise SourceError(
                f"registry {self.host}: the token service refused the credentials (HTTP {status})"
            )
        try:
            token = json.loads(body)
            self._authorization = "Bearer " + str(token.get("token") or token["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise SourceError(
                f"registry {self.host}: the token service answered without a token"
            ) from None
        return True

    def _fail(self, what: str, status: int, body: bytes) -> SourceError:
        detail = body.decode(errors="replace").strip()[:300]
        if status == 401:
            detail = "unauthorized" + ("" if self._credentials else " (no credentials given)")
        return SourceError(f"registry {self.host}: {what}: HTTP {status} {detail}")

    # Blobs -------------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        status, _, body = self._request("HEAD", f"{self.base}/{repository}/blobs/{digest}")
        if status in (401, 403):
            raise self._fail(f"reading {repository}", status, body)
        return status == 200

    def _upload(self, repository: str, digest: str, data: bytes | Path) -> None:
        status, headers, body = self._request("POST", f"{self.base}/{repository}/blobs/uploads/")
        if status != 202:
            raise self._fail(f"starting an upload to {repository}", status, body)
        location = urllib.parse.urljoin(f"{self.base}/", headers.get("location", ""))
        separator = "&" if "?" in location else "?"
        status, _, body = self._request(
            "PUT",
            f"{location}{separator}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        if status == 400 and b"DIGEST_INVALID" in body:
            raise IntegrityError(f"registry {self.host}: the uploaded bytes are not {digest}")
        if status != 201:
            raise self._fail(f"uploading {digest}", status, body)

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload a blob unless the registry has it already; return its digest."""
        digest = sha256_digest(data)
        if not self.has_blob(repository, digest):
            self._upload(repository, digest, data)
        return digest

    def push_blob_file(self, repository: str, path: Path, digest: str) -> bool:
        """Stream a file as the blob ``digest`` unless the registry has it; True if uploaded.

        The registry checks the digest of what arrives, so a file that changed
        since it was hashed is refused rather than stored under a wrong name.
        """
        if self.has_blob(repository, digest):
            return False
        self._upload(repository, digest, path)
        return True

    def blob(self, repository: str, digest: str) -> bytes:
        status, _, body = self._request("GET", f"{self.base}/{repository}/blobs/{digest}")
        if status != 200:
            raise self._fail(f"blob {digest}", status, body)
        if sha256_digest(body) != digest:
            raise SourceError(f"registry {self.host}: blob {digest} arrived with another digest")
        return body

    def blob_to_file(self, repository: str, digest: str, path: Path) -> None:
        """Stream a blob into ``path``, hashed as it arrives; a wrong digest leaves no file."""
        hasher = hashlib.sha256()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("wb") as handle:

                def sink(block: bytes) -> None:
                    hasher.update(block)
                    handle.write(block)

                status, _, body = self._request(
                    "GET", f"{self.base}/{repository}/blobs/{digest}", sink=sink
                )
            if status != 200:
                raise self._fail(f"blob {digest}", status, body)
            if f"sha256:{hasher.hexdigest()}" != digest:
                raise SourceError(
                    f"registry {self.host}: blob {digest} arrived with another digest"
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    # Manifests ---------------------------------------------------------------------------

    def push_manifest(self, repository: str, reference: str, manifest: dict[str, Any]) -> str:
        """PUT a manifest under a tag, or under its own digest when ``reference`` is empty
        (a referrer: reachable from its subject, never through a tag of its own)."""
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        status, _, reply = self._request(
            "PUT",
            f"{self.base}/{repository}/manifests/{reference or sha256_digest(body)}",
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

    def find_manifest(
        self, repository: str, reference: str, accept: str = OCI_MANIFEST
    ) -> tuple[bytes, str] | None:
        """A manifest's bytes and digest as served, or None when the registry has none
        there (404); checked against ``reference`` when it is a digest."""
        status, _, body = self._request(
            "GET", f"{self.base}/{repository}/manifests/{reference}", headers={"Accept": accept}
        )
        if status == 404:
            return None
        if status != 200:
            raise self._fail(f"manifest {repository}:{reference}", status, body)
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise SourceError(f"registry {self.host}: manifest digest {digest} is not {reference}")
        return body, digest

    # Listings (paged with Link headers) ------------------------------------------------------

    def _pages(self, url: str, what: str) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        while url:
            status, headers, body = self._request("GET", url, headers={"Accept": OCI_INDEX})
            if status != 200:
                raise self._fail(what, status, body)
            pages.append(json.loads(body))
            link = _NEXT_LINK.search(headers.get("link", ""))
            url = urllib.parse.urljoin(url, link.group(1)) if link else ""
        return pages

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """The descriptors the OCI 1.1 referrers API lists for ``digest``, or None when the
        registry has no such API (it answers 404, as distribution 2.8 does): then the
        referrers live in the index tagged ``sha256-<hex>``, kept by the clients."""
        url = f"{self.base}/{repository}/referrers/{digest}"
        status, headers, body = self._request("GET", url, headers={"Accept": OCI_INDEX})
        if status == 404:
            return None
        if status != 200:
            raise self._fail(f"referrers of {repository}@{digest}", status, body)
        found: list[dict[str, Any]] = list(json.loads(body).get("manifests") or [])
        if link := _NEXT_LINK.search(headers.get("link", "")):
            more = self._pages(urllib.parse.urljoin(url, link.group(1)), f"referrers of {digest}")
            found.extend(d for page in more for d in page.get("manifests") or [])
        return found

    def tags(self, repository: str) -> list[str]:
        pages = self._pages(f"{self.base}/{repository}/tags/list", f"tags of {repository}")
        return [str(t) for page in pages for t in page.get("tags") or []]

    def repositories(self) -> list[str]:
        pages = self._pages(f"{self.base}/_catalog", "the repository catalog")
        return [str(r) for page in pages for r in page.get("repositories") or []]
