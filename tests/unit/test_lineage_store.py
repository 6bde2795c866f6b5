"""The lineage store's pure parts: which files are attestations, carried records, the graph."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tekton_mlops.lineage import Artifact, carry_upstream, statement, write_statement
from tekton_mlops.lineage_store.attestations import Attestation, Status, check
from tekton_mlops.lineage_store.graph import build
from tekton_mlops.lineage_store.layout import attestation_files
from tekton_mlops.lineage_store.render import dot, text

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(step: str, inputs: list[Artifact], outputs: list[Artifact]) -> dict:  # type: ignore[type-arg]
    return statement(step, {"step-param": step}, inputs, outputs, NOW, NOW)


def test_a_record_with_a_bundle_beside_it_is_represented_by_the_bundle() -> None:
    found = attestation_files([
        ".mlops/lineage/train-model.intoto.json",
        ".mlops/lineage/train-model.sigstore.json",
        ".mlops/lineage/push-model.intoto.json",
        ".mlops/lineage/upstream/fetch-data-0123.sigstore.json",
        ".mlops/attestations/deploy-model-abcd.intoto.json",
        ".mlops/manifest.json",
        "model.sig",
        "metadata.json",
    ])  # fmt: skip
    assert found == [
        ".mlops/attestations/deploy-model-abcd.intoto.json",
        ".mlops/lineage/push-model.intoto.json",
        ".mlops/lineage/train-model.sigstore.json",
        ".mlops/lineage/upstream/fetch-data-0123.sigstore.json",
    ]


def test_carry_upstream_takes_the_producer_and_what_it_carried(tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    made = record("prepare-data", [Artifact("dataset", "s3://b/raw/", "1" * 64)],
                  [Artifact("train", "file:///p/train", "2" * 64)])  # fmt: skip
    write_statement(prepared, "prepare-data", made)
    carried = prepared / ".mlops/lineage/upstream/fetch-data-77.intoto.json"
    carried.parent.mkdir(parents=True)
    carried.write_text("{}")
    (prepared / "train").mkdir()
    model = tmp_path / "model"
    # prepare-data's record sits in the parent of its train/ part.
    assert carry_upstream(prepared / "train", "2" * 64, model) == 2
    names = sorted(p.name for p in (model / ".mlops/lineage/upstream").iterdir())
    assert names[0].startswith("fetch-data-77")
    assert names[1].startswith("prepare-data-")
    # Data no record produced (another digest, a bare CSV) carries nothing.
    assert carry_upstream(prepared / "train", "3" * 64, tmp_path / "other") == 0
    assert not (tmp_path / "other").exists()


def test_graph_joins_runs_by_digest_and_an_unreadable_attestation_is_a_finding() -> None:
    fetch = record("fetch-data", [Artifact("source", "s3://b/iris.csv", "a" * 64)],
                   [Artifact("dataset", "file:///d", "b" * 64)])  # fmt: skip
    train = record("train-model", [Artifact("dataset", "s3://b/iris.csv", "b" * 64)],
                   [Artifact("model", "file:///m/model.onnx", "c" * 64)])  # fmt: skip
    checked = [
        check(Attestation.of("train-model.intoto.json", json.dumps(train).encode()), []),
        check(Attestation.of("fetch-data.intoto.json", json.dumps(fetch).encode()), []),
        check(Attestation.of("evil.sigstore.json", b"{not json"), []),
    ]
    graph = build('oci://r/"m"', checked)
    assert [r.status for r in graph.runs] == [Status.UNSIGNED, Status.UNSIGNED, Status.FAILED]
    assert graph.trained_on() == {"sha256:" + "b" * 64, "sha256:" + "a" * 64}
    assert [r.step for r in graph.producers("sha256:" + "b" * 64)] == ["fetch-data"]
    tree = text(graph)
    assert "└── dataset  s3://b/iris.csv  sha256:" + "b" * 64 in tree
    assert "evil.sigstore.json" in tree
    assert "reason: malformed signature bundle (JSONDecodeError" in tree
    drawn = dot(graph)
    assert 'label="lineage of oci://r/\\"m\\""' in drawn  # quotes escaped for Graphviz
    assert f'"sha256:{"b" * 64}" -> "run-1";' in drawn
