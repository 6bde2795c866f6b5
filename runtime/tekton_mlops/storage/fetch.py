"""Fetch any supported URI into a directory: the one dispatch fetch-data and deploy-model share.

Example::

    fetched = fetch("oci://r.example/m@sha256:…", stage, FetchOptions(), log)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tekton_mlops.storage.s3 import S3Settings
from tekton_mlops.storage.sources import Fetched


@dataclass(frozen=True)
class FetchOptions:
    s3: S3Settings = field(default_factory=S3Settings)
    registry_auth: str = ""  # Docker config file or Secret folder; empty: anonymous
    insecure_registry: bool = False


def fetch(source: str, stage: Path, options: FetchOptions, log: logging.Logger) -> Fetched:
    """Write what ``source`` names into ``stage``; digests come from the same pass."""
    if source.startswith("s3://"):
        from tekton_mlops.storage.s3 import S3Source

        return S3Source(source, options.s3, log).fetch(stage)
    if source.startswith("oci://"):
        from tekton_mlops.storage.oci import Registry, docker_credentials, parse_reference
        from tekton_mlops.storage.oci_model import pull_directory

        reference = parse_reference(source)
        auth = Path(options.registry_auth)
        credentials = docker_credentials(auth, reference.host) if options.registry_auth else None
        registry = Registry(reference.host, options.insecure_registry or None, credentials)
        return Fetched(pull_directory(registry, reference, stage), single=False)
    if source.startswith(("http://", "https://")):
        from tekton_mlops.storage.http import fetch_http

        return fetch_http(source, stage, log)
    from tekton_mlops.storage.files import fetch_file

    return fetch_file(source, stage, log)
