"""Atomic publication: all of the output or nothing at the destination."""

from __future__ import annotations

from pathlib import Path

import pytest

from tekton_mlops.errors import DestinationError
from tekton_mlops.storage.publish import staged_directory


def test_output_appears_only_when_complete(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with staged_directory(dest) as stage:
        (stage / "f").write_text("x")
        assert not dest.exists()
    assert (dest / "f").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out"

    def build() -> None:
        with staged_directory(dest) as stage:
            (stage / "f").write_text("partial")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build()
    assert list(tmp_path.iterdir()) == []


def test_non_empty_destination_is_refused_before_work(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("keep")
    with pytest.raises(DestinationError, match="not empty"), staged_directory(tmp_path / "out"):
        pytest.fail("the body must not run")
    assert (tmp_path / "out" / "old").read_text() == "keep"


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("old")
    with staged_directory(tmp_path / "out", overwrite=True) as stage:
        (stage / "new").write_text("new")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_existing_destination_is_staged_inside_it(tmp_path: Path) -> None:
    # A workspace root is a mount point, possibly its own filesystem: moves must stay on it.
    dest = tmp_path / "workspace"
    dest.mkdir()
    with staged_directory(dest) as stage:
        assert stage.parent == dest
        (stage / "data.csv").write_text("x")
    assert [p.name for p in dest.iterdir()] == ["data.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["workspace"]


def test_staging_left_by_a_killed_run_is_ignored_and_cleared(tmp_path: Path) -> None:
    dest = tmp_path / "workspace"
    (dest / ".partial-killed").mkdir(parents=True)
    (dest / ".partial-killed" / "half.csv").write_text("half")
    with staged_directory(dest) as stage:  # not refused as "not empty"
        (stage / "data.csv").write_text("whole")
    assert [p.name for p in dest.iterdir()] == ["data.csv"]
