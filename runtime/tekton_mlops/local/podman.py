"""The podman runner: every step in its own container, mounted as Tekton mounts it.

Workspaces appear at ``/workspace/<name>`` (or their ``mountPath``), results at
``/tekton/results``, scripts at ``/tekton/scripts`` and the home directory at
``/tekton/home``; a workspace a Task declares ``readOnly`` is mounted read-only.
Nothing is pulled: an image must exist locally, or be mapped to one with
``--image-map REF=LOCAL`` (the catalog's pinned runtime image maps to the one
``make image`` built).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tekton_mlops.local.mount import Mount
from tekton_mlops.local.runner import StepInvocation, StepOutcome, watch

CONTAINERS_CONF = Path(__file__).resolve().parents[3] / "hack" / "containers.conf"


class PodmanRunner:
    """Runs steps with ``podman run``; the same interface as ProcessRunner."""

    in_container = True
    pod_paths = True

    def __init__(
        self,
        echo: Callable[[str], None],
        image_map: dict[str, str],
        host_paths: tuple[Mount, ...] = (),
    ) -> None:
        self.echo = echo
        self.image_map = image_map
        self.host_paths = host_paths
        self.env = dict(os.environ)
        if CONTAINERS_CONF.is_file() and "CONTAINERS_CONF" not in self.env:
            self.env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)

    def note(self, step: StepInvocation, text: str) -> None:
        with step.log_file.open("a") as log:
            log.write(text + "\n")
        self.echo(text)

    def unsupported(self, spec: dict[str, Any], steps: list[dict[str, Any]]) -> str:
        return ""

    def base_env(self, home: Path, results_dir: Path) -> dict[str, str]:
        # As in a pod: the image's own environment, plus what Tekton sets.
        return {"HOME": "/tekton/home", "TEKTON_RESULTS_DIR": "/tekton/results"}

    def image(self, reference: str) -> str | None:
        local = self.image_map.get(reference, reference)
        exists = subprocess.run(["podman", "image", "exists", local], env=self.env)
        return local if exists.returncode == 0 else None

    def argv(self, step: StepInvocation, scripts_dir: Path, image: str, name: str) -> list[str]:
        argv = [
            "podman",
            "--runtime",
            "runc",
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "--workdir",
            str(step.working_dir),
        ]
        if step.user:
            argv += ["--user", step.user]
        for mount in (*self.host_paths, *step.mounts):
            mode = "ro" if mount.read_only else "rw"
            argv += ["--volume", f"{mount.source}:{mount.target}:{mode}"]
        argv += ["--volume", f"{scripts_dir}:/tekton/scripts:ro"]
        for key, value in step.env.items():
            argv += ["--env", f"{key}={value}"]
        if step.script:
            script = scripts_dir / f"script-{step.name}"
            script.write_text(step.script)
            script.chmod(0o755)
            inside = f"/tekton/scripts/script-{step.name}"
            if step.script.startswith("#!"):
                return [*argv, "--entrypoint", inside, image, *step.args]
            return [*argv, "--entrypoint", "sh", image, inside, *step.args]
        if step.command:
            return [*argv, "--entrypoint", step.command[0], image, *step.command[1:], *step.args]
        return [*argv, image, *step.args]  # the image's own entrypoint

    def run(self, step: StepInvocation, scripts_dir: Path) -> StepOutcome:
        started = time.time()
        image = self.image(step.image)
        if image is None:
            self.note(
                step,
                f"image {step.image} is not available locally and nothing is pulled "
                "here; build it (make image) or map it with --image-map REF=LOCAL",
            )
            return StepOutcome(127, False, started, time.time())
        name = f"tekton-mlops-{uuid.uuid4().hex[:12]}"
        process = subprocess.Popen(
            self.argv(step, scripts_dir, image, name),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def kill() -> object:
            return subprocess.run(
                ["podman", "rm", "--force", "--time", "0", name], env=self.env, capture_output=True
            )

        return watch(process, step, started, self.echo, kill)

    def probe(self, step: StepInvocation, scripts_dir: Path) -> Callable[[list[str]], list[str]]:
        # The same mounts in a fresh container of the sidecar's image: its files are shared.
        image = self.image(step.image) or step.image
        name = f"tekton-mlops-probe-{uuid.uuid4().hex[:12]}"

        def wrap(argv: list[str]) -> list[str]:
            base = self.argv(step, scripts_dir, image, name)
            cut = base.index(image)
            return [*base[:cut], "--entrypoint", argv[0], image, *argv[1:]]

        return wrap

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        process.terminate()  # podman passes the signal on to the container
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def start(self, step: StepInvocation, scripts_dir: Path) -> subprocess.Popen[bytes] | None:
        image = self.image(step.image)
        if image is None:
            return None
        name = f"tekton-mlops-{uuid.uuid4().hex[:12]}"
        log = step.log_file.open("ab")
        try:
            return subprocess.Popen(
                self.argv(step, scripts_dir, image, name),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
