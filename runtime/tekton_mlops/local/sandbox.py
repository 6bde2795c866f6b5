"""A step of the process runner in its own mount namespace: a pod's filesystem, the host intact.

With bubblewrap (Debian's ``bubblewrap``) each step sees:

- the host's filesystem read-only (every top-level directory bound read-only onto an
  empty root, so paths a Task mounts that the host lacks can be made inside the
  namespace without touching the host);
- writable only what a pod would have: ``/workspace`` (an emptyDir per TaskRun), the
  workspaces and volumes at their mount paths, ``/tekton/{results,home,steps}``, a
  private ``/tmp``; ``/tekton/scripts`` read-only;
- the host's network (steps reach services on 127.0.0.1) and process table (a model
  server a step starts may outlive it, as a local deployment does).

Where no namespace can be made (no bubblewrap, or the kernel refuses), :func:`find`
returns None and the runner says so once.

Example::

    sandbox = find()
    argv = sandbox.wrap(["sh", "-c", "echo hi"], mounts, "/workspace", tmp)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from tekton_mlops.local.mount import Mount

#: Top-level host paths a namespace makes for itself rather than binding.
OWN = {"proc", "dev", "tmp", "sys"}


@dataclass(frozen=True)
class Sandbox:
    bwrap: str

    def wrap(
        self,
        argv: Sequence[str],
        mounts: Sequence[Mount],
        working_dir: str,
        tmp: str,
        keep: Sequence[str] = (),
    ) -> list[str]:
        """``argv`` run inside a namespace with ``mounts`` and a private /tmp at ``tmp``.

        ``keep`` are host directories that stay visible (read-only) even under the private
        /tmp: the installation that runs the steps, the directory the run was started from.
        """
        targets = [m.target for m in mounts] + [working_dir]
        args = [self.bwrap, "--tmpfs", "/"]
        args += _root(targets)
        args += ["--proc", "/proc", "--dev", "/dev", "--bind", tmp, "/tmp"]
        for path in sorted(set(keep)):
            if PurePosixPath(path).is_relative_to("/tmp") and os.path.isdir(path):
                args += ["--ro-bind", path, path]
        if os.path.isdir("/sys"):
            args += ["--ro-bind", "/sys", "/sys"]
        for mount in sorted(mounts, key=lambda m: len(PurePosixPath(m.target).parts)):
            kind = "--ro-bind" if mount.read_only else "--bind"
            args += [kind, str(mount.source), mount.target]
        if not _under_mount(working_dir, mounts) and not os.path.isdir(working_dir):
            args += ["--dir", working_dir]
        args += ["--chdir", working_dir, "--", *argv]
        return args


def _under_mount(path: str, mounts: Sequence[Mount]) -> bool:
    return any(PurePosixPath(path).is_relative_to(m.target) for m in mounts)


def _root(targets: list[str]) -> list[str]:
    """The host's tree, read-only; a directory on the way to a target the host lacks is
    rebuilt from its entries so the target can be made inside the namespace."""
    opened: set[str] = set()
    for target in targets:
        path = PurePosixPath(target)
        for depth in range(1, len(path.parts)):
            parent = str(PurePosixPath(*path.parts[:depth]))
            child = str(PurePosixPath(*path.parts[: depth + 1]))
            if parent != "/" and os.path.isdir(parent) and not os.path.lexists(child):
                opened.add(parent)
            if not os.path.lexists(child):
                break
    return _bind_children("/", opened)


def _bind_children(directory: str, opened: set[str]) -> list[str]:
    args: list[str] = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if directory == "/" and name in OWN:
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif path in opened or any(o.startswith(path + "/") for o in opened):
            if path != "/":
                args += ["--dir", path]
            args += _bind_children(path, opened)
        else:
            args += ["--ro-bind", path, path]
    return args


@cache
def find() -> Sandbox | None:
    """bubblewrap, if it is installed and this kernel lets it make a mount namespace."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    probe = subprocess.run(
        [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
        capture_output=True,
    )
    return Sandbox(bwrap) if probe.returncode == 0 else None
