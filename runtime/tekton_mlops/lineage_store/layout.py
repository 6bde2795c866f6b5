"""Where attestations sit under a model's folder, in S3 and on a disk alike.

``.mlops/lineage/`` came with the model (its records and sign-artifact's bundles);
``.mlops/attestations/`` holds what was attached after the push. A record that has a
bundle beside it is represented by the bundle: the bare record says nothing more and
no key vouches for it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from tekton_mlops.digests import METADATA_DIR
from tekton_mlops.lineage import ATTESTATION_SUFFIX, RECORD_SUFFIX

LINEAGE = f"{METADATA_DIR}/lineage/"
ATTACHED = f"{METADATA_DIR}/attestations/"
#: A model folder in a content-addressed store: ``sha256-<root>``.
MODEL_FOLDER = re.compile(r"(?:^|/)sha256-[0-9a-f]{64}/")


def attached_name(step: str, data: bytes, signed: bool) -> str:
    """``<step>-<sha256[:16]>.sigstore.json`` (or ``.intoto.json``): one name per content,
    so attaching the same record twice writes one file and nothing is ever replaced."""
    suffix = ATTESTATION_SUFFIX if signed else RECORD_SUFFIX
    return f"{step}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"


def attestation_files(relative: Iterable[str]) -> list[str]:
    """Of the paths under a model folder, the ones that are attestations, in path order."""
    paths = sorted(relative)
    present = set(paths)

    def chosen(path: str) -> bool:
        if path.endswith(ATTESTATION_SUFFIX):
            return path.startswith((ATTACHED, LINEAGE))
        if not path.endswith(RECORD_SUFFIX):
            return False
        bundle = path.removesuffix(RECORD_SUFFIX) + ATTESTATION_SUFFIX
        return path.startswith(ATTACHED) or path.startswith(LINEAGE) and bundle not in present

    return [path for path in paths if chosen(path)]
