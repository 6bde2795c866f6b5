"""Shared fixtures: real servers on 127.0.0.1, small datasets, a step runner.

A component that is missing makes its tests skip with the reason, except under
CI=true, where .ci/run installs everything and a missing component is a failure.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
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
    """A port free now, for the rare server that cannot bind port 0 and say which it got.

    Another process may take it before the server binds it: prefer ``Service`` (the
    server binds port 0 and announces its port) wherever the server allows it.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def refused_url() -> Iterator[str]:
    """An http:// URL on 127.0.0.1 where connecting is refused, for as long as it is held.

    The port is bound and never listened on, so nothing else can take it meanwhile: a
    refusal is certain, unlike a port found free and released again.
    """
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{holder.getsockname()[1]}"


def wait_http(url: str, seconds: float = 20, auth: tuple[str, str] | None = None) -> None:
    """Poll ``url`` until it answers 200: a server that answers, not one that only accepts."""
    deadline = time.monotonic() + seconds
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=1):
                return  # urlopen raises for anything but 2xx/3xx
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200: {exc}") from None
            time.sleep(0.05)  # a poll interval: what is waited for is the answer above


def answers_200(url: str) -> bool:
    """True when ``url`` answers HTTP 200 now (a server that is up and ready)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class Service:
    """A server process that binds port 0 itself and announces the port it got.

    A port chosen by the test and bound later by the server can be taken in between by
    anything else on the machine; the server's own announcement is never stale. Its stderr
    is read by a thread (so a chatty server never blocks on a full pipe) and the last lines
    are kept for the error message when it does not come up.
    """

    def __init__(self, command: list[str], announces: str, what: str, seconds: float = 30):
        self.what = what
        self.lines: deque[str] = deque(maxlen=40)
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        found: queue.Queue[int | None] = queue.Queue()
        pattern = re.compile(announces)

        def read() -> None:
            assert self.process.stderr is not None
            for raw in self.process.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                if (match := pattern.search(line)) is not None:
                    found.put(int(match.group(1)))
            found.put(None)  # the process closed its stderr: it ended

        threading.Thread(target=read, daemon=True).start()
        try:
            port = found.get(timeout=seconds)
        except queue.Empty:
            port = None
        if port is None:
            self.stop()
            raise TimeoutError(f"{what} did not start: {self.log()}")
        self.port = port

    def log(self) -> str:
        return " | ".join(self.lines) or "(no output)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def announced_port(
    process: subprocess.Popen[bytes],
    log: Path,
    announces: str,
    offset: int = 0,
    seconds: float = 30,
) -> int:
    """The port a server bound itself (port 0) and named in the log file it writes.

    For servers whose stderr goes to a file the test reads afterwards; ``offset`` skips
    what earlier runs appended to the same file. Kills the process when no port comes.
    """
    pattern = re.compile(announces)
    deadline = time.monotonic() + seconds
    while True:
        text = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
        if (match := pattern.search(text)) is not None:
            return int(match.group(1))
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            raise TimeoutError(f"no port announced ({announces!r}): {text[-2000:]}")
        time.sleep(0.02)  # a poll interval: what is waited for is the line above


@dataclass
class S3Server:
    """A moto standalone S3 server process on 127.0.0.1."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def start_moto() -> S3Server:
    # moto's server is werkzeug's: port 0 is bound by the socket, and the startup line
    # "Running on http://127.0.0.1:<port>" names the port it got.
    service = Service(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
        r"Running on http://127\.0\.0\.1:(\d+)",
        "moto S3 server",
    )
    endpoint = f"http://127.0.0.1:{service.port}"
    try:
        wait_http(f"{endpoint}/moto-api/")
    except BaseException:
        service.stop()
        raise
    return S3Server(endpoint, service.process)


@dataclass
class RegistryServer:
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1, optionally with htpasswd auth.

    It binds port 0 and logs "listening on 127.0.0.1:<port>"; a restart after stop() gets a
    new port, on the same storage.
    """

    root: Path
    htpasswd: Path | None = None
    credentials: tuple[str, str] | None = None  # to probe an auth registry for readiness
    port: int = 0
    service: Service | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.service.process if self.service is not None else None

    def start(self) -> RegistryServer:
        auth = (
            f"auth:\n  htpasswd:\n    realm: test\n    path: {self.htpasswd}\n"
            if self.htpasswd
            else ""
        )
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        # Level info for the "listening on" line; access logs off, they say nothing here.
        config.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {self.data}\n"
            f"http:\n  addr: 127.0.0.1:0\nlog:\n  level: info\n  accesslog:\n"
            f"    disabled: true\n{auth}"
        )
        self.service = Service(
            ["docker-registry", "serve", str(config)],
            r"listening on 127\.0\.0\.1:(\d+)",
            "docker-registry",
        )
        self.port = self.service.port
        try:
            # Ready means the distribution API answers: /v2/ is 200 (with credentials if any).
            wait_http(f"http://{self.host}/v2/", auth=self.credentials)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


def start_registry(
    root: Path, htpasswd: Path | None = None, credentials: tuple[str, str] | None = None
) -> RegistryServer:
    import shutil

    need(shutil.which("docker-registry") is not None, "docker-registry is not installed")
    return RegistryServer(root, htpasswd, credentials).start()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry without auth for the whole session; yields host:port."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield server.host
    finally:
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
    try:
        yield server
    finally:
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
