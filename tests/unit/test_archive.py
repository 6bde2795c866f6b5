"""Archive extraction refuses anything that would escape the target."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tekton_mlops.errors import SourceError
from tekton_mlops.storage.archive import extract


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"a,b\n1,2\n") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_regular_archive_extracts(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "d.tgz", [member("d/train.csv"), member("d/test.csv")])
    target = tmp_path / "out"
    target.mkdir()
    assert extract(archive, target) == ["d/test.csv", "d/train.csv"]
    assert (target / "d" / "train.csv").read_text() == "a,b\n1,2\n"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([member("../evil.csv")], "escapes the destination"),
        ([member("/etc/evil.csv")], "escapes the destination"),
        ([member("ok.csv"), member("a/../../evil.csv")], "escapes the destination"),
        ([member("link", tarfile.SYMTYPE, "../../etc/passwd")], "points outside"),
        ([member("link", tarfile.SYMTYPE, "/etc/passwd")], "points outside"),
        ([member("hard", tarfile.LNKTYPE, "../outside")], "points outside"),
        ([member("dev", tarfile.CHRTYPE)], "device or FIFO"),
        ([member("fifo", tarfile.FIFOTYPE)], "device or FIFO"),
    ],
)
def test_escaping_tar_members_are_refused_before_extraction(
    tmp_path: Path, members: list[tarfile.TarInfo], message: str
) -> None:
    archive = make_tar(tmp_path / "evil.tgz", members)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(SourceError, match=message):
        extract(archive, target)
    assert list(target.iterdir()) == []  # nothing was extracted, not even the good member


def test_link_inside_the_target_is_kept(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "ok.tgz", [member("d/a.csv"), member("d/latest.csv", tarfile.SYMTYPE, "a.csv")]
    )
    target = tmp_path / "out"
    target.mkdir()
    extract(archive, target)
    assert (target / "d" / "latest.csv").read_text() == "a,b\n1,2\n"


def test_zip_traversal_and_symlinks_are_refused(tmp_path: Path) -> None:
    traversal = tmp_path / "t.zip"
    with zipfile.ZipFile(traversal, "w") as zipped:
        zipped.writestr("../evil.csv", "x")
    link = tmp_path / "l.zip"
    with zipfile.ZipFile(link, "w") as zipped:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(info, "/etc/passwd")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(SourceError, match="escapes the destination"):
        extract(traversal, target)
    with pytest.raises(SourceError, match="symbolic link"):
        extract(link, target)
    assert list(target.iterdir()) == []


def test_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tgz"
    archive.write_bytes(b"not a tarball at all")
    with pytest.raises(SourceError, match="not a readable archive"):
        extract(archive, tmp_path)
