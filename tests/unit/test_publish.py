"""Atomic publication: all of the output or nothing at the destination."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tekton_mlops.errors import DestinationError
from tekton_mlops.storage import publish
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


def test_empty_mount_point_gets_content_moved_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Tekton workspace root is a mount point: renaming it fails with EBUSY.
    dest = tmp_path / "workspace"
    dest.mkdir()
    real_rename = os.rename

    def rename(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        if Path(src) == dest:
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_rename(src, dst)

    monkeypatch.setattr(publish.os, "rename", rename)
    with staged_directory(dest) as stage:
        (stage / "data.csv").write_text("x")
    assert [p.name for p in dest.iterdir()] == ["data.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["workspace"]
