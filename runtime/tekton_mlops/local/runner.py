"""Runners execute one resolved step: ``process`` here, ``podman`` in a container.

The process runner treats the runtime image as this installation: ``tekton-mlops``
and the venv's ``python3`` come first on PATH. Scripts run as Tekton runs them: a
script with a shebang is executed by that interpreter, one without by the image's
``/bin/sh`` (``images.py`` knows which). Where a mount namespace can be made
(``sandbox.py``), each step sees a pod's filesystem: its workspaces and volumes at
their mount paths, ``/tekton/…``, ``/workspace``, and the host read-only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from tekton_mlops import procfs
from tekton_mlops.local.mount import Mount

#: Exit code reported for a step stopped by its timeout (SIGKILL, as a container).
TIMEOUT_EXIT = 137


def _installation() -> tuple[str, ...]:
    """Host paths a step needs even under its private /tmp: the Python environment that
    runs ``tekton-mlops`` (an editable install's source may sit apart from the venv, and a
    venv may be a symlink) and the directory the run was started from."""
    import tekton_mlops

    source = str(Path(tekton_mlops.__file__).parents[1])
    paths = [sys.prefix, sys.base_prefix, os.getcwd(), source]
    return tuple(dict.fromkeys([*paths, *map(os.path.realpath, paths)]))


@dataclass(frozen=True)
class StepInvocation:
    """A step after substitution: what to run, where and with what."""

    name: str
    image: str
    command: list[str]
    args: list[str]
    script: str
    env: dict[str, str]
    working_dir: Path
    log_file: Path
    deadline: float | None  # time.monotonic() value, or None
    mounts: tuple[Mount, ...] = ()
    user: str = ""
    tmp_dir: Path | None = None  # the pod's private /tmp


@dataclass(frozen=True)
class StepOutcome:
    exit_code: int
    timed_out: bool
    started: float
    finished: float


class StepRunner(Protocol):
    """What the TaskRun engine needs of a runner (process or podman)."""

    in_container: bool
    #: Steps see a pod's paths (/workspace, /tekton/…, mount paths), not this machine's.
    pod_paths: bool

    def base_env(self, home: Path, results_dir: Path) -> dict[str, str]: ...

    def unsupported(self, spec: dict[str, Any], steps: list[dict[str, Any]]) -> str:
        """Why this runner cannot run the Task, or "" when it can."""
        ...

    def run(self, step: StepInvocation, scripts_dir: Path) -> StepOutcome: ...

    def start(self, step: StepInvocation, scripts_dir: Path) -> subprocess.Popen[bytes] | None: ...

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop a sidecar (and what it started): SIGTERM, then SIGKILL after 10 s."""
        ...

    def probe(self, step: StepInvocation, scripts_dir: Path) -> Callable[[list[str]], list[str]]:
        """How to run a probe's command where the sidecar runs (its mounts, its env)."""
        ...


def watch(
    process: subprocess.Popen[bytes],
    step: StepInvocation,
    started: float,
    echo: Callable[[str], None],
    kill: Callable[[], object],
) -> StepOutcome:
    """Copy a step's output to its log until it ends or its deadline passes (then ``kill``)."""
    assert process.stdout is not None
    with step.log_file.open("ab") as log:
        pump = threading.Thread(target=_pump, args=(process.stdout, log, echo), daemon=True)
        pump.start()
        timeout = None if step.deadline is None else max(0.0, step.deadline - time.monotonic())
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill()
            process.wait()
        pump.join(timeout=5)
    code = TIMEOUT_EXIT if timed_out else process.returncode
    if code < 0:  # killed by a signal: report it the way a container runtime does
        code = 128 - code
    return StepOutcome(code, timed_out, started, time.time())


def _pump(stream: IO[bytes], log: IO[bytes], echo: Callable[[str], None]) -> None:
    for line in iter(stream.readline, b""):
        log.write(line)
        log.flush()
        echo(line.decode(errors="replace").rstrip("\n"))


