"""Revoked models in MLflow's registry: their versions tagged, their aliases removed.

A registered version is found by the digests push-model tagged it with (the signed root
digest, the pushed root digest), across every registered model: a model pushed under any
name is found. Each version found gets the tag ``tekton-mlops.dev/revoked`` (the reason,
when, who) and ``tekton-mlops.dev/revoked-datasets``, and loses every alias, so that nothing
resolving ``models:/<name>@champion`` loads it again. A version already tagged keeps its
first tag; its aliases are removed all the same.

Example::

    with open_registry(uri) as registry:
        for name, version in registry.versions_with({"sha256:…"}):
            registry.revoke(name, version, "INC-1 consent withdrawn (2026-…)", ["sha256:…"])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tekton_mlops.tracking.client import RestClient
from tekton_mlops.tracking.registry import MODEL_DIGEST, PUSHED_DIGEST, Registry

REVOKED = "tekton-mlops.dev/revoked"
REVOKED_DATASETS = "tekton-mlops.dev/revoked-datasets"
#: MLflow keeps tag values up to 5000 characters (8000 from 2.x on some stores): stay under.
_MAX_TAG = 5000


@dataclass(frozen=True)
class RevokedVersion:
    name: str
    version: str
    aliases: tuple[str, ...]  # removed (in a dry run: that would be)
    already: bool  # it carried the revoked tag before this run


class RevocationRegistry:
    """The registry calls a revocation makes, against one tracking server."""

    def __init__(self, client: RestClient) -> None:
        self.client = client
        self.registry = Registry(client)

    def check(self) -> None:
        """Reach the server (and its registry) before anything is changed anywhere."""
        self.client.call("GET", "registered-models/search", query={"max_results": "1"})

    def versions_with(self, digests: Iterable[str]) -> list[tuple[str, str]]:
        """(name, version) of every registered version tagged with one of ``digests``.

        Digests are ``sha256:`` and hex only (the step's schema), so the filter cannot be
        broken out of.
        """
        found: set[tuple[str, str]] = set()
        for digest in sorted(set(digests)):
            for tag in (MODEL_DIGEST, PUSHED_DIGEST):
                query = {"filter": f"tags.`{tag}` = '{digest}'", "max_results": "1000"}
                answer = self.client.call("GET", "model-versions/search", query=query)
                found |= {(str(v["name"]), str(v["version"]))
                          for v in answer.get("model_versions", [])}  # fmt: skip
        return sorted(found, key=lambda nv: (nv[0], int(nv[1])))

    def revoke(
        self, name: str, version: str, why: str, datasets: Sequence[str], dry_run: bool = False
    ) -> RevokedVersion:
        """Tag the version revoked (unless it is) and remove its aliases."""
        answer = self.client.call(
            "GET", "model-versions/get", query={"name": name, "version": version}
        )
        current = answer.get("model_version") or {}
        tags = {str(t.get("key")): str(t.get("value")) for t in current.get("tags") or []}
        aliases = tuple(str(a) for a in current.get("aliases") or [])
        already = REVOKED in tags
        if not dry_run:
            if not already:
                self._tag(name, version, REVOKED, why)
                self._tag(name, version, REVOKED_DATASETS, ",".join(datasets))
            for alias in aliases:
                self.registry.delete_alias(name, alias)
        return RevokedVersion(name, version, aliases, already)

    def _tag(self, name: str, version: str, key: str, value: str) -> None:
        shown = value if len(value) <= _MAX_TAG else value[: _MAX_TAG - 3] + "..."
        body = {"name": name, "version": version, "key": key, "value": shown}
        self.client.call("POST", "model-versions/set-tag", body)


@contextmanager
def open_registry(uri: str) -> Iterator[RevocationRegistry]:
    """The registry on ``uri``, reached (or the error raised) before the block runs."""
    client = RestClient(uri)
    try:
        registry = RevocationRegistry(client)
        registry.check()
        yield registry
    finally:
        client.close()
