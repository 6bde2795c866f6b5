"""What an image runs when a step names no command, and which shell its scripts get.

Tekton looks the command up in the image's config: its ENTRYPOINT, or its CMD when
the image has no ENTRYPOINT, and appends the step's args (pkg/pod/entrypoint_lookup.go,
``imageInfo``). That is not Kubernetes' own rule (which keeps CMD as default args), and
it is what decides that ``args: [-c, "echo hi"]`` on ``busybox`` runs ``sh -c "echo hi"``.

Without containers the config cannot be read from a registry, so the families below carry
it, each from the image's own build file; digest-pinned, tagged and registry-prefixed
references (``mirror.gcr.io/ubuntu@sha256:…``, ``docker.io/library/bash:5.2``) map to the
same family. When the image is in the local podman store, its own config is read instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    shell: str  # what /bin/sh is in the image: busybox, dash or bash
    source: str

    @property
    def command(self) -> tuple[str, ...]:
        """The command Tekton gives a step without one: ENTRYPOINT, else CMD."""
        return self.entrypoint or self.cmd


#: Image families by repository name (the last path element, without tag or digest).
FAMILIES: dict[str, ImageConfig] = {
    "bash": ImageConfig(
        ("docker-entrypoint.sh",),
        ("bash",),
        "busybox",
        "tianon/docker-bash Dockerfile.template (FROM alpine; ENTRYPOINT docker-entrypoint.sh, "
        "CMD bash) and docker-entrypoint.sh",
    ),
    "busybox": ImageConfig(
        (), ("sh",), "busybox", 'docker-library/busybox Dockerfile (CMD ["sh"])'
    ),
    "alpine": ImageConfig(
        (), ("/bin/sh",), "busybox", 'alpinelinux/docker-alpine Dockerfile (CMD ["/bin/sh"])'
    ),
    "ubuntu": ImageConfig(
        (), ("/bin/bash",), "dash", 'ubuntu rootfs Dockerfile (CMD ["/bin/bash"])'
    ),
    "debian": ImageConfig((), ("bash",), "dash", 'debuerreotype Dockerfile (CMD ["bash"])'),
    "python": ImageConfig(
        (), ("python3",), "dash", 'docker-library/python Dockerfile (CMD ["python3"])'
    ),
    # Tekton's own no-op image: ko builds it with ENTRYPOINT /ko-app/nop, which exits 0.
    "nop": ImageConfig(("true",), (), "busybox", "tektoncd/pipeline cmd/nop (ko: /ko-app/nop)"),
    "tekton-mlops-runtime": ImageConfig(
        ("tekton-mlops",), (), "dash", 'runtime/Containerfile (ENTRYPOINT ["tekton-mlops"])'
    ),
}


def family(image: str) -> str:
    """``mirror.gcr.io/library/ubuntu@sha256:…`` -> ``ubuntu``; Tekton's nop-<hash> -> ``nop``."""
    name = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    return "nop" if name.startswith("nop-") or name == "nop" else name


@cache
def _local_config(image: str) -> ImageConfig | None:
    """The config of an image in the local podman store, or None."""
    if not shutil.which("podman"):
        return None
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Config}}", image],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return None
    config = json.loads(done.stdout) or {}
    known = FAMILIES.get(family(image))
    return ImageConfig(
        tuple(config.get("Entrypoint") or ()),
        tuple(config.get("Cmd") or ()),
        known.shell if known else "dash",
        f"podman image inspect {image}",
    )


def config_of(image: str, look_locally: bool = True) -> ImageConfig | None:
    """The image's config: from the local store when it is there, else from its family."""
    found = _local_config(image) if look_locally else None
    return found or FAMILIES.get(family(image))


def step_argv(image: str, args: list[str], look_locally: bool = True) -> list[str] | None:
    """What a step with only args (or nothing) runs, as Tekton resolves it; None if unknown."""
    config = config_of(image, look_locally)
    if config is None:
        return None
    command = list(config.command)
    if command == ["docker-entrypoint.sh"]:
        # The bash image's entrypoint: options (or nothing) go to bash, anything else runs.
        if not args or args[0].startswith("-"):
            return ["bash", *args]
        return list(args)
    return [*command, *args]


def shell_for(image: str) -> list[str]:
    """The interpreter of a script without a shebang: the image's /bin/sh.

    alpine, busybox and bash images have busybox's ash as /bin/sh; here Debian's busybox
    package provides the same applet (bash stands in where it is not installed).
    """
    config = FAMILIES.get(family(image))
    if config is not None and config.shell == "busybox":
        return ["busybox", "sh"] if shutil.which("busybox") else ["bash"]
    if family(image) == "bash":
        return ["bash"]
    return ["sh"]


def interpreter(shebang: str, image: str, path: str | None = None) -> list[str]:
    """The program a script's ``#!`` line names, as this machine can run it.

    The runner starts that program with the script's path, as the kernel does with a
    ``#!`` line (everything after the interpreter is its one optional argument), rather
    than executing the script file: a file another thread has just written may still be
    open for writing in a process being forked, and executing it would then fail with
    ETXTBSY; reading it through its interpreter cannot. ``#!/bin/ash``,
    ``#!/usr/bin/env ash`` and ``#!/bin/sh`` in a busybox-based image run under busybox's
    applet, as they would in the image; an interpreter at a path this machine lacks
    (``/usr/local/bin/python3``) is found by name on the step's ``path``.
    """
    program, _, argument = shebang[2:].strip().partition(" ")
    argument = argument.strip()
    name = program.rsplit("/", 1)[-1]
    wanted = argument.split(" ", 1)[0] if name == "env" and argument else name
    busybox_image = (FAMILIES.get(family(image)) or ImageConfig((), (), "", "")).shell == "busybox"
    if wanted in ("ash", "sh") and (wanted == "ash" or busybox_image) and shutil.which("busybox"):
        rest = argument.split(" ", 1)[1].strip() if name == "env" and " " in argument else ""
        if name != "env":
            rest = argument
        return ["busybox", "sh", *([rest] if rest else [])]
    if name != "env" and not os.path.exists(program):
        program = shutil.which(name, path=path) or program
    return [program, *([argument] if argument else [])]
