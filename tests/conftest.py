"""Shared fixtures: real servers on 127.0.0.1, small datasets, a step runner.

A component that is missing makes its tests skip with the reason, except under
CI=true, where .ci/run installs everything and a missing component is a failure.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main

IN_CI = os.environ.get("CI") == "true"
REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("tekton-mlops"))


def need(condition: bool, reason: str) -> None:
    """Skip when a component is missing, fail under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not come up: {exc}") from None
            time.sleep(0.1)


def answers_200(url: str) -> bool:
    """True when ``url`` answers HTTP 200 now (a server that is up and ready)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class S3Server:
    """A moto standalone S3 server process on 127.0.0.1."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def start_moto() -> S3Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(f"{endpoint}/moto-api/")
    return S3Server(endpoint, process)


@dataclass
class RegistryServer:
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1, optionally with htpasswd auth."""

    root: Path
    port: int
    htpasswd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def start(self) -> RegistryServer:
        auth = (
            f"auth:\n  htpasswd:\n    realm: test\n    path: {self.htpasswd}\n"
            if self.htpasswd
            else ""
        )
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {self.data}\n"
            f"http:\n  addr: {self.host}\nlog:\n  level: error\n{auth}"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:  # 401 from an auth registry also means "up"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"registry on {self.host} did not come up") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def start_registry(root: Path, htpasswd: Path | None = None) -> RegistryServer:
    import shutil

    need(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    return RegistryServer(root, free_port(), htpasswd).start()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry without auth for the whole session; yields host:port."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server.host
    server.stop()


@pytest.fixture(autouse=True)
def aws_test_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials for the local server; never the developer's real ones."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        need(False, "moto[server] is not installed")
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server, aws_test_env: None):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3, request: pytest.FixtureRequest) -> str:  # type: ignore[no-untyped-def]
    name = "t-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    s3.create_bucket(Bucket=name)
    return name


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def make_key_pair(folder: Path, curve: str = "secp256r1") -> KeyPair:
    """A PEM EC key pair, as `openssl ecparam -genkey` and `openssl ec -pubout` write them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(getattr(ec, curve.upper())())
    private = folder / "private.pem"
    public = folder / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_key_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_key_pair(tmp_path_factory.mktemp("other-keys"))


def write_csv(path: Path, loader: str) -> Path:
    """A scikit-learn bundled dataset as CSV, target column last."""
    from sklearn import datasets

    data = getattr(datasets, loader)()
    names = [n.replace(" ", "_").replace("(", "").replace(")", "") for n in data.feature_names]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "target"])
        for row, target in zip(data.data, data.target, strict=True):
            writer.writerow([*(repr(float(v)) for v in row), target])
    return path


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    return {
        "iris": write_csv(root / "iris.csv", "load_iris"),
        "cancer": write_csv(root / "cancer.csv", "load_breast_cancer"),
        "diabetes": write_csv(root / "diabetes.csv", "load_diabetes"),
    }


@dataclass
class StepRun:
    exit_code: int
    output: str  # stderr and stdout together, as a pod log shows them
    results: dict[str, str]


@pytest.fixture
def run_step(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Invoke ``tekton-mlops <step> ...`` in-process; return exit code, log and results."""
    counter = iter(range(1000))

    def invoke(step: str, *args: str, env: dict[str, str] | None = None) -> StepRun:
        results_dir = tmp_path / f"results-{next(counter)}"
        outcome = CliRunner().invoke(
            main, [step, *args, f"--results-dir={results_dir}"], env=env, catch_exceptions=False
        )
        results = (
            {p.name: p.read_text() for p in results_dir.iterdir()} if results_dir.exists() else {}
        )
        return StepRun(outcome.exit_code, outcome.output, results)

    return invoke
