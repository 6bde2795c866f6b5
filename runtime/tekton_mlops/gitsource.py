"""One file of a git repository at one revision, read with dulwich (no git binary needed).

Example::

    found = read_at_revision("https://github.com/acme/models.git", "3f2a…", ".tekton-mlops.yaml")
    found.commit, found.content
"""

from __future__ import annotations

import io
import re
import tempfile
from dataclasses import dataclass

from tekton_mlops.errors import SourceError

_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class GitFile:
    url: str
    commit: str  # the full commit the revision resolved to
    path: str
    content: bytes | None  # None: no such file at that commit


def read_at_revision(url: str, revision: str, path: str) -> GitFile:
    """Fetch ``url`` into a scratch repository and read ``path`` at ``revision``.

    ``revision`` is a full commit sha (what a push event names), a branch or a tag.
    """
    from dulwich import porcelain
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
    from dulwich.object_store import tree_lookup_path

    with tempfile.TemporaryDirectory(prefix="tekton-mlops-git-") as scratch:
        try:
            repo = porcelain.clone(url, scratch, bare=True, checkout=False, errstream=io.BytesIO())
        except (GitProtocolError, HangupException, NotGitRepository, OSError) as exc:
            raise SourceError(f"{url}: cannot fetch the repository ({exc})") from None
        with repo:
            commit = _resolve(repo, revision, url)
            try:
                tree = repo[commit.encode()].tree  # type: ignore[attr-defined]
                _, sha = tree_lookup_path(repo.__getitem__, tree, path.encode())
            except KeyError:
                return GitFile(url, commit, path, None)
            return GitFile(url, commit, path, repo[sha].as_raw_string())


def _resolve(repo: object, revision: str, url: str) -> str:
    from dulwich.objects import Commit, Tag

    candidates = (
        [revision.encode()]
        if _SHA.match(revision)
        else [
            f"refs/heads/{revision}".encode(),
            f"refs/tags/{revision}".encode(),
            revision.encode(),
        ]
    )
    for name in candidates:
        try:
            target = repo[name]  # type: ignore[index]
        except KeyError:
            continue
        while isinstance(target, Tag):
            target = repo[target.object[1]]  # type: ignore[index]
        if isinstance(target, Commit):
            return target.id.decode()
    raise SourceError(f"{url}: no commit, branch or tag {revision!r}")
