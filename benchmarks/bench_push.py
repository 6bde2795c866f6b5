"""push-model of a signed 1 GiB model against `skopeo copy` of the same bytes.

Each push goes to an empty registry (started fresh, not timed), so neither side can
skip the upload because the registry, or skopeo's blob cache, already knows the blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from harness import CLI, Row, alternate, ec_key, need, random_file, serving, timed, workdir

ORDER = 40
SIZE = 1 << 30
RUNS = 5
PORT = 5591


def _oci_layout(layout: Path, blob: Path, digest: str, size: int) -> None:
    """``blob`` as the one layer of an image in an OCI layout, the form skopeo copies from."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    os.link(blob, blobs / digest)
    empty = hashlib.sha256(b"{}").hexdigest()
    (blobs / empty).write_bytes(b"{}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": f"sha256:{empty}",
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{digest}",
                    "size": size,
                }
            ],
        }
    ).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    (blobs / manifest_digest).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{manifest_digest}",
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


def rows() -> list[Row]:
    skopeo, registry_bin = shutil.which("skopeo"), shutil.which("docker-registry")
    need(skopeo and registry_bin, "skopeo and docker-registry")
    assert skopeo is not None
    assert registry_bin is not None
    with workdir("bench-push-") as work:
        model = work / "model"
        random_file(model / "model.onnx", SIZE)
        subprocess.run(
            [CLI, "sign-artifact", f"--path={model}", f"--private-key={ec_key(work)}",
             f"--results-dir={work / 'results'}"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with (model / "model.onnx").open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        _oci_layout(work / "layout", model / "model.onnx", digest, SIZE)
        counter = iter(range(1000))

        def on_fresh_registry(command: list[str]) -> float:
            root = work / f"registry-{next(counter)}"
            root.mkdir()
            (root / "config.yml").write_text(
                f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                f"http:\n  addr: 127.0.0.1:{PORT}\nlog:\n  level: error\n"
            )
            try:
                with serving([registry_bin, "serve", str(root / "config.yml")], PORT, kill=True):
                    return timed(command)
            finally:
                shutil.rmtree(root, ignore_errors=True)

        def ours() -> float:
            return on_fresh_registry(
                [CLI, "push-model", f"--path={model}",
                 f"--destination=oci://127.0.0.1:{PORT}/m/m:1",
                 f"--results-dir={work / 'results'}"]
            )  # fmt: skip

        def peer() -> float:
            return on_fresh_registry(
                [skopeo, "copy", "--quiet", "--dest-tls-verify=false",
                 f"oci:{work / 'layout'}:bench", f"docker://127.0.0.1:{PORT}/m/m:1"]
            )  # fmt: skip

        mine, theirs = alternate(RUNS, ours, peer, label="push (ours, skopeo)")
    return [
        (
            "push-model 1 GiB (signed) to an empty docker-registry",
            f"{mine:.2f} s",
            "`skopeo copy` from an OCI layout",
            f"{theirs:.2f} s",
            f"{mine / theirs:.2f}x (goal <= 1x)",
        )
    ]
