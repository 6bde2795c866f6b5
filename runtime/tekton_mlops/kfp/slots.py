"""ParallelFor's ``parallelism``: at most k iterations of a loop run at once.

A Tekton matrix starts all its combinations together and has no limit of its own, so the
limit is kept where every instance sees it: lock files in the run's store, in the ``kfp``
workspace that all pods of the PipelineRun mount (one claim; locally, one folder)::

    <store>/.slots/<loop>[/<outer key>]/slot-<j>     j < k: flock(2)ed while held
    <store>/.slots/<loop>[/<outer key>]/mutex        held for a moment to choose a slot

As in KFP, the limit counts *iterations*: a slot belongs to one iteration while anyone
holds it, the instances of that iteration's tasks share it (shared locks), and the
instances of other iterations wait until one of the k slots is free. An inner loop has
its slots per iteration of the outer loop, as each outer iteration runs its own inner
loop in KFP. Locks are taken outermost first, so no two instances wait on each other.

The kernel drops a lock when its holder ends however it ends (failure, timeout, kill):
a slot is never left taken by an instance that is gone. flock(2) needs a filesystem that
keeps it across the pods that share the claim (local disks, NFS).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.kfp.errors import LaunchError
from tekton_mlops.kfp.store import Key, Store, key_text

#: How often a waiting instance looks again (seconds).
POLL = 0.2


@dataclass(frozen=True)
class Limit:
    """One enclosing loop's ``parallelism``."""

    loop: str
    depth: int
    parallelism: int


def limits(plan: Mapping[str, Any]) -> list[Limit]:
    """The limits a task's plan lists (none outside loops with a parallelism)."""
    return [
        Limit(str(entry["loop"]), int(entry["depth"]), int(entry["parallelism"]))
        for entry in plan.get("slots") or []
    ]


@contextlib.contextmanager
def held(
    store: Store, wanted: Sequence[Limit], key: Key, on_wait: Callable[[str], None]
) -> Iterator[None]:
    """Hold one slot of each limit for iteration ``key`` (blocking while all are taken by
    other iterations); ``on_wait`` hears, once per limit, that this instance waits."""
    with contextlib.ExitStack() as stack:
        for limit in sorted(wanted, key=lambda limit: limit.depth):
            stack.callback(os.close, _acquire(store, limit, key, on_wait))
        yield


def _acquire(store: Store, limit: Limit, key: Key, on_wait: Callable[[str], None]) -> int:
    if len(key) < limit.depth or limit.parallelism < 1:
        raise LaunchError(
            f"iteration {key_text(key) or '(none)'} cannot take a slot of loop {limit.loop} "
            f"(depth {limit.depth}, parallelism {limit.parallelism})"
        )
    folder = store.slots_dir(limit.loop, key[: limit.depth - 1])
    iteration = str(key[limit.depth - 1])
    told = False
    while True:
        with _mutex(folder):
            claimed = _claim(folder, limit.parallelism, iteration)
        if claimed is not None:
            return claimed
        if not told:
            on_wait(
                f"all {limit.parallelism} slots of {limit.loop} are taken by other iterations "
                "(ParallelFor parallelism): waiting"
            )
            told = True
        time.sleep(POLL)


@contextlib.contextmanager
def _mutex(folder: Path) -> Iterator[None]:
    # Choosing a slot reads and sets owners: one chooser at a time. Holders never take it.
    descriptor = _open(folder / "mutex")
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _claim(folder: Path, count: int, iteration: str) -> int | None:
    """A descriptor holding (shared) a slot for ``iteration``: the one its other tasks hold,
    else a free one; None when every slot is another iteration's."""
    free: int | None = None
    for index in range(count):
        descriptor = _open(folder / f"slot-{index}")
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Held. Holders hold it shared and choosers are behind the mutex, so joining
            # this iteration's own slot does not block.
            if _owner(descriptor) == iteration:
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
                if free is not None:
                    os.close(free)
                return descriptor
            os.close(descriptor)
            continue
        if free is None:
            free = descriptor  # kept exclusive while the other slots are looked at
        else:
            os.close(descriptor)
    if free is None:
        return None
    os.ftruncate(free, 0)
    os.pwrite(free, iteration.encode(), 0)
    # Shared from now on, so this iteration's other tasks can join it.
    fcntl.flock(free, fcntl.LOCK_SH)
    return free


def _owner(descriptor: int) -> str:
    return os.pread(descriptor, 64, 0).decode(errors="replace").strip()


def _open(path: Path) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    # Steps may run as different users: every one of them must be able to open it.
    with contextlib.suppress(OSError):
        os.fchmod(descriptor, 0o666)
    return descriptor
