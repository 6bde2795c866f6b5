"""prepare-data: a declarative, versioned transformation of one dataset into another."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tekton_mlops.contract import StepContext
from tekton_mlops.digests import METADATA_DIR, as_digest, build_manifest, write_manifest
from tekton_mlops.lineage import Artifact, carry_upstream
from tekton_mlops.results import ResultValue
from tekton_mlops.storage.publish import check_destination, staged_directory

#: Every part is a dataset directory train-model and evaluate-model read as it is.
CSV_NAME = "data.csv"
#: The spec as applied, canonical JSON: its sha256 is the spec-digest result.
SPEC_FILE = "prepare-data-spec.json"


@dataclass(frozen=True)
class Params:
    data: str
    output: str
    spec: str
    data_digest: str
    overwrite: bool


def run(params: Params, ctx: StepContext) -> dict[str, ResultValue]:
    from tekton_mlops.ml import tabular
    from tekton_mlops.ml.frame import read_csv, write_csv
    from tekton_mlops.ml.prepare import prepare
    from tekton_mlops.ml.prepare_spec import parse_spec

    spec = parse_spec(params.spec)  # a bad spec is a bad parameter: exit 2, nothing read
    output = Path(params.output)
    check_destination(output, params.overwrite)
    source = tabular.locate(params.data, params.data_digest)
    frame = read_csv(source.csv, spec.missing_values)
    ctx.log.info(
        "read %d rows x %d columns from %s", len(frame.rows), len(frame.columns), source.csv
    )
    prepared = prepare(frame, spec)
    for column, value in prepared.filled.items():
        ctx.log.info("missing values of %r are filled with %r", column, value)

    roots: dict[str, str] = {}
    with staged_directory(output, overwrite=params.overwrite) as stage:
        for name, part in prepared.parts.items():
            # Without a split the output itself is the dataset; with one, train/ and test/.
            folder = stage if name == "data" else stage / name
            folder.mkdir(exist_ok=True)
            write_csv(folder / CSV_NAME, part)
            manifest = build_manifest(folder)
            write_manifest(
                folder,
                manifest,
                prepared_from={"uri": source.uri, "digest": as_digest(source.digest)},
                spec_digest=as_digest(spec.digest),
            )
            roots[name] = manifest.root_hex
        (stage / METADATA_DIR).mkdir(exist_ok=True)
        (stage / METADATA_DIR / SPEC_FILE).write_bytes(spec.canonical)
        ctx.write_lineage(
            stage,
            inputs=[
                Artifact("dataset", source.uri, source.digest),
                Artifact(
                    "spec", (output / METADATA_DIR / SPEC_FILE).resolve().as_uri(), spec.digest
                ),
            ],
            outputs=[
                Artifact(name, _part_dir(output, name).resolve().as_uri(), root)
                for name, root in roots.items()
            ],
        )
        carry_upstream(Path(params.data), source.digest, stage)  # what made the data it read

    rows = {"input": prepared.input_rows} | {n: len(p.rows) for n, p in prepared.parts.items()}
    ctx.log.info("wrote %s: %s", output, ", ".join(f"{n} {c} rows" for n, c in rows.items()))
    main = "train" if "train" in roots else "data"
    return {
        "dataset-digest": as_digest(roots[main]),
        "test-digest": as_digest(roots["test"]) if "test" in roots else "",
        "rows": json.dumps(rows, separators=(",", ":")),
        "spec-digest": as_digest(spec.digest),
        "dataset_ARTIFACT_INPUTS": {"uri": source.uri, "digest": as_digest(source.digest)},
        "dataset_ARTIFACT_OUTPUTS": {
            "uri": _part_dir(output, main).resolve().as_uri(),
            "digest": as_digest(roots[main]),
            "isBuildArtifact": "true",
        },
    }


def _part_dir(output: Path, name: str) -> Path:
    return output if name == "data" else output / name
