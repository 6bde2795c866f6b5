"""Runners execute one resolved step: ``process`` on this machine (``podman`` to come).

The process runner treats the runtime image as this installation: ``tekton-mlops``
and the venv's ``python3`` come first on PATH. Scripts run as Tekton runs them:
a script with a shebang is executed as a file, one without runs under ``sh``.
Steps of other images run their command or script with the local tools, and
the log says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

#: Exit code reported for a step stopped by its timeout (SIGKILL, as a container).
TIMEOUT_EXIT = 137

#: What common images run when a step gives only args: their ENTRYPOINT (empty when the image
#: has none, so the first arg is the program, as Kubernetes runs it).
ENTRYPOINTS: dict[str, list[str]] = {
    "bash": ["bash"],
    "busybox": [],
    "alpine": [],
    "ubuntu": [],
    "debian": [],
    "python": [],
    "runtime": ["tekton-mlops"],  # this project's runtime image
}


def _image_name(image: str) -> str:
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


def image_entrypoint(image: str) -> list[str] | None:
    """The emulated ENTRYPOINT of an image, or None when it is unknown."""
    return ENTRYPOINTS.get(_image_name(image))


def script_shell(image: str) -> list[str]:
    """The shell that runs a script without a shebang in that image.

    alpine and busybox run busybox ash, which accepts bash's [[ ]]; where busybox is not
    installed here, bash is the closer stand-in than dash.
    """
    name = _image_name(image)
    if name == "bash":
        return ["bash"]
    if name in ("alpine", "busybox"):
        return ["busybox", "sh"] if shutil.which("busybox") else ["bash"]
    return ["sh"]


@dataclass(frozen=True)
class Mount:
    """A local directory and where a container sees it."""

    source: Path
    target: str
    read_only: bool = False


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


@dataclass(frozen=True)
class StepOutcome:
    exit_code: int
    timed_out: bool
    started: float
    finished: float


class StepRunner(Protocol):
    """What the TaskRun engine needs of a runner (process or podman)."""

    in_container: bool

    def base_env(self, home: Path, results_dir: Path) -> dict[str, str]: ...

    def unsupported(self, spec: dict[str, Any], steps: list[dict[str, Any]]) -> str:
        """Why this runner cannot run the Task, or "" when it can."""
        ...

    def run(self, step: StepInvocation, scripts_dir: Path) -> StepOutcome: ...

    def start(self, step: StepInvocation, scripts_dir: Path) -> subprocess.Popen[bytes] | None: ...


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
    """Runs steps as local processes."""

    #: Paths in a step are this machine's paths, not a container's.
    in_container = False

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.bin_dir = str(Path(sys.executable).parent)

    def note(self, step: StepInvocation, text: str) -> None:
        """A message of the runner's own, kept in the step's log."""
        with step.log_file.open("a") as log:
            log.write(text + "\n")
        self.echo(text)

    def unsupported(self, spec: dict[str, Any], steps: list[dict[str, Any]]) -> str:
        mounting = [
            s.get("name") for s in [*steps, *(spec.get("sidecars") or [])] if s.get("volumeMounts")
        ]
        if mounting:
            return (
                f"steps {mounting} mount volumes at absolute paths, which the process runner "
                "cannot do; run with --runner podman"
            )
        return ""

    def base_env(self, home: Path, results_dir: Path) -> dict[str, str]:
        # A container starts with little: no developer credentials leak into steps.
        keep = ("LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "PYTHONHASHSEED")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env["PATH"] = os.pathsep.join([self.bin_dir, os.environ.get("PATH", "/usr/bin:/bin")])
        env["HOME"] = str(home)
        env["TEKTON_RESULTS_DIR"] = str(results_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def argv(self, step: StepInvocation, scripts_dir: Path) -> list[str] | None:
        """The command line; None when an args-only step's image cannot be emulated."""
        if step.script:
            script = scripts_dir / f"script-{step.name}"
            text = step.script
            # Scripts may name Tekton's mounts directly; this step's own directories stand in.
            text = text.replace("/tekton/results", step.env["TEKTON_RESULTS_DIR"])
            text = text.replace("/tekton/home", step.env["HOME"])
            script.write_text(text)
            script.chmod(0o755)
            if text.startswith("#!"):
                return [str(script), *step.args]
            return [*script_shell(step.image), str(script), *step.args]
        if step.command:
            return [*step.command, *step.args]
        entrypoint = image_entrypoint(step.image)
        return None if entrypoint is None else [*entrypoint, *step.args]

    def start(self, step: StepInvocation, scripts_dir: Path) -> subprocess.Popen[bytes] | None:
        """Start a sidecar in the background; None when it cannot be started."""
        argv = self.argv(step, scripts_dir)
        if not argv:
            return None
        step.working_dir.mkdir(parents=True, exist_ok=True)
        log = step.log_file.open("ab")
        try:
            return subprocess.Popen(
                argv,
                cwd=step.working_dir,
                env=step.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            return None
        finally:
            log.close()

    def run(self, step: StepInvocation, scripts_dir: Path) -> StepOutcome:
        argv = self.argv(step, scripts_dir)
        started = time.time()
        step.working_dir.mkdir(parents=True, exist_ok=True)
        if argv is None:
            self.note(
                step,
                f"the process runner cannot emulate the entrypoint of {step.image}; "
                "give the step a command or a script",
            )
            return StepOutcome(127, False, started, time.time())
        if not step.script and argv and shutil.which(argv[0], path=step.env.get("PATH")) is None:
            self.note(
                step, f"{argv[0]}: command not found (image {step.image} is emulated locally)"
            )
            return StepOutcome(127, False, started, time.time())
        try:
            process = subprocess.Popen(
                argv,
                cwd=step.working_dir,
                env=step.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self.note(step, f"cannot start step: {exc}")
            return StepOutcome(127, False, started, time.time())
        return watch(process, step, started, self.echo, lambda: os.killpg(process.pid, 9))
