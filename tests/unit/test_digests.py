"""Manifests and root digests, checked against OpenSSF model signing's own hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tekton_mlops.digests import (
    build_manifest,
    parse_digest,
    read_manifest,
    verify_files,
    write_manifest,
)
from tekton_mlops.errors import DataError, IntegrityError


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("x,y\n1,2\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    return root


def test_root_digest_equals_model_signing_subject(tmp_path: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    from model_signing._signing.signing import Payload

    tree = make_tree(tmp_path / "model")
    write_manifest(tree, build_manifest(tree))  # .mlops is metadata, outside the digest
    theirs = model_signing.hashing.Config().set_ignored_paths(paths=[".mlops"]).hash(tree)
    subject = Payload(theirs).statement.pb.subject[0].digest["sha256"]
    assert build_manifest(tree).root_hex == subject


def test_manifest_lists_paths_sizes_and_file_digests(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "d")
    manifest = build_manifest(tree)
    entry = manifest.entry("sub/b.bin")
    assert entry is not None
    assert entry.size == 25600
    assert entry.sha256 == hashlib.sha256((tree / "sub" / "b.bin").read_bytes()).hexdigest()
    write_manifest(tree, manifest)
    assert read_manifest(tree) == manifest


def test_verify_names_the_changed_file(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "d")
    write_manifest(tree, build_manifest(tree))
    manifest = read_manifest(tree)
    assert manifest is not None
    (tree / "a.csv").write_text("x,y\n1,3\n")
    with pytest.raises(IntegrityError, match=r"a\.csv: sha256 .* does not match"):
        verify_files(tree, manifest, ["a.csv"])
    with pytest.raises(IntegrityError, match="not listed"):
        verify_files(tree, manifest, ["other.csv"])


def test_symlinks_are_refused(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "d")
    (tree / "link").symlink_to("/etc/passwd")
    with pytest.raises(DataError, match="symbolic links are not allowed"):
        build_manifest(tree)


def test_parse_digest_accepts_both_forms() -> None:
    assert parse_digest("sha256:" + "AB" * 32) == "ab" * 32
    with pytest.raises(ValueError, match="not a sha256 digest"):
        parse_digest("md5:abc")
