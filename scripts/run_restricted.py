#!/usr/bin/env python3
"""Run a command the way a Binder or locked-down JupyterHub learner runs the course:
as a non-root user, with namespaces really forbidden.

    sudo python3 scripts/run_restricted.py CMD [ARGS...]
    sudo python3 scripts/run_restricted.py --allow-namespaces CMD [ARGS...]

``--allow-namespaces``: the learner of a host that allows unprivileged user namespaces (Debian's
default): the same non-root user without capabilities, but allowed to make its own user and network
namespaces. It gets no real-time priority (``sched_setscheduler(SCHED_FIFO)`` needs CAP_SYS_NICE in
the initial user namespace), so notebook 15's delay line runs at normal priority, as on a hub.

How (root only, nothing on the host changes): the command runs in a new *user*
namespace whose own limits user.max_user_namespaces and user.max_net_namespaces
are set to 0, so any unshare() inside fails with ENOSPC, exactly as on a host that
forbids namespaces. Inside, the command runs as uid/gid 1000 (a non-root user, no
capabilities). uid 1000 inside is mapped to uid 0 outside only so that files under
/root (where the interpreter lives on this CI machine) stay readable; the process
has no capabilities at all.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000
INNER_USER = 1000


def main(argv: list[str]) -> int:
    allow = bool(argv) and argv[0] == "--allow-namespaces"
    if allow:
        argv = argv[1:]
    if not argv:
        print("usage: run_restricted.py [--allow-namespaces] CMD [ARGS...]", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("run_restricted.py: needs root to write the uid map (you are already restricted: run CMD directly)",
              file=sys.stderr)
        return 2
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(mapped_w)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUSER) != 0:
            os._exit(111)
        os.write(ready_w, b"x")
        os.read(mapped_r, 1)  # wait for the parent to write our maps
        if not allow:
            for name in ("max_user_namespaces", "max_net_namespaces"):
                with open(f"/proc/sys/user/{name}", "w") as f:
                    f.write("0")
        os.setresgid(INNER_USER, INNER_USER, INNER_USER)
        os.setresuid(INNER_USER, INNER_USER, INNER_USER)
        os.environ["HOME"] = os.environ.get("HOME", "/tmp")
        os.execvp(argv[0], argv)
    os.close(ready_w)
    os.close(mapped_r)
    if os.read(ready_r, 1) != b"x":
        os.waitpid(pid, 0)
        print("run_restricted.py: unshare(CLONE_NEWUSER) failed", file=sys.stderr)
        return 1
    # inner 0 -> an unused outer uid (only to own the namespace), inner 1000 -> outer 0 (file access)
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"0 100000 1\n{INNER_USER} 0 1\n")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"0 100000 1\n{INNER_USER} 0 1\n")
    os.write(mapped_w, b"x")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
