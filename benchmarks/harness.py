"""What every benchmark module shares: timing, alternating medians, the Row, ports, the table.

A benchmark module (``bench_<name>.py``) imports from here and returns rows; it
never writes the README itself: ``run.py`` collects the rows and calls
:func:`update_readme`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / ".bench"  # peers' venvs, npm packages and scratch space; never committed
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
CLI = str(BIN / "tekton-mlops")
README = REPO / "benchmarks" / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

#: One line of the table: what, our figure, the peer, the peer's figure, the ratio.
Row = tuple[str, str, str, str, str]
HEADER = ("benchmark", "ours", "peer", "peer's figure", "ratio")

# Each row carries its benchmark and date in an HTML comment, invisible when rendered, so
# a run of some benchmarks replaces exactly their rows and keeps the others.
_TAG = re.compile(r"\s*<!-- bench:(?P<name>[\w-]+) (?P<date>[\d-]+) -->")


def need(found: object, what: str) -> None:
    """Stop with the one fix for a missing peer or tool."""
    if not found:
        raise SystemExit(f"run hack/system-deps.sh --bench first (needs {what})")


def timed(
    command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Wall time of a whole process (start-up included), which must succeed."""
    start = time.perf_counter()
    subprocess.run(
        list(command),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=None if env is None else dict(env),
        cwd=cwd,
    )
    return time.perf_counter() - start


def alternate(runs: int, *sides: Callable[[], float], label: str = "") -> list[float]:
    """Median of each side over ``runs`` rounds; every round runs each side once.

    Alternating puts a slow moment of a shared machine on every side alike, and the
    round's first side rotates, so no side always runs right after the same other one
    (a warm cache, a server still writing back). The spread goes to stderr, so a reader
    of the log can tell a figure from noise.
    """
    return [statistics.median(s) for s in _rounds(runs, sides, label)]


def paired(
    runs: int, base: Callable[[], float], other: Callable[[], float], label: str = ""
) -> tuple[float, float, float]:
    """Medians of ``base`` and ``other`` and the median of their ratio round by round.

    A round's two runs share the machine's moment; the ratio within a round cancels a slow
    stretch that the ratio of the two medians keeps when it falls on more of one side's
    runs than the other's. For an overhead measured in a few percent on a shared machine.
    """
    first, second = _rounds(runs, (base, other), label)
    ratios = [b / a for a, b in zip(first, second, strict=True)]
    print(f"  {label} ratios: {', '.join(f'{r:.3f}' for r in ratios)}", file=sys.stderr)
    return statistics.median(first), statistics.median(second), statistics.median(ratios)


def _rounds(runs: int, sides: Sequence[Callable[[], float]], label: str) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in sides]
    for round_ in range(runs):
        for offset in range(len(sides)):
            index = (round_ + offset) % len(sides)
            samples[index].append(sides[index]())
    for index, values in enumerate(samples):
        spread = ", ".join(f"{v:.3f}" for v in values)
        print(
            f"  {label} side {index}: median {statistics.median(values):.3f} of [{spread}]",
            file=sys.stderr,
        )
    return samples


def wait_port(
    port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port} after {timeout:.0f} s")


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A scratch folder under .bench/ (on the disk, not a tmpfs), removed afterwards."""
    BENCH.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=BENCH))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def serving(
    command: Sequence[str],
    port: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    kill: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process for the duration of a block, ready when the block starts.

    ``kill`` stops it at once (SIGKILL) when nothing it would do on a graceful stop matters.
    """
    with socket.socket() as sock:
        # Something left listening there would answer in this server's place, unnoticed.
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is in use; stop what listens there first")
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=None if env is None else dict(env),
    )
    try:
        wait_port(port, timeout, process)
        yield process
    finally:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def random_file(path: Path, size: int) -> None:
    """``size`` random bytes (a multiple of 1 MiB): nothing compresses or dedups them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for _ in range(size >> 20):
            handle.write(os.urandom(1 << 20))


def ec_key(folder: Path) -> Path:
    """A new P-256 private key in ``folder``/private.pem, the kind model signing uses."""
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


# The table ----------------------------------------------------------------------------------


def check_rows(name: str, rows: object) -> list[Row]:
    """A benchmark's ``rows()`` as Rows, or a clear error naming the benchmark."""
    if not isinstance(rows, list | tuple):
        raise TypeError(f"bench_{name}.rows() returned {type(rows).__name__}, not a list")
    checked: list[Row] = []
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) != len(HEADER):
            raise TypeError(f"bench_{name}.rows(): {row!r} is not {len(HEADER)} cells")
        cells = tuple(str(cell).replace("|", "\\|").replace("\n", " ") for cell in row)
        checked.append((cells[0], cells[1], cells[2], cells[3], cells[4]))
    return checked


def read_table(text: str) -> dict[str, tuple[str, list[str]]]:
    """The table now in the README: benchmark -> (date, its lines), in table order.

    Lines without a tag (written by hand, or before rows were tagged) are kept under
    the name "" so that no figure is dropped silently.
    """
    _, _, rest = text.partition(BEGIN)
    inside, _, _ = rest.partition(END)
    groups: dict[str, tuple[str, list[str]]] = {}
    for line in inside.splitlines():
        if not line.startswith("| ") or line.startswith(("| benchmark |", "| --- |")):
            continue
        tag = _TAG.search(line)
        name, date = (tag["name"], tag["date"]) if tag else ("", "")
        groups.setdefault(name, (date, []))[1].append(line)
    return groups


def render_row(name: str, date: str, row: Row) -> str:
    *cells, last = row
    return "| " + " | ".join([*cells, f"{last} <!-- bench:{name} {date} -->"]) + " |"


def update_readme(
    results: Mapping[str, list[Row]], order: Sequence[str], write: bool = True
) -> str:
    """Put ``results`` (benchmark -> rows) into the README table, in ``order``.

    Benchmarks not run keep their rows and dates; rows of benchmarks that no longer
    exist are dropped. Returns the table as written.
    """
    today = time.strftime("%Y-%m-%d")
    current = README.read_text()
    groups = read_table(current)
    for name, rows in results.items():
        groups[name] = (today, [render_row(name, today, row) for row in rows])
    for gone in set(groups) - set(order) - {""}:
        print(f"dropping the rows of {gone!r}: no benchmarks/bench_{gone}.py", file=sys.stderr)
    names = [n for n in order if n in groups] + ([""] if "" in groups else [])
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join("---" for _ in HEADER) + " |",
    ]
    for name in names:
        lines += groups[name][1]
    table = "\n".join([*lines, "", _stamp({n: groups[n][0] for n in names if n})])
    if write:
        head, _, rest = current.partition(BEGIN)
        _, _, tail = rest.partition(END)
        README.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    return table


def _stamp(dates: Mapping[str, str]) -> str:
    """When each part of the table was measured (a partial run leaves the rest as it was)."""
    cores = f"on {os.cpu_count()} cores"
    by_date: dict[str, list[str]] = {}
    for name, date in dates.items():
        by_date.setdefault(date, []).append(name)
    if len(by_date) <= 1:
        return f"Measured {next(iter(by_date), '?')} {cores} by `make bench`."
    parts = [f"{', '.join(names)} {date}" for date, names in sorted(by_date.items())]
    return f"Measured {cores} by `make bench` or `python benchmarks/run.py NAME`: " + (
        "; ".join(parts) + "."
    )
