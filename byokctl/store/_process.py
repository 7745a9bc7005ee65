"""Who holds a lock, as a process: enough to tell later, on the same host, that it is gone.

A lock row that outlives its holder (SQLite's) records the holder's host name, pid and a
*process identity*: the kernel's boot id, the pid namespace and the process's start time
(``/proc/<pid>/stat`` field 22, clock ticks since boot). A pid alone is not enough: pids
are reused, so a new process with the old number would keep a dead run's lock forever.
The start time tells a reused pid apart; the boot id and pid namespace make sure that the
pid is one our ``/proc`` can see at all (a host that rebooted, or a container that
shares the host name but not its pid namespace, is another world: we cannot judge it and
leave its lock alone). Without ``/proc`` (not Linux) the identity is empty and only a
pid that does not exist at all counts as gone (``os.kill(pid, 0)``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as a lock records it: host, pid and (on Linux) boot/namespace/start time."""

    host: str
    pid: int
    process: str | None


def _boot_and_namespace() -> str | None:
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(_PROC / "self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat``, or ``None`` if there is no such process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': the
    # fields after it start after the *last* ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> ProcessIdentity:
    """The calling process."""
    pid = os.getpid()
    world = _boot_and_namespace()
    start = _start_time(pid) if world is not None else None
    process = f"{world}/{start}" if world is not None and start is not None else None
    return ProcessIdentity(socket.gethostname(), pid, process)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's process
    return True


def is_gone(holder: ProcessIdentity) -> bool:
    """Whether ``holder`` certainly no longer runs (False whenever that cannot be known)."""
    me = this_process()
    if holder.host != me.host or holder.pid <= 0:
        return False
    if holder.process is None or me.process is None:
        # No identity recorded (or none here): only a pid that does not exist is gone.
        return holder.process is None and me.process is None and not _pid_exists(holder.pid)
    world, _, start = holder.process.rpartition("/")
    my_world = me.process.rpartition("/")[0]
    if world != my_world:
        return False  # rebooted since, or another pid namespace: we cannot see it
    current = _start_time(holder.pid)
    return current is None or current != start
