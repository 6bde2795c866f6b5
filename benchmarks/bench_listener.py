"""The listener under a burst: 1000 signed deliveries from 32 clients, the listener killed
without warning halfway and started again, every delivery sent again after the restart.

Reported: runs created against deliveries (exactly one each is the goal), runs executed,
the highest number running at once against --concurrency, and the time from the first
delivery until the last run finished. Each run is a one-step TaskRun.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import yaml
from harness import REPO, Row, workdir

sys.path.insert(0, str(REPO))
from tests.integration.test_listener_load import SECRET, TRIGGER, post, start  # noqa: E402

ORDER = 64
DELIVERIES = 1000
CONCURRENCY = 4


def rows() -> list[Row]:
    with workdir("bench-listener-") as work:
        folder, secrets = work / "trigger", work / "secrets"
        folder.mkdir()
        (folder / "burst.yaml").write_text(TRIGGER)
        (secrets / "hook").mkdir(parents=True)
        (secrets / "hook" / "token").write_text(SECRET)
        runs, log = work / "runs", work / "listen.log"
        begin = time.perf_counter()
        process, url = start(folder, secrets, runs, log, CONCURRENCY)
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda n: post(url, n), range(DELIVERIES // 2)))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process, url = start(folder, secrets, runs, log, CONCURRENCY)
        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(lambda n: post(url, n), range(DELIVERIES)))
        # Every delivery was answered: the runs it made are on disk; wait for them to end.
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            created = [
                p for p in runs.glob("build-*.yaml") if not p.name.endswith(".finished.yaml")
            ]
            finished = [p for p in created if p.with_suffix(".finished.yaml").is_file()]
            if len(finished) >= len(created):
                break
            time.sleep(0.5)
        took = time.perf_counter() - begin
        process.terminate()
        process.wait(timeout=60)
        revisions = {yaml.safe_load(p.read_text())["spec"]["params"][0]["value"] for p in created}
        running = peak = 0
        for line in log.read_text().splitlines():
            if re.search(r"build-\w+ started$", line):
                running += 1
                peak = max(peak, running)
            elif "finished with exit code" in line:
                running -= 1
            elif "resuming" in line:
                running = 0
    return [
        (
            f"listener: {DELIVERIES} deliveries, killed halfway, all sent again",
            f"{len(created)} runs for {len(revisions)} distinct deliveries; {len(finished)} ran",
            f"deliveries answered 202 after the restart: {answers.count(202)}",
            f"peak {peak} running (--concurrency {CONCURRENCY}); {took:.0f} s in all",
            f"{len(created) - DELIVERIES} duplicates, "
            f"{DELIVERIES - len(revisions)} lost (goal 0, 0)",
        )
    ]
