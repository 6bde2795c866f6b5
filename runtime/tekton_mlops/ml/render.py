"""Figures drawn by a helper process, started early so matplotlib loads in parallel.

    >>> renderer = Renderer()                  # at once: it starts importing matplotlib
    >>> ...                                    # the step reads and scores its data meanwhile
    >>> renderer.submit("regression_figures", truth, predicted)
    >>> figures = renderer.result()            # list of plots.Plot, in submission order
    >>> renderer.close()

Importing matplotlib and drawing take about as long as a whole evaluation of a few
thousand rows, all of it in Python under one lock; a second process does it on the
other core while the step imports scikit-learn, scores the model and computes the
permutation importance. The helper runs this module (``python -m``) with the same
interpreter, reads jobs (a function of :mod:`tekton_mlops.ml.plots` and its arguments)
as pickles on stdin and answers each with a pickle on stdout; it ends when stdin closes,
so it cannot outlive the step.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from typing import IO, Any

from tekton_mlops.errors import MlopsError

#: The functions a job may name.
JOBS = frozenset(
    {"classification_figures", "regression_figures", "importance_figure", "delta_figure"}
)


class RenderError(MlopsError):
    """The figures could not be drawn."""


class Renderer:
    """A helper process drawing figures; jobs are answered in the order they are sent."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tekton_mlops.ml.render"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        # Answers are read as soon as they come: an answer of a few figures is larger than
        # a pipe's buffer, and a helper blocked writing it could not take the next job.
        self._answers: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_answers, daemon=True)
        self._reader.start()

    def _read_answers(self) -> None:
        assert self._process.stdout is not None
        try:
            while True:
                self._answers.put(pickle.load(self._process.stdout))
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            self._answers.put(None)  # the helper ended, or its pipe was closed

    def submit(self, job: str, *args: Any) -> None:
        """Send a job; it is drawn while the caller goes on."""
        if job not in JOBS:
            raise ValueError(f"no figure job {job!r}")
        assert self._process.stdin is not None
        try:
            pickle.dump((job, args), self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._stopped() from None

    @property
    def answered(self) -> int:
        """Answers that have arrived and are not collected yet."""
        return self._answers.qsize()

    def result(self) -> Any:
        """The answer to the oldest job not yet collected; a failed job raises RenderError."""
        answer = self._answers.get()
        if answer is None:
            self._answers.put(None)  # every later call fails the same way
            raise self._stopped()
        status, value = answer
        if status != "ok":
            raise RenderError(f"drawing the report's figures failed: {value}")
        return value

    def _stopped(self) -> RenderError:
        code = self._process.wait()
        return RenderError(f"the figure renderer stopped (exit code {code}) before answering")

    def close(self) -> None:
        """Stop the helper: closing its input ends it; one that hangs is killed."""
        # Its answers are always being read, so it never blocks writing one: it finishes
        # the job in hand, meets the end of its input and exits.
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # The reader meets the end of the output once the helper is gone; its file is
        # closed only then, since closing it under a blocked read would wait for the read.
        self._reader.join()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(jobs: IO[bytes], answers: IO[bytes]) -> None:
    # matplotlib loads in a thread while the main thread waits for the first job, so
    # the step's write of a large job never blocks on this import.
    def warm() -> None:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401

        from tekton_mlops.ml import plots  # noqa: F401

    loading = threading.Thread(target=warm, daemon=True)
    loading.start()
    while True:
        try:
            job, args = pickle.load(jobs)
        except EOFError:
            # Every answer is flushed: skip the interpreter's teardown (matplotlib's
            # included), which the step would otherwise wait for.
            os._exit(0)
        loading.join()
        from tekton_mlops.ml import plots

        try:
            answer: tuple[str, Any] = ("ok", getattr(plots, job)(*args))
        except Exception as exc:  # noqa: BLE001 - every failure goes back as one line
            answer = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    # The step is the critical path and the figures are wanted only at its end: drawing
    # them at a lower priority fills the cores' idle time instead of slowing the step.
    with contextlib.suppress(OSError):
        os.nice(10)
    _serve(sys.stdin.buffer, sys.stdout.buffer)
