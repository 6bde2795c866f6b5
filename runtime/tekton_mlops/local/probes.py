"""Sidecar readiness: Kubernetes' exec, tcpSocket and httpGet probes, polled locally."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

READY_TIMEOUT = 60.0


def _probe_once(probe: dict[str, Any], wrap: Callable[[list[str]], list[str]]) -> bool:
    if "exec" in probe:
        # An exec probe runs in the sidecar's container: the runner says how to get there.
        command = wrap(list(probe["exec"].get("command") or []))
        timeout = float(probe.get("timeoutSeconds") or 1) + 1
        try:
            return subprocess.run(command, capture_output=True, timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False
    if "tcpSocket" in probe:
        target = probe["tcpSocket"]
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex((target.get("host") or "127.0.0.1", int(target["port"]))) == 0
    if "httpGet" in probe:
        import urllib.request  # here, not at the top: it costs every run ~20 ms to import

        target = probe["httpGet"]
        scheme = str(target.get("scheme", "HTTP")).lower()
        host = target.get("host") or "127.0.0.1"
        url = f"{scheme}://{host}:{target['port']}{target.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return 200 <= int(response.status) < 400
        except OSError:
            return False
    return True


def wait_ready(
    probe: dict[str, Any] | None,
    process: Any,
    wrap: Callable[[list[str]], list[str]] = lambda argv: argv,
) -> bool:
    """True once the probe passes (at once without one); False if the sidecar exits first."""
    if not probe:
        return True
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _probe_once(probe, wrap):
            return True
        time.sleep(0.1)
    return False
