"""sign-artifact of 1 GiB (one file, then 64 files) against the hashing limit and model_signing.

Every side is a whole process (start-up included) over the same bytes, warm in the
page cache, so the figure is hashing plus what each tool adds around it. The limit
of one file is one hashlib pass; that of 64 files is hashlib over the files on all
cores (a thread per core hashing whole files: hashlib releases the GIL), since
sign-artifact hashes files in parallel too.
"""

from __future__ import annotations

from pathlib import Path

from harness import BIN, CLI, PYTHON, Row, alternate, ec_key, random_file, timed, workdir

ORDER = 30
SIZE = 1 << 30
FILES = 64
RUNS = 7
ONE_THREAD = (
    "import hashlib, pathlib, sys\n"
    "for p in sorted(pathlib.Path(sys.argv[1]).rglob('*')):\n"
    "    if p.is_file(): hashlib.file_digest(p.open('rb'), 'sha256')"
)
ALL_CORES = (
    "import hashlib, os, pathlib, sys\n"
    "from concurrent.futures import ThreadPoolExecutor\n"
    "def digest(p):\n"
    "    with p.open('rb') as f: return hashlib.file_digest(f, 'sha256').hexdigest()\n"
    "files = sorted(p for p in pathlib.Path(sys.argv[1]).rglob('*') if p.is_file())\n"
    "with ThreadPoolExecutor(os.cpu_count()) as pool: list(pool.map(digest, files))"
)


def rows() -> list[Row]:
    table: list[Row] = []
    with workdir("bench-sign-") as work:
        key = ec_key(work)
        one, many = work / "one", work / "many"
        random_file(one / "model.onnx", SIZE)
        for index in range(FILES):
            random_file(many / f"shard-{index:02d}.bin", SIZE // FILES)
        cases = (
            ("1 GiB, one file", one, ONE_THREAD, "one hashlib sha256 pass (the limit)"),
            (f"1 GiB, {FILES} files", many, ALL_CORES,
             "hashlib sha256 of the files on all cores (the limit)"),
        )  # fmt: skip
        for label, model, script, limit_name in cases:
            sig = work / f"{model.name}.sig"

            def ours(model: Path = model, sig: Path = sig) -> float:
                return timed(
                    [CLI, "sign-artifact", f"--path={model}", f"--private-key={key}",
                     f"--signature={sig}", "--attest-lineage=false",
                     f"--results-dir={work / 'results'}"]
                )  # fmt: skip

            def limit(model: Path = model, script: str = script) -> float:
                return timed([PYTHON, "-c", script, str(model)])

            def model_signing(model: Path = model, sig: Path = sig) -> float:
                return timed(
                    [str(BIN / "model_signing"), "sign", "key", str(model),
                     "--private_key", str(key), "--signature", str(sig)]
                )  # fmt: skip

            limit()  # warm the page cache
            mine, hashing = alternate(RUNS, ours, limit, label=f"sign {label} (ours, limit)")
            _, reference = alternate(RUNS, ours, model_signing, label=f"sign {label} (ours, ms)")
            table.append(
                (f"sign-artifact {label}", f"{mine:.2f} s", limit_name, f"{hashing:.2f} s",
                 f"{mine / hashing:.2f}x (goal <= {1.15 if model is one else 1.1}x)")
            )  # fmt: skip
            table.append(
                (f"sign-artifact {label}", f"{mine:.2f} s", "`model_signing sign key`",
                 f"{reference:.2f} s", f"{mine / reference:.2f}x (goal < 1x)")
            )  # fmt: skip
    return table
