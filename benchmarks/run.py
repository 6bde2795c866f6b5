"""Ratio benchmarks: each figure is ours against a peer measured in the same run.

    make bench            # all
    python benchmarks/run.py startup fetch

Results are printed as a markdown table and written between the markers in
benchmarks/README.md. Timings are medians of alternating runs, so a slow
moment of the machine hits both sides alike.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLI = str(BIN / "tekton-mlops")
README = REPO / "benchmarks" / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
Row = tuple[str, str, str, str, str]


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    return time.perf_counter() - start


def alternate(
    runs: int, ours: Callable[[], float], peer: Callable[[], float]
) -> tuple[float, float]:
    mine, theirs = [], []
    for _ in range(runs):
        mine.append(ours())
        theirs.append(peer())
    return statistics.median(mine), statistics.median(theirs)


def bench_startup() -> list[Row]:
    sys.path.insert(0, str(REPO / "runtime"))
    from tekton_mlops.params import step_names

    python = str(BIN / "python")
    rows = []
    for step in step_names():
        ours, peer = alternate(
            21,
            lambda s=step: timed([CLI, s, "--help"]),
            lambda: timed([python, "-c", "import click"]),
        )
        rows.append(
            (
                f"start-up `tekton-mlops {step} --help`",
                f"{ours * 1000:.0f} ms",
                "`python -c 'import click'`",
                f"{peer * 1000:.0f} ms",
                f"{ours / peer:.2f}x (goal <= 2x)",
            )
        )
    return rows


def wait_port(port: int) -> None:
    import socket

    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def bench_fetch(size: int = 1 << 30, runs: int = 5) -> list[Row]:
    s3rver = REPO / ".bench" / "node_modules" / ".bin" / "s3rver"
    aws = shutil.which("aws", path="/usr/bin")
    if not s3rver.exists() or not aws:
        raise SystemExit("run hack/system-deps.sh --bench first (needs s3rver and Debian awscli)")
    work = Path(tempfile.mkdtemp(prefix="bench-fetch-", dir=REPO / ".bench"))
    port = 4569
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "S3RVER",
        "AWS_SECRET_ACCESS_KEY": "S3RVER",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(s3rver), "-d", str(work / "store"), "-a", "127.0.0.1", "-p", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        blob = work / "blob.bin"
        with blob.open("wb") as handle:
            for _ in range(size >> 20):
                handle.write(os.urandom(1 << 20))
        expected = hashlib.sha256(blob.read_bytes()).hexdigest()
        subprocess.run(
            [aws, "--endpoint-url", endpoint, "s3", "mb", "s3://bench"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [aws, "--endpoint-url", endpoint, "s3", "cp", str(blob), "s3://bench/blob"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        blob.unlink()

        def ours() -> float:
            shutil.rmtree(work / "ours", ignore_errors=True)
            took = timed(
                [
                    CLI,
                    "fetch-data",
                    "--source=s3://bench/blob",
                    f"--output={work}/ours",
                    f"--endpoint-url={endpoint}",
                    "--addressing-style=path",
                    f"--results-dir={work}/results",
                ],
                env,
            )
            digest = (work / "results" / "file-count").read_text()
            assert digest == "1"
            return took

        def peer() -> float:
            (work / "peer.bin").unlink(missing_ok=True)
            return timed(
                [
                    aws,
                    "--endpoint-url",
                    endpoint,
                    "s3",
                    "cp",
                    "s3://bench/blob",
                    str(work / "peer.bin"),
                ],
                env,
            )

        mine, theirs = alternate(runs, ours, peer)
        manifest = (work / "ours" / ".mlops" / "manifest.json").read_text()
        assert expected in manifest, "fetch-data's digest differs from hashlib's"
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    gib = size / (1 << 30)
    return [
        (
            f"fetch-data {gib:.0f} GiB from S3 (s3rver), sha256 in the same pass",
            f"{mine:.2f} s ({size / mine / 2**20:.0f} MiB/s)",
            "`aws s3 cp` (Debian awscli 2), no digest",
            f"{theirs:.2f} s",
            f"{mine / theirs:.2f}x time (goal <= 1x)",
        )
    ]


PARALLEL = """
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: parallel}
spec:
  pipelineSpec:
    tasks:
      - name: a
        taskSpec: {steps: [{name: wait, image: alpine, script: sleep 3}]}
      - name: b
        taskSpec: {steps: [{name: wait, image: alpine, script: sleep 3}]}
