"""The report's figure renderer: a helper process that must never hold the step up."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import numpy as np
import pytest

from tekton_mlops.ml.render import Renderer, RenderError


def _regression_job() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=2000)
    return truth, truth + rng.normal(scale=0.3, size=2000)


def _wait_for(renderer: Renderer, answers: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while renderer.answered < answers:
        assert time.monotonic() < deadline, f"{renderer.answered} of {answers} answers came"
        time.sleep(0.02)


def test_jobs_are_drawn_while_earlier_answers_wait_uncollected() -> None:
    # Two figures' PNGs are larger than a pipe's buffer: a helper that had to wait for the
    # step to read them would not draw the next job until the step's very end.
    truth, predicted = _regression_job()
    with Renderer() as renderer:
        renderer.submit("regression_figures", truth, predicted)
        renderer.submit("regression_figures", truth, predicted * 2)
        _wait_for(renderer, 2)
        first, second = renderer.result(), renderer.result()
    assert sum(len(plot.png) for plot in first) > 65536
    assert [p.name for p in first] == [p.name for p in second]
    assert all(plot.png.startswith(b"\x89PNG\r\n\x1a\n") for plot in first + second)
    assert first[0].png != second[0].png  # answered in the order they were sent


def test_a_failed_job_is_one_error_and_the_helper_goes_on() -> None:
    truth, predicted = _regression_job()
    with Renderer() as renderer:
        renderer.submit("regression_figures", truth, predicted[:10])  # lengths differ
        renderer.submit("regression_figures", truth, predicted)
        with pytest.raises(RenderError, match="drawing the report's figures failed"):
            renderer.result()
        assert len(renderer.result()) == 2


def test_closing_with_answers_unread_ends_the_helper_at_once() -> None:
    truth, predicted = _regression_job()
    renderer = Renderer()
    for _ in range(3):
        renderer.submit("regression_figures", truth, predicted)
    started = time.monotonic()
    renderer.close()
    assert renderer._process.poll() is not None
    assert time.monotonic() - started < 5  # never the kill after 5 s


def test_a_helper_that_died_is_named_not_waited_for() -> None:
    renderer = Renderer()
    renderer._process.kill()
    renderer._process.wait()
    with contextlib.suppress(RenderError):  # the write may already meet the closed pipe
        renderer.submit("regression_figures", *_regression_job())
    with pytest.raises(RenderError, match="stopped"):
        renderer.result()
    with pytest.raises(RenderError, match="stopped"):
        renderer.result()
    renderer.close()


class _Unreadable:
    """Pickled fine by the step, it raises when the helper reads it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (int, ("not a number",))


def test_a_helper_that_crashed_is_named_with_its_last_words() -> None:
    with Renderer() as renderer:
        renderer.submit("regression_figures", _Unreadable())
        with pytest.raises(RenderError, match=r"exit code 1.*ValueError: invalid literal"):
            renderer.result()


def _stopped(renderer: Renderer) -> None:
    """Starve the helper for good: a stopped process gets no CPU, as one outrun by other
    work on a busy machine gets next to none at idle priority."""
    os.kill(renderer._process.pid, signal.SIGSTOP)


def test_the_helper_draws_at_idle_priority() -> None:
    with Renderer() as renderer:
        renderer.submit("regression_figures", *_regression_job())
        renderer.result()  # it has set its policy before reading a job
        assert os.sched_getscheduler(renderer._process.pid) == os.SCHED_IDLE


def test_a_starved_helper_is_taken_over_and_the_figures_are_the_same() -> None:
    truth, predicted = _regression_job()
    with Renderer() as reference:
        reference.submit("regression_figures", truth, predicted)
        reference.submit("regression_figures", truth, predicted * 2)
        expected = [reference.result(), reference.result()]

    renderer = Renderer(patience=0.2)
    renderer.submit("regression_figures", truth, predicted)
    _wait_for(renderer, 1)  # the first job answered by the helper, the second not
    _stopped(renderer)
    renderer.submit("regression_figures", truth, predicted * 2)
    first, second = renderer.result(), renderer.result()
    assert renderer._process.poll() is not None  # the starved helper was stopped for good
    # Later jobs are drawn in the step; a failed one is still one error.
    renderer.submit("regression_figures", truth, predicted[:10])
    with pytest.raises(RenderError, match="drawing the report's figures failed"):
        renderer.result()
    renderer.close()
    assert [[p.png for p in figures] for figures in (first, second)] == [
        [p.png for p in figures] for figures in expected
    ]


def test_a_slow_helper_that_gets_cpu_is_waited_for() -> None:
    # A helper busy drawing is not starved: the step waits for it, however long, rather
    # than draw the same figures a second time.
    rng = np.random.default_rng(5)
    truth = rng.normal(size=400_000)  # a scatter of 400,000 points: over a second
    with Renderer(patience=0.1) as renderer:
        renderer.submit("regression_figures", truth, truth + 0.1)
        started = time.monotonic()
        renderer.result()
        assert time.monotonic() - started > 0.2  # it outlived several looks
        assert renderer._process.poll() is None  # and was never taken over


def test_asking_for_an_answer_with_no_job_sent_is_an_error() -> None:
    with Renderer() as renderer, pytest.raises(RenderError, match="no figure job"):
        renderer.result()
