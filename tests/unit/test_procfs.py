"""Reading /proc/<pid>/stat, whose command name may hold spaces and parentheses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tekton_mlops import procfs


def test_fields_after_a_command_name_with_spaces_and_parentheses() -> None:
    # Only a process itself may rename itself.
    rename = "open('/proc/self/comm', 'w').write('x) 1 2 (y'); import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", rename], start_new_session=True)
    try:
        comm = Path(f"/proc/{child.pid}/comm")
        deadline = time.monotonic() + 10
        while comm.read_text().strip() != "x) 1 2 (y":
            assert time.monotonic() < deadline, "the child never renamed itself"
            time.sleep(0.01)
        fields = procfs.stat_fields(child.pid)
        assert fields is not None
        assert fields[procfs.STATE] in (b"S", b"R")
        assert int(fields[procfs.PROCESS_GROUP]) == os.getpgid(child.pid) == child.pid
        assert int(fields[procfs.USER_TICKS]) >= 0
    finally:
        child.kill()
        child.wait()


def test_no_such_process_is_none() -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names nothing now
    assert procfs.stat_fields(child.pid) is None
