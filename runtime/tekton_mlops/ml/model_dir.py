"""A model directory train-model wrote, read back and verified before anything uses it.

evaluate-model, its report's baseline and the serving side all load a model the same
way: the bytes read once and hashed, checked against the manifest and a pinned digest,
and the metadata checked for the fields they rely on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tekton_mlops.digests import (
    check_file_digest,
    parse_digest,
    read_manifest,
    verify_files,
)
from tekton_mlops.errors import IntegrityError, ModelError

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"


def load_model_dir(path: Path, pinned: str) -> tuple[dict[str, Any], bytes, str]:
    """Read and verify a train-model directory; return metadata, model bytes, model sha256."""
    expected = "expected a train-model output directory"
    if not path.exists():
        raise ModelError(f"{path}: no such directory ({expected})")
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory ({expected})")
    if not (path / MODEL_FILE).is_file():
        raise ModelError(f"{path}: no {MODEL_FILE} ({expected})")
    # Read once, hash those bytes: what runs is exactly what was verified.
    try:
        model_bytes = (path / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ModelError(f"{path / MODEL_FILE}: cannot read ({exc.strerror or exc})") from None
    digest = hashlib.sha256(model_bytes).hexdigest()
    manifest = read_manifest(path)
    if manifest is not None:
        check_file_digest(path, manifest, MODEL_FILE, digest)
        verify_files(path, manifest, [METADATA_FILE])
    if pinned and parse_digest(pinned) != digest:
        raise IntegrityError(
            f"{path / MODEL_FILE}: sha256 {digest} does not match the pinned {parse_digest(pinned)}"
        )
    try:
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{path / METADATA_FILE}: unreadable ({detail})") from None
    check_metadata(metadata, path / METADATA_FILE)
    return metadata, model_bytes, digest


def check_metadata(metadata: Any, where: Path) -> None:
    """The fields evaluation relies on, as train-model writes them, or a ModelError naming one."""

    def wrong(field: str, rule: str) -> ModelError:
        return ModelError(f"{where}: {field} {rule} (not what train-model writes)")

    if not isinstance(metadata, dict):
        raise wrong("the document", "must be a JSON object")
    if metadata.get("task") not in ("classification", "regression"):
        raise wrong("task", "must be classification or regression")
    names = metadata.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise wrong("feature_names", "must be a non-empty list of column names")
    if len(set(names)) != len(names):
        raise wrong("feature_names", "must not name a column twice")
    if not isinstance(metadata.get("target_column"), str):
        raise wrong("target_column", "must be a column name")
    classes = metadata.get("classes")
    if metadata["task"] == "classification" and (not isinstance(classes, list) or len(classes) < 2):
        raise wrong("classes", "must list the model's classes")
    from tekton_mlops.ml.inputs import check_metadata as check_input_layout

    check_input_layout(metadata, where)  # the layout fields: how the model takes a table's rows


def check_model_input(runtime: Any, metadata: dict[str, Any], model_file: Path) -> None:
    """The ONNX graph must take the features the metadata names and give the task's outputs."""
    inputs = runtime.get_inputs()
    width = len(metadata["feature_names"])
    shape = inputs[0].shape if len(inputs) == 1 else []
    if metadata.get("input_layout") == "columns":  # one input per column: names and types
        from tekton_mlops.ml.inputs import check_session

        check_session(runtime, metadata, model_file)
    # A dimension is an int when fixed; None or a name when symbolic (then anything goes).
    elif len(inputs) != 1 or len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
        raise ModelError(
            f"{model_file}: takes {[(i.name, i.shape) for i in inputs]}, "
            f"but its metadata names {width} feature column(s)"
        )
    wanted = {"label", "probabilities"} if metadata["task"] == "classification" else {"variable"}
    names = {o.name for o in runtime.get_outputs()}
    if not wanted <= names:
        raise ModelError(
            f"{model_file}: outputs {sorted(names)}, a {metadata['task']} model from "
            f"train-model has {sorted(wanted)}"
        )


def root_digest(model_dir: Path) -> str:
    """The model directory's root digest (what push-model pushes and deploy-model serves)."""
    manifest = read_manifest(model_dir)
    return manifest.root if manifest is not None else ""
