"""Reading a process's status line from Linux's /proc.

>>> fields = stat_fields(os.getpid())
>>> fields[0]            # the state: b"R", b"S", b"Z" (a zombie) ...
"""

from __future__ import annotations

#: Indices in :func:`stat_fields` (proc(5) numbers fields from 1, and the first two,
#: pid and command name, are not in the list).
STATE, PROCESS_GROUP, USER_TICKS, SYSTEM_TICKS = 0, 2, 11, 12


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name; None where there is no
    such process or no /proc.

    The command name is in parentheses and may itself hold spaces and parentheses, so
    the line is split after its last ")".
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
