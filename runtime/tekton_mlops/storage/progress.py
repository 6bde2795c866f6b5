"""Progress lines for long transfers: one line per interval, never a bar.

A pod's log is read later, not watched; a line every few seconds with percent,
amounts and rate says everything. ``TEKTON_MLOPS_PROGRESS_INTERVAL`` sets the
interval in seconds (0 logs every chunk, for tests).
"""

from __future__ import annotations

import logging
import os
import threading
import time


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop returns first


class Progress:
    """Counts bytes and logs periodic percent lines (thread-safe)."""

    def __init__(self, label: str, total: int, log: logging.Logger) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._log = log
        self._interval = float(os.environ.get("TEKTON_MLOPS_PROGRESS_INTERVAL", "5"))
        self._start = time.monotonic()
        self._last = self._start
        self._lock = threading.Lock()

    def advance(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last >= self._interval and self.done < self.total:
                self._last = now
                self._log.info("%s %s", self.label, self._line(now))

    def finish(self) -> None:
        now = time.monotonic()
        self._log.info("%s %s in %.1f s", self.label, self._line(now), now - self._start)

    def _line(self, now: float) -> str:
        percent = 100 * self.done / self.total if self.total else 100.0
        rate = self.done / max(now - self._start, 1e-6)
        return (
            f"{percent:.0f}% ({human_bytes(self.done)} of {human_bytes(self.total)}, "
            f"{human_bytes(rate)}/s)"
        )