class ProcessRunner:
    """Runs steps as local processes, each in its own mount namespace where one can be made."""

    in_container = False

    def __init__(
        self,
        echo: Callable[[str], None],
        confine: bool = True,
        pass_env: tuple[str, ...] = (),
        host_paths: tuple[Mount, ...] = (),
    ) -> None:
        from tekton_mlops.local.sandbox import find

        self.echo = echo
        self.bin_dir = str(Path(sys.executable).parent)
        self.sandbox = find() if confine else None
        self.pass_env = pass_env
        self.host_paths = host_paths

    @property
    def pod_paths(self) -> bool:
        return self.sandbox is not None

    def note(self, step: StepInvocation, text: str) -> None:
        """A message of the runner's own, kept in the step's log."""
        with step.log_file.open("a") as log:
            log.write(text + "\n")
        self.echo(text)

    def unsupported(self, spec: dict[str, Any], steps: list[dict[str, Any]]) -> str:
        if self.sandbox is not None:
            return ""
        mounting = [
            s.get("name") for s in [*steps, *(spec.get("sidecars") or [])] if s.get("volumeMounts")
        ]
        if mounting:
            return (
                f"steps {mounting} mount volumes at absolute paths, which the process runner "
                "cannot do without a mount namespace (install bubblewrap); or run with "
                "--runner podman"
            )
        return ""

    def base_env(self, home: Path, results_dir: Path) -> dict[str, str]:
        # What a container starts with: no developer credentials leak into steps, only
        # what Tekton sets and what --pass-env names.
        keep = ("LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "PYTHONHASHSEED", *self.pass_env)
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env["PATH"] = os.pathsep.join([self.bin_dir, os.environ.get("PATH", "/usr/bin:/bin")])
        env["HOME"] = "/tekton/home" if self.pod_paths else str(home)
        env["TEKTON_RESULTS_DIR"] = "/tekton/results" if self.pod_paths else str(results_dir)
        env["PYTHONUNBUFFERED"] = "1"
        if not self.pod_paths and "TMPDIR" in os.environ:
            env["TMPDIR"] = os.environ["TMPDIR"]
        return env

    def argv(self, step: StepInvocation, scripts_dir: Path) -> list[str] | None:
        """The command line; None when an args-only step's image cannot be emulated."""
        from tekton_mlops.local.images import interpreter, shell_for, step_argv

        if step.script:
            script = scripts_dir / f"script-{step.name}"
            text = step.script
            if not self.pod_paths:
                # Without a namespace, this TaskRun's own directories stand in for Tekton's.
                text = text.replace("/tekton/results", step.env["TEKTON_RESULTS_DIR"])
                text = text.replace("/tekton/home", step.env["HOME"])
            _write_script(script, text)
            inside = f"/tekton/scripts/script-{step.name}" if self.pod_paths else str(script)
            if text.startswith("#!"):
                shebang = text.split("\n", 1)[0]
                program = interpreter(shebang, step.image, step.env.get("PATH"))
                return [*program, inside, *step.args]
            return [*shell_for(step.image), inside, *step.args]
        if step.command:
            return [*step.command, *step.args]
        return step_argv(step.image, step.args)

    def _wrapped(self, argv: list[str], step: StepInvocation, scripts_dir: Path) -> list[str]:
        if self.sandbox is None:
            return argv
        keep = _installation()
        tmp = step.tmp_dir or scripts_dir.parent / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        mounts = (
            *self.host_paths,
            *step.mounts,
            Mount(scripts_dir, "/tekton/scripts", read_only=True),
        )
        return self.sandbox.wrap(argv, mounts, str(step.working_dir), str(tmp), keep)

    def start(self, step: StepInvocation, scripts_dir: Path) -> subprocess.Popen[bytes] | None:
        """Start a sidecar in the background; None when it cannot be started."""
        argv = self.argv(step, scripts_dir)
        if not argv:
            return None
        if not self.pod_paths:
            step.working_dir.mkdir(parents=True, exist_ok=True)
        log = step.log_file.open("ab")
        try:
            process = subprocess.Popen(
                self._wrapped(argv, step, scripts_dir),
                cwd=None if self.pod_paths else step.working_dir,
                env=step.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            return None
        finally:
            log.close()
        if self.sandbox is not None:
            _wait_started(process)
        return process

    def probe(self, step: StepInvocation, scripts_dir: Path) -> Callable[[list[str]], list[str]]:
        return lambda argv: self._wrapped(argv, step, scripts_dir)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        # The sidecar leads its own process group (a new session): its children go with it.
        signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        try:
            process.wait(timeout=10)
            # Under bubblewrap the leader ends first: its ports close only with the rest.
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        except subprocess.TimeoutExpired:
            pass
        if process.poll() is None or _group_alive(process.pid):
            signal_group(process, signal.SIGKILL)
            process.wait()

    def run(self, step: StepInvocation, scripts_dir: Path) -> StepOutcome:
        argv = self.argv(step, scripts_dir)
        started = time.time()
        if not self.pod_paths:
            step.working_dir.mkdir(parents=True, exist_ok=True)
        if argv is None:
            self.note(
                step,
                f"the process runner cannot tell what image {step.image} runs without a "
                "command; give the step a command or a script, or pull the image into podman",
            )
            return StepOutcome(127, False, started, time.time())
        program = argv[0]
        if (
            not step.script
            and not program.startswith("/")
            and shutil.which(program, path=step.env.get("PATH")) is None
        ):
            self.note(step, f"{program}: command not found (image {step.image} is emulated here)")
            return StepOutcome(127, False, started, time.time())
        try:
            process = subprocess.Popen(
                self._wrapped(argv, step, scripts_dir),
                cwd=None if self.pod_paths else step.working_dir,
                env=step.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self.note(step, f"cannot start step: {exc}")
            return StepOutcome(127, False, started, time.time())
        return watch(process, step, started, self.echo, lambda: os.killpg(process.pid, 9))


def _wait_started(process: subprocess.Popen[bytes], seconds: float = 2.0) -> None:
    """Until the sidecar's own program runs (bubblewrap has made the namespace and started
    it): Kubernetes calls a container Running once its process has started, and a sidecar
    without a readiness probe is ready then, not while its namespace is still being made."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            launcher = os.readlink(f"/proc/{process.pid}/exe")
            for child in children.read_text().split():
                # Until it execs, bubblewrap's child is still bubblewrap making mounts.
                if os.readlink(f"/proc/{child}/exe") != launcher:
                    return
        except OSError:
            return  # no /proc here, or the child just ended: nothing more to wait on
        time.sleep(0.002)


def signal_group(process: subprocess.Popen[bytes], number: int) -> None:
    """Signal a process's whole group; it may have ended already."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, number)


def _group_alive(group: int) -> bool:
    """Whether a process of ``group`` still runs (zombies waiting to be reaped do not count)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = procfs.stat_fields(entry.name)
        if fields is None:
            continue
        if int(fields[procfs.PROCESS_GROUP]) == group and fields[procfs.STATE] != b"Z":
            return True
    return False


def _write_script(path: Path, text: str) -> None:
    """Write a script for its interpreter to read (see ``images.interpreter``: the runner
    never executes script files, which is what makes parallel steps safe from ETXTBSY)."""
    path.write_text(text)
    path.chmod(0o755)
