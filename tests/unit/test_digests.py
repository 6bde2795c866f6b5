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
from tests.conftest import need


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("x,y\n1,2\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    return root


def test_root_digest_equals_model_signing_subject(tmp_path: Path) -> None:
    try:
        import model_signing
        from model_signing._signing.signing import Payload
    except ImportError:
        need(False, "model-signing is not installed (pip install -e '.[test]')")

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


def test_root_digest_worked_by_hand(tmp_path: Path) -> None:
    # sha256 over the files' raw sha256 digests, in the order of their relative paths.
    tree = make_tree(tmp_path / "d")
    (tree / "B.txt").write_text("upper case sorts first\n")
    files = ["B.txt", "a.csv", "sub/b.bin"]
    raw = b"".join(hashlib.sha256((tree / f).read_bytes()).digest() for f in files)
    manifest = build_manifest(tree)
    assert manifest.root_hex == hashlib.sha256(raw).hexdigest()
    assert manifest.root == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert [e.path for e in manifest.files] == files
    assert manifest.total_bytes == sum((tree / f).stat().st_size for f in files)


def test_root_of_digests_ignores_the_order_given() -> None:
    from tekton_mlops.digests import root_hex

    a, b = "a" * 64, "b" * 64
    expected = hashlib.sha256(bytes.fromhex(a) + bytes.fromhex(b)).hexdigest()
    assert root_hex({"x/1": a, "y": b}) == expected
    assert root_hex({"y": b, "x/1": a}) == expected
    assert root_hex({}) == hashlib.sha256(b"").hexdigest()


def test_large_files_hash_the_same_through_the_mapped_path(tmp_path: Path) -> None:
    from tekton_mlops.digests import sha256_file

    big = tmp_path / "big.bin"
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with big.open("wb") as handle:
        for _ in range(17):  # over the 16 MiB from which files are mapped
            handle.write(chunk)
    assert sha256_file(big) == hashlib.sha256(chunk * 17).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def test_digest_forms() -> None:
    from tekton_mlops.digests import as_digest

    assert as_digest("ab" * 32) == "sha256:" + "ab" * 32
    assert parse_digest("  " + "ab" * 32 + "\n") == "ab" * 32
    assert parse_digest("SHA256:" + "ab" * 32) == "ab" * 32
    for wrong in ("ab" * 31, "ab" * 33, "g" * 64, "sha512:" + "ab" * 32, ""):
        with pytest.raises(ValueError, match=r"not a sha256 digest: '"):
            parse_digest(wrong)


def test_metadata_and_ignored_paths_are_left_out(tmp_path: Path) -> None:
    from tekton_mlops.digests import artifact_files, list_files

    tree = make_tree(tmp_path / "d")
    (tree / ".mlops" / "lineage").mkdir(parents=True)
    (tree / ".mlops" / "lineage" / "x.json").write_text("{}")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref\n")
    (tree / ".gitignore").write_text("*.tmp\n")
    (tree / "sub" / "deeper").mkdir()
    (tree / "sub" / "deeper" / "c.txt").write_text("c")
    assert list_files(tree) == [
        ".git/HEAD", ".gitignore", ".mlops/lineage/x.json", "a.csv", "sub/b.bin",
        "sub/deeper/c.txt",
    ]  # fmt: skip
    assert list_files(tree, [".git/", ".gitignore", ".mlops", "sub/deeper"]) == [
        "a.csv",
        "sub/b.bin",
    ]
    # A prefix of a name is not a folder: ignoring "sub/b" keeps "sub/b.bin".
    assert "sub/b.bin" in list_files(tree, ["sub/b"])
    assert list_files(tree, ["sub/b.bin"]) == [
        ".git/HEAD", ".gitignore", ".mlops/lineage/x.json", "a.csv", "sub/deeper/c.txt",
    ]  # fmt: skip
    assert artifact_files(tree) == [tree / p for p in list_files(tree, [".mlops"])]
    assert [e.path for e in build_manifest(tree).files] == list_files(tree, [".mlops"])


def test_a_symlinked_folder_is_refused_too(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "d")
    (tree / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(DataError, match=r"elsewhere: symbolic links are not allowed"):
        build_manifest(tree)


def test_known_digests_are_taken_as_given(tmp_path: Path) -> None:
    # Digests computed while downloading are not computed again (the file is not re-read).
    tree = make_tree(tmp_path / "d")
    claimed = "c" * 64
    manifest = build_manifest(tree, known={"a.csv": claimed})
    entry = manifest.entry("a.csv")
    assert entry is not None
    assert entry.sha256 == claimed
    assert entry.size == (tree / "a.csv").stat().st_size
    other = manifest.entry("sub/b.bin")
    assert other is not None
    assert other.sha256 == hashlib.sha256((tree / "sub" / "b.bin").read_bytes()).hexdigest()
    assert manifest.entry("missing") is None


def test_manifest_document(tmp_path: Path) -> None:
    import json

    from tekton_mlops.digests import Manifest

    tree = make_tree(tmp_path / "d")
    manifest = build_manifest(tree)
    path = write_manifest(tree, manifest, source="s3://b/d/", fetched_at="2026-01-01T00:00:00")
    assert path == tree / ".mlops" / "manifest.json"
    document = json.loads(path.read_text())
    assert document == {
        "version": 1,
        "root": manifest.root,
        "files": [
            {"path": "a.csv", "sha256": manifest.files[0].sha256, "size": 8},
            {"path": "sub/b.bin", "sha256": manifest.files[1].sha256, "size": 25600},
        ],
        "source": "s3://b/d/",
        "fetched_at": "2026-01-01T00:00:00",
    }
    # Indented, sorted JSON with a final newline: stable to diff and to hash.
    assert path.read_text() == json.dumps(document, indent=2, sort_keys=True) + "\n"
    again = read_manifest(tree)
    assert again == Manifest(manifest.files, source="s3://b/d/")
    assert read_manifest(tmp_path) is None  # no manifest: None, not an error
    # Written again over an existing .mlops folder (a re-run, a fetch into a workspace).
    assert write_manifest(tree, manifest) == path
    assert read_manifest(tree) == manifest


@pytest.mark.parametrize(
    "text",
    ["not json", '{"files": [{"path": "a"}]}', '{"root": "x"}', '{"files": [1]}',
     '{"files": [{"path": "a", "sha256": "b", "size": "big"}]}'],
)  # fmt: skip
def test_an_unreadable_manifest_is_an_integrity_error(tmp_path: Path, text: str) -> None:
    (tmp_path / ".mlops").mkdir()
    (tmp_path / ".mlops" / "manifest.json").write_text(text)
    with pytest.raises(IntegrityError, match=r"manifest\.json: unreadable manifest \("):
        read_manifest(tmp_path)


def test_verify_names_a_missing_file_and_passes_intact_ones(tmp_path: Path) -> None:
    from tekton_mlops.digests import check_file_digest

    tree = make_tree(tmp_path / "d")
    manifest = build_manifest(tree)
    verify_files(tree, manifest, ["a.csv", "sub/b.bin"])  # intact: no error
    verify_files(tree, manifest, [])
    (tree / "sub" / "b.bin").unlink()
    with pytest.raises(IntegrityError) as missing:
        verify_files(tree, manifest, ["a.csv", "sub/b.bin"])
    assert str(missing.value) == f"{tree / 'sub/b.bin'}: listed in the manifest but missing"
    entry = manifest.entry("a.csv")
    assert entry is not None
    check_file_digest(tree, manifest, "a.csv", entry.sha256)
    with pytest.raises(IntegrityError) as changed:
        check_file_digest(tree, manifest, "a.csv", "0" * 64)
    assert str(changed.value) == (
        f"{tree / 'a.csv'}: sha256 {'0' * 64} does not match the manifest's {entry.sha256}"
    )
    with pytest.raises(IntegrityError) as unlisted:
        check_file_digest(tree, manifest, "new.csv", "0" * 64)
    assert str(unlisted.value) == f"{tree / 'new.csv'}: not listed in the artifact's manifest"


def test_hashing_many_files_in_parallel_matches_one_by_one(tmp_path: Path) -> None:
    from tekton_mlops.digests import hash_files

    for index in range(40):
        (tmp_path / f"f{index:02}").write_bytes(bytes([index]) * (index * 1000 + 1))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert hash_files(tmp_path, names) == {
        n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in names
    }
    assert hash_files(tmp_path, []) == {}