"""


def _stop_local_servers(runs: Path) -> None:
    """The demo Pipeline leaves its promoted model serving; a benchmark must not."""
    for state in runs.glob("*/workspaces/shared/deployments"):
        for name in state.iterdir():
            subprocess.run(
                [CLI, "deploy-model", "--target=local", "--stop", f"--name={name.name}",
                 f"--state-dir={state}", f"--results-dir={runs / 'stopped'}"],
                check=False, capture_output=True,
            )  # fmt: skip


def bench_executor() -> list[Row]:
    import re

    work = Path(tempfile.mkdtemp(prefix="bench-executor-", dir=REPO / ".bench"))
    try:
        data = work / "cancer.csv"
        subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                (
                    "import csv,sys\nfrom sklearn.datasets import load_breast_cancer\n"
                    "d=load_breast_cancer()\nw=csv.writer(open(sys.argv[1],'w',newline=''))\n"
                    "w.writerow([n.replace(' ','_') for n in d.feature_names]+['diagnosis'])\n"
                    "w.writerows([*map(float,r),int(t)] for r,t in zip(d.data,d.target))"
                ),
                str(data),
            ],
            check=True,
        )
        sample = REPO / "catalog/pipeline/train-and-deploy/0.1/samples/run-locally.yaml"
        secrets = work / "secrets"
        (secrets / "model-signing-key").mkdir(parents=True)
        (secrets / "model-verification-key").mkdir()
        key = _ec_key(secrets / "model-signing-key")
        subprocess.run(
            ["openssl", "ec", "-in", str(key), "-pubout", "-out",
             str(secrets / "model-verification-key" / "public.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
        overheads, walls, steps_total = [], [], []
        for _ in range(3):
            start = time.perf_counter()
            done = subprocess.run(
                [
                    CLI,
                    "run",
                    str(sample),
                    "-o",
                    "none",
                    "--run-dir",
                    str(work / "runs"),
                    "--git-mirror",
                    f"https://github.com/tekton-mlops/tekton-mlops.git={REPO}",
                    "--param",
                    f"dataset-uri={data.as_uri()}",
                    "--param",
                    f"model-destination={(work / 'models').as_uri()}",
                    "--secrets-dir",
                    str(secrets),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - start
            _stop_local_servers(work / "runs")
            # The pipeline is a chain, so its critical path is the sum of its steps.
            steps = sum(float(t) for t in re.findall(r"\(exit \d+, ([\d.]+) s\)", done.stderr))
            walls.append(wall)
            steps_total.append(steps)
            overheads.append(wall - steps)
        wall, steps, overhead = (statistics.median(v) for v in (walls, steps_total, overheads))
        parallel_file = work / "parallel.yaml"
        parallel_file.write_text(PARALLEL)
        parallel = statistics.median(
            timed([CLI, "run", str(parallel_file), "-o", "none", "--run-dir", str(work / "runs")])
            for _ in range(3)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        (
            "executor overhead on the train-and-deploy demo (wall - sum of step times)",
            f"{overhead:.2f} s of {wall:.2f} s",
            "the steps themselves",
            f"{steps:.2f} s",
            f"{100 * overhead / wall:.1f}% of wall time (goal < 5%)",
        ),
        (
            "two independent 3 s tasks",
            f"{parallel:.2f} s",
            "run one after the other",
            "6.00 s",
            f"{parallel / 6:.2f}x of serial (ideal 0.50x)",
        ),
    ]


def bench_image() -> list[Row]:
    """Image size (uncompressed, and gzip layers as a registry stores them), build cold and warm."""
    import json as json_module
    import urllib.request

    env = {**os.environ, "CONTAINERS_CONF": str(REPO / "hack" / "containers.conf")}
    image = f"localhost/tekton-mlops-runtime:{__import__('tekton_mlops').__version__}"

    def podman(*args: str) -> str:
        return subprocess.run(
            ["podman", *args], check=True, capture_output=True, text=True, env=env
        ).stdout

    for local in (
        image,
        "localhost/tekton-mlops-base:bookworm",
        "localhost/tekton-mlops-build:bookworm",
    ):
        subprocess.run(["podman", "rmi", "-f", local], capture_output=True, env=env)
    cold = timed([str(REPO / "hack" / "image.sh")], env)
    warm = timed([str(REPO / "hack" / "image.sh")], env)
    uncompressed = int(podman("image", "inspect", image, "--format", "{{.Size}}"))

    work = Path(tempfile.mkdtemp(prefix="bench-image-", dir=REPO / ".bench"))
    port = 5599
    (work / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {work}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    registry = subprocess.Popen(
        ["docker-registry", "serve", str(work / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        podman("push", "--quiet", "--tls-verify=false", image, f"127.0.0.1:{port}/runtime:bench")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/runtime/manifests/bench",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json, "
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        manifest = json_module.load(urllib.request.urlopen(request))
        compressed = sum(layer["size"] for layer in manifest["layers"])
    finally:
        registry.terminate()
        registry.wait()
        shutil.rmtree(work, ignore_errors=True)
    return [
        (
            "runtime image size, uncompressed",
            f"{uncompressed / 1e6:.1f} MB",
            "the goal",
            "400 MB",
            f"{uncompressed / 4e8:.2f}x of the goal",
        ),
        (
            "runtime image size, compressed layers in a registry",
            f"{compressed / 1e6:.1f} MB",
            "uncompressed",
            f"{uncompressed / 1e6:.1f} MB",
            f"{compressed / uncompressed:.2f}x",
        ),
        (
            "make image, cold (debootstrap bases) and warm",
            f"{cold:.0f} s / {warm:.0f} s",
            "warm rebuild",
            f"{warm:.0f} s",
            f"cold is {cold / warm:.1f}x warm",
        ),
    ]


def _random_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for _ in range(size >> 20):
            handle.write(os.urandom(1 << 20))


def _ec_key(folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = folder / "private.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return key


def bench_sign(size: int = 1 << 30, runs: int = 5) -> list[Row]:
    """Signing 1 GiB (one file, then 64 files) against one hashlib pass and the model_signing CLI.

    Every side is a whole process (start-up included) over the same bytes, warm in the page
    cache, so the figure is hashing plus what each tool adds around it.
    """
    work = Path(tempfile.mkdtemp(prefix="bench-sign-", dir=REPO / ".bench"))
    python, cli_ms = str(BIN / "python"), str(BIN / "model_signing")
    key = _ec_key(work)
    one, many = work / "one", work / "many"
    _random_file(one / "model.onnx", size)
    for index in range(64):
        _random_file(many / f"shard-{index:02d}.bin", size // 64)
    hash_all = (
        "import hashlib, pathlib, sys\n"
        "for p in sorted(pathlib.Path(sys.argv[1]).rglob('*')):\n"
        "    if p.is_file(): hashlib.file_digest(p.open('rb'), 'sha256')"
    )
    rows: list[Row] = []
    try:
        for label, model in (("1 GiB, one file", one), ("1 GiB, 64 files", many)):
            sig = work / f"{model.name}.sig"

            def ours(model: Path = model, sig: Path = sig) -> float:
                return timed(
                    [CLI, "sign-artifact", f"--path={model}", f"--private-key={key}",
                     f"--signature={sig}", "--attest-lineage=false",
                     f"--results-dir={work / 'results'}"]
                )  # fmt: skip

            def limit(model: Path = model) -> float:
                return timed([python, "-c", hash_all, str(model)])

            def model_signing(model: Path = model, sig: Path = sig) -> float:
                return timed(
                    [cli_ms, "sign", "key", str(model), "--private_key", str(key),
                     "--signature", str(sig)]
                )  # fmt: skip

            limit()  # warm the page cache
            mine, hashing = alternate(runs, ours, limit)
            _, reference = alternate(runs, ours, model_signing)
            rows.append(
                (
                    f"sign-artifact {label}",
                    f"{mine:.2f} s",
                    "one hashlib sha256 pass (the limit)",
                    f"{hashing:.2f} s",
                    f"{mine / hashing:.2f}x (goal <= 1.15x)",
                )
            )
            rows.append(
                (
                    f"sign-artifact {label}",
                    f"{mine:.2f} s",
                    "`model_signing sign key`",
                    f"{reference:.2f} s",
                    f"{mine / reference:.2f}x (goal < 1x)",
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _oci_layout(layout: Path, blob: Path, digest: str, size: int) -> None:
    """``blob`` as the one layer of an image in an OCI layout, the form skopeo copies from."""
    import json

    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    os.link(blob, blobs / digest)
    empty = hashlib.sha256(b"{}").hexdigest()
    (blobs / empty).write_bytes(b"{}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": f"sha256:{empty}",
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{digest}",
                    "size": size,
                }
            ],
        }
    ).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    (blobs / manifest_digest).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{manifest_digest}",
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


def bench_push(size: int = 1 << 30, runs: int = 5) -> list[Row]:
    """push-model of a signed 1 GiB model against `skopeo copy` of the same bytes.

    Each push goes to an empty registry (started fresh, not timed), so neither side can
    skip the upload because the registry, or skopeo's blob cache, already knows the blob.
    """
    skopeo, registry_bin = shutil.which("skopeo"), shutil.which("docker-registry")
    if not skopeo or not registry_bin:
        raise SystemExit("run hack/system-deps.sh --bench first (needs skopeo, docker-registry)")
    work = Path(tempfile.mkdtemp(prefix="bench-push-", dir=REPO / ".bench"))
    port = 5591
    model = work / "model"
    _random_file(model / "model.onnx", size)
    subprocess.run(
        [CLI, "sign-artifact", f"--path={model}", f"--private-key={_ec_key(work)}",
         f"--results-dir={work / 'results'}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    digest = hashlib.sha256((model / "model.onnx").read_bytes()).hexdigest()
    _oci_layout(work / "layout", model / "model.onnx", digest, size)
    counter = iter(range(1000))

    def on_fresh_registry(command: list[str]) -> float:
        root = work / f"registry-{next(counter)}"
        root.mkdir()
        (root / "config.yml").write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
            f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
        )
        server = subprocess.Popen(
            [registry_bin, "serve", str(root / "config.yml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port)
            return timed(command)
        finally:
            server.kill()
            server.wait()
            shutil.rmtree(root, ignore_errors=True)

    def ours() -> float:
        return on_fresh_registry(
            [CLI, "push-model", f"--path={model}", f"--destination=oci://127.0.0.1:{port}/m/m:1",
             f"--results-dir={work / 'results'}"]
        )  # fmt: skip

    def peer() -> float:
        return on_fresh_registry(
            [skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{work / 'layout'}:bench",
             f"docker://127.0.0.1:{port}/m/m:1"]
        )  # fmt: skip

    try:
        mine, theirs = alternate(runs, ours, peer)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        (
            "push-model 1 GiB (signed) to an empty docker-registry",
            f"{mine:.2f} s",
            "`skopeo copy` from an OCI layout",
            f"{theirs:.2f} s",
            f"{mine / theirs:.2f}x (goal <= 1x)",
        )
    ]


def bench_serve(seconds: float = 4.0) -> list[Row]:
    """Served requests/s and p50/p99 at concurrency 1, 4, 16: ours vs KServe's Python server.

    The same ONNX model (a 100-tree random forest on iris, one row per request) behind
    `tekton-mlops serve` and behind KServe's ModelServer with a kserve.Model running the
    same onnxruntime session; the client is check-slo's load generator in this process.
    In-process onnxruntime on the same request is the limit the p50 overhead is measured
    against.
    """
    import json

    sys.path.insert(0, str(REPO / "runtime"))
    sys.path.insert(0, str(REPO))
    from tekton_mlops.serving.load import drive
    from tests.conftest import write_csv

    kserve_python = REPO / ".bench" / "kserve-venv" / "bin" / "python"
    if not kserve_python.exists():
        raise SystemExit("run hack/system-deps.sh --bench first (needs .bench/kserve-venv)")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=REPO / ".bench"))
    data = write_csv(work / "iris.csv", "load_iris")
    model = work / "model"
    subprocess.run(
        [CLI, "train-model", f"--data={data}", "--target-column=target", f"--output={model}",
         "--estimator=random-forest-classifier", '--hyperparameters={"n_estimators": 100}',
         f"--results-dir={work / 'r'}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    body = json.dumps(
        {"id": "bench", "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                     "data": [5.1, 3.5, 1.4, 0.2]}]}
    ).encode()  # fmt: skip
    servers = {
        "ours": [CLI, "serve", f"--model-path={model}", "--model-name=iris", "--port=5601"],
        "kserve": [str(kserve_python), str(REPO / "benchmarks" / "kserve_onnx_server.py"),
                   str(model / "model.onnx"), "iris", "5602"],
    }  # fmt: skip
    ports = {"ours": 5601, "kserve": 5602}
    rows: list[Row] = []
    processes = {
        k: subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for k, c in servers.items()
    }
    try:
        for port in ports.values():
            wait_port(port)
        time.sleep(1.0)
        for port in ports.values():  # warm both up
            drive(f"http://127.0.0.1:{port}", "iris", body, 200, 4)
        limit = _in_process_p50(model / "model.onnx")
        for concurrency in (1, 4, 16):
            measured = {}
            for name, port in ports.items():
                run = drive(f"http://127.0.0.1:{port}", "iris", body, 10**9, concurrency, seconds)
                assert run.errors == 0, run.error_samples
                measured[name] = run.summary()
            ours, peer = measured["ours"], measured["kserve"]
            rows.append(
                (
                    f"serve, concurrency {concurrency}: requests/s (p50 / p99 ms)",
                    f"{ours['throughput_rps']:.0f} ({ours['latency_p50_ms']:.2f} / "
                    f"{ours['latency_p99_ms']:.2f})",
                    "KServe ModelServer 0.21, same model",
                    f"{peer['throughput_rps']:.0f} ({peer['latency_p50_ms']:.2f} / "
                    f"{peer['latency_p99_ms']:.2f})",
                    f"{ours['throughput_rps'] / peer['throughput_rps']:.2f}x throughput "
                    "(goal >= 1.5x)",
                )
            )
            if concurrency == 1:
                rows.append(
                    (
                        "serve p50 over in-process onnxruntime, concurrency 1",
                        f"{ours['latency_p50_ms']:.3f} ms",
                        "session.run in process (the limit)",
                        f"{limit:.3f} ms",
                        f"+{ours['latency_p50_ms'] - limit:.3f} ms per request",
                    )
                )
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _in_process_p50(model: Path) -> float:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options)
    features = np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    timings = []
    for _ in range(2000):
        start = time.perf_counter()
        session.run(None, {"X": features})
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


BENCHMARKS: dict[str, Callable[[], list[Row]]] = {
    "startup": bench_startup,
    "fetch": bench_fetch,
    "sign": bench_sign,
    "push": bench_push,
    "serve": bench_serve,
    "executor": bench_executor,
    "image": bench_image,
}


def main(names: list[str]) -> None:
    rows: list[Row] = []
    for name in names or list(BENCHMARKS):
        print(f"running {name} ...", file=sys.stderr)
        rows += BENCHMARKS[name]()
    table = [
        "| benchmark | ours | peer | peer's figure | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    stamp = f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores by `make bench`."
    text = "\n".join([*table, "", stamp])
    print(text)
    if not names:  # only a full run replaces the table in the README
        current = README.read_text()
        head, _, rest = current.partition(BEGIN)
        _, _, tail = rest.partition(END)
        README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main(sys.argv[1:])
