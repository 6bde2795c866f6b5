"""fetch-data of 1 GiB from a local S3 server against `aws s3 cp` and boto3's `download_file`.

The server is `s3rver` (npm), which serves objects from files; moto copies the
whole object for every ranged GET, so on moto a multipart download measures the
server, not the client. Every side is a whole process (start-up included)
downloading the same object from the same server into a file on the same disk;
only ours also computes the sha256 (in the same pass) and writes a manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness import BENCH, CLI, PYTHON, Row, alternate, need, random_file, serving, timed, workdir

ORDER = 20
SIZE = 1 << 30
RUNS = 7
PORT = 4569
# boto3's managed transfer with its defaults (TransferConfig(): 8 MiB parts, 10 threads).
BOTO3_DOWNLOAD = (
    "import sys, boto3\n"
    "boto3.client('s3', endpoint_url=sys.argv[1]).download_file('bench', 'blob', sys.argv[2])"
)


def rows() -> list[Row]:
    s3rver = BENCH / "node_modules" / ".bin" / "s3rver"
    aws = shutil.which("aws", path="/usr/bin")
    need(s3rver.exists() and aws, "s3rver and Debian's awscli")
    assert aws is not None
    endpoint = f"http://127.0.0.1:{PORT}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "S3RVER",
        "AWS_SECRET_ACCESS_KEY": "S3RVER",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    with workdir("bench-fetch-") as work:
        server = [str(s3rver), "-d", str(work / "store"), "-a", "127.0.0.1", "-p", str(PORT),
                  "--silent"]  # fmt: skip
        with serving(server, PORT):
            expected = _upload(aws, endpoint, env, work)
            sides = _sides(aws, endpoint, env, work)
            mine, cli, boto = alternate(RUNS, *sides, label="fetch (ours, aws, boto3)")
            manifest = (work / "ours" / ".mlops" / "manifest.json").read_text()
            assert expected in manifest, "fetch-data's digest differs from hashlib's"
    boto3_version = subprocess.run(
        [PYTHON, "-c", "import boto3; print(boto3.__version__)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    what = f"fetch-data {SIZE / (1 << 30):.0f} GiB from S3 (s3rver), sha256 in the same pass"
    ours = f"{mine:.2f} s ({SIZE / mine / 2**20:.0f} MiB/s)"
    return [
        (what, ours, "`aws s3 cp` (Debian awscli 2), no digest", f"{cli:.2f} s",
         f"{mine / cli:.2f}x time (goal <= 1x)"),
        (what, ours, f"boto3 {boto3_version} `download_file` (TransferConfig defaults), no digest",
         f"{boto:.2f} s", f"{mine / boto:.2f}x time (goal <= 1x)"),
    ]  # fmt: skip


def _upload(aws: str, endpoint: str, env: dict[str, str], work: Path) -> str:
    """Put SIZE random bytes at s3://bench/blob; return their sha256."""
    blob = work / "blob.bin"
    random_file(blob, SIZE)
    with blob.open("rb") as handle:
        expected = hashlib.file_digest(handle, "sha256").hexdigest()
    for command in (["s3", "mb", "s3://bench"], ["s3", "cp", str(blob), "s3://bench/blob"]):
        subprocess.run([aws, "--endpoint-url", endpoint, *command], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    blob.unlink()
    return expected


def _sides(aws: str, endpoint: str, env: dict[str, str], work: Path) -> list[Callable[[], float]]:
    # Each side removes its previous output first (not timed): a file being replaced
    # would cost truncation, and its dirty pages would be written back during the run.
    def ours() -> float:
        shutil.rmtree(work / "ours", ignore_errors=True)
        took = timed(
            [CLI, "fetch-data", "--source=s3://bench/blob", f"--output={work}/ours",
             f"--endpoint-url={endpoint}", "--addressing-style=path",
             f"--results-dir={work}/results"],
            env,
        )  # fmt: skip
        assert (work / "results" / "file-count").read_text() == "1"
        return took

    def aws_cp() -> float:
        (work / "aws.bin").unlink(missing_ok=True)
        return timed([aws, "--endpoint-url", endpoint, "s3", "cp", "s3://bench/blob",
                      str(work / "aws.bin")], env)  # fmt: skip

    def boto3_download() -> float:
        (work / "boto3.bin").unlink(missing_ok=True)
        return timed([PYTHON, "-c", BOTO3_DOWNLOAD, endpoint, str(work / "boto3.bin")], env)

    return [ours, aws_cp, boto3_download]
