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

The helper runs at idle priority, on CPU time the step leaves unused. Once the step
waits for an answer its own core is free, so the helper finishes at full speed; only when
other work keeps every core busy does it starve, and then the step draws what is left
itself rather than wait on it (:data:`STARVED`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from typing import IO, Any

from tekton_mlops import procfs
from tekton_mlops.errors import MlopsError

#: The functions a job may name.
JOBS = frozenset(
    {"classification_figures", "regression_figures", "importance_figure", "delta_figure"}
)


#: While the step waits, the helper is looked at this often (seconds); if it got less than
#: this share of one core meanwhile, it is starved and the step takes its jobs over.
PATIENCE = 0.5
STARVED = 0.2


class RenderError(MlopsError):
    """The figures could not be drawn."""


class Renderer:
    """A helper process drawing figures; jobs are answered in the order they are sent."""

    def __init__(self, patience: float = PATIENCE) -> None:
        self._patience = patience
        #: Jobs sent and not yet collected, oldest first: what a take-over draws.
        self._pending: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self._taken_over = False
        # What the helper says on stderr (matplotlib's warnings, a crash's traceback) is
        # kept out of the step's log, and its last line names a crash in the error.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tekton_mlops.ml.render"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
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
        self._pending.append((job, args))
        if self._taken_over:
            self._answers.put(_draw(job, args))
            return
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
        answer = self._next_answer()
        if answer is None:
            self._answers.put(None)  # every later call fails the same way
            raise self._stopped()
        self._pending.popleft()
        status, value = answer
        if status != "ok":
            raise RenderError(f"drawing the report's figures failed: {value}")
        return value

    def _next_answer(self) -> tuple[str, Any] | None:
        if not self._pending:
            raise RenderError("no figure job is waiting for an answer")
        used = _cpu_seconds(self._process.pid)
        while True:
            try:
                return self._answers.get(timeout=self._patience)
            except queue.Empty:
                now = _cpu_seconds(self._process.pid)
                if used is not None and now is not None and now - used < STARVED * self._patience:
                    self._take_over()
                used = now

    def _take_over(self) -> None:
        """Stop the starved helper and draw its unanswered jobs here, in order."""
        self._process.kill()
        self._process.wait()
        self._reader.join()  # it has queued every answer that came, then None
        answered: list[tuple[str, Any]] = []
        while (answer := self._answers.get()) is not None:
            answered.append(answer)
        for answer in answered:
            self._answers.put(answer)
        for job, args in list(self._pending)[len(answered) :]:
            self._answers.put(_draw(job, args))
        self._taken_over = True

    def _stopped(self) -> RenderError:
        code = self._process.wait()
        said: list[str] = []
        if not self._errors.closed:
            self._errors.seek(0)
            said = self._errors.read().decode(errors="replace").strip().splitlines()
        reason = f": {said[-1][:300]}" if said else ""
        return RenderError(
            f"the figure renderer stopped (exit code {code}) before answering{reason}"
        )

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
        self._errors.close()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used, from /proc; None where that cannot be read."""
    fields = procfs.stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[procfs.USER_TICKS]) + int(fields[procfs.SYSTEM_TICKS])
    return ticks / os.sysconf("SC_CLK_TCK")


def _draw(job: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    from tekton_mlops.ml import plots

    try:
        return ("ok", getattr(plots, job)(*args))
    except Exception as exc:  # noqa: BLE001 - every failure goes back as one line
        return ("error", f"{type(exc).__name__}: {exc}")


def _serve(jobs: IO[bytes], answers: IO[bytes]) -> None:
    # What reading a job imports (numpy for its arrays, plots for its classes) is imported
    # here first: the same package imported by two threads at once can hand one of them a
    # half-initialised module ("cannot import name ... from partially initialized module").
    from tekton_mlops.ml import plots  # noqa: F401

    # matplotlib loads in a thread while the main thread waits for the first job, so
    # the step's write of a large job never blocks on this import.
    def warm() -> None:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401

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
        pickle.dump(_draw(job, args), answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


def _yield_to_the_step() -> None:
    """Run only on CPU time the step leaves idle.

    The step is the critical path and the figures are wanted only at its end. Under
    SCHED_IDLE the kernel runs this process only when a core would otherwise idle and
    preempts it as soon as a thread of the step wakes; a nice value alone still takes
    a share of the step's core at each wake-up (a niced busy loop beside the step slows it
    by 5%, a SCHED_IDLE one by nothing: ``python benchmarks/run.py report``). Lowering
    one's own policy needs no privilege; where it is refused, a nice value is next best.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(10)


if __name__ == "__main__":
    _yield_to_the_step()
    _serve(sys.stdin.buffer, sys.stdout.buffer)
