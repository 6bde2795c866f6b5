"""What confining a step costs: the same `true` started in its own mount namespace (as the
process runner starts every step: the host read-only, a private /tmp, a pod's mounts) and
started plainly, alternating, medians over many starts. Goal: under 20 ms a step."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from harness import REPO, Row, workdir

sys.path.insert(0, str(REPO / "runtime"))
from tekton_mlops.local.mount import Mount  # noqa: E402
from tekton_mlops.local.sandbox import find  # noqa: E402

ORDER = 63
STARTS = 200


def _start(argv: list[str]) -> float:
    begin = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - begin


def rows() -> list[Row]:
    sandbox = find()
    if sandbox is None:
        raise SystemExit("bubblewrap cannot make a mount namespace here (hack/system-deps.sh)")
    with workdir("bench-confine-") as work:
        for name in ("workspace", "results", "home", "steps", "scripts", "tmp", "data"):
            (work / name).mkdir()
        mounts = [
            Mount(work / "workspace", "/workspace"),
            Mount(work / "results", "/tekton/results"),
            Mount(work / "home", "/tekton/home"),
            Mount(work / "steps", "/tekton/steps"),
            Mount(work / "scripts", "/tekton/scripts", read_only=True),
            Mount(work / "data", "/workspace/data"),
        ]
        confined = sandbox.wrap(["true"], mounts, "/workspace", str(work / "tmp"), ())
        plain = ["true"]
        inside, outside = [], []
        for _ in range(STARTS):
            inside.append(_start(confined))
            outside.append(_start(plain))
    cost = (statistics.median(inside) - statistics.median(outside)) * 1000
    return [
        (
            "confining one step (bubblewrap mount namespace, 6 mounts)",
            f"{statistics.median(inside) * 1000:.1f} ms a start",
            "the same `true` unconfined",
            f"{statistics.median(outside) * 1000:.1f} ms",
            f"+{cost:.1f} ms a step (goal < 20 ms)",
        )
    ]
