"""The data a model was trained on: named by its lineage record, pinned by digest.

train-model records the dataset it read in the model directory's lineage
(``.mlops/lineage/train-model.intoto.json``: the dependency ``dataset`` with its URI and
sha256) and in ``metadata.json`` (``training.dataset_digest``). The record is metadata,
outside the model's manifest; ``metadata.json`` is inside it, so the two must agree.

The reference data read in its place (given, e.g. what fetch-data wrote from the
recorded URI, or the recorded ``file://`` path itself) must have the recorded digest. A
dataset is the same whether it is held as the CSV file itself or as a dataset directory
of that one file: the file's sha256, or the root digest of a directory holding only it.

Example::

    trained_on = recorded(Path("/workspace/model"), metadata)
    source = locate("/workspace/reference", trained_on)   # verified, or IntegrityError
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.digests import parse_digest, root_hex, sha256_file
from tekton_mlops.errors import IntegrityError, ModelError
from tekton_mlops.lineage import lineage_path
from tekton_mlops.ml import tabular


@dataclass(frozen=True)
class TrainingData:
    uri: str  # as train-model recorded it; "" when only the digest is known
    digest: str  # hex sha256
    record: Path | None  # the lineage record it comes from


def recorded(model_dir: Path, metadata: dict[str, Any]) -> TrainingData:
    """What the model's lineage (checked against its verified metadata) says it was trained on."""
    training = metadata.get("training")
    pinned = training.get("dataset_digest") if isinstance(training, dict) else None
    path = lineage_path(model_dir, "train-model")
    if not path.is_file():
        if isinstance(pinned, str) and pinned:
            return TrainingData("", _digest(pinned, model_dir / "metadata.json"), None)
        raise ModelError(
            f"{model_dir}: no record of the data the model was trained on (neither "
            f"{path.relative_to(model_dir)} nor training.dataset_digest in metadata.json)"
        )
    uri, digest = _dependency(path)
    if (
        isinstance(pinned, str)
        and pinned
        and _digest(pinned, model_dir / "metadata.json") != digest
    ):
        raise IntegrityError(
            f"{path}: names the training data sha256:{digest}, but the model's metadata.json "
            f"(verified by its manifest) says {pinned}"
        )
    return TrainingData(uri, digest, path)


def _dependency(path: Path) -> tuple[str, str]:
    """The ``dataset`` dependency of a lineage record: its URI and hex digest."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        dependencies = record["predicate"]["buildDefinition"]["resolvedDependencies"]
        found = next(d for d in dependencies if d.get("name") == "dataset")
        return str(found["uri"]), _digest(str(found["digest"]["sha256"]), path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration):
        raise ModelError(
            f"{path}: unreadable, or names no dataset with a sha256 digest "
            "(not what train-model writes)"
        ) from None


def _digest(text: str, where: Path) -> str:
    try:
        return parse_digest(text)
    except ValueError:
        raise ModelError(f"{where}: {text!r} is not a sha256 digest") from None


def locate(where: str, trained_on: TrainingData) -> tabular.DataSource:
    """The reference data at ``where`` (a dataset directory or CSV file), verified against
    its manifest and against the digest the model's lineage records."""
    source = tabular.locate(where)
    if not _same_data(source, trained_on.digest):
        raise IntegrityError(
            f"{where}: the reference data is sha256:{source.digest}, but the model was trained "
            f"on sha256:{trained_on.digest} (its lineage record)"
        )
    return source


def _same_data(source: tabular.DataSource, digest: str) -> bool:
    if source.digest == digest:
        return True
    # The same CSV held the other way (a plain file, or a one-file dataset directory):
    # hashed again only when the quick comparison fails.
    file_digest = sha256_file(source.csv)
    return digest in (file_digest, root_hex({source.csv.name: file_digest}))
