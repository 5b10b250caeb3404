"""How long the calling thread waited for a CPU: the scheduler's lag, as the kernel counts it.

``/proc/thread-self/schedstat`` holds three numbers (``proc_pid_schedstat()``, fs/proc/base.c):
time on a CPU (ns), time spent *runnable but waiting* on a run queue (ns, ``sched_info.run_delay``)
and the number of time slices. The second is the figure a timing measurement needs: a request
timed while its thread waited 30 ms for a CPU took 30 ms longer for the host's sake, not the
kernel's TCP. Sleeping (waiting for a packet or a timer) does not count. Needs CONFIG_SCHED_INFO
(set by every distribution kernel; then the file exists).

>>> d = run_delay_s()
>>> d is None or d >= 0.0
True
"""

from __future__ import annotations

__all__ = ["run_delay_s"]

_PATH = "/proc/thread-self/schedstat"


def run_delay_s() -> float | None:
    """Seconds the calling thread has spent waiting on a run queue since it started, or None
    where the kernel does not keep the figure (no CONFIG_SCHED_INFO, or no /proc)."""
    try:
        with open(_PATH, "rb") as f:
            fields = f.read().split()
        return int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None
