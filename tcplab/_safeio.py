"""Reading a file someone else controls, safely: what an admin's tool needs to read learners' homes.

An instructor's command or the hub's room view runs as root and reads ``~/.tcplab/*.jsonl`` in every
learner's home. A learner controls everything under their home, so a plain ``open()`` would:

* follow a symlink put where the file should be (``answers.jsonl -> /etc/shadow`` or a neighbour's
  file: root would read it and show it);
* block forever on a FIFO put there (``open()`` of a FIFO for reading waits for a writer), or on
  ``read()`` of one;
* read without end from a huge or growing file.

So every component under the home is opened with ``openat(…, O_NOFOLLOW)`` relative to its parent
(a symlinked ``.tcplab`` directory is refused too, and nothing can be swapped between a check and
the open), the file with ``O_NONBLOCK`` (a FIFO opens at once and is then refused), ``fstat`` of
the open descriptor must say a regular file owned by the home's owner (a hard link to someone
else's file is not theirs to show), and at most ``limit`` bytes are read.

>>> import os, tempfile
>>> home = tempfile.mkdtemp(); os.mkdir(os.path.join(home, ".tcplab"))
>>> with open(os.path.join(home, ".tcplab", "a.jsonl"), "w") as f:
...     _ = f.write("hello")
>>> read_in_home(home, ".tcplab/a.jsonl", limit=100)
b'hello'
>>> os.mkfifo(os.path.join(home, ".tcplab", "fifo"))
>>> read_in_home(home, ".tcplab/fifo", limit=100) is None
True
>>> os.symlink(os.path.join(home, ".tcplab", "a.jsonl"), os.path.join(home, "link"))
>>> read_in_home(home, "link", limit=100) is None
True
"""

from __future__ import annotations

import contextlib
import os
import stat

__all__ = ["read_regular", "read_in_home"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def _read_fd(fd: int, limit: int, owner: int | None) -> bytes | None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (owner is not None and st.st_uid != owner):
        return None
    chunks, left = [], limit
    while left > 0:   # bounded: at most limit bytes, and a regular file's read() does not block
        b = os.read(fd, min(left, 1 << 20))
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes | None:
    """At most ``limit`` bytes of ``path`` if it is a regular file (not a symlink, FIFO, device,
    directory), else None; None too when it cannot be opened. Its directories are trusted (the
    caller's own, e.g. ``$TCPLAB_ANSWERS``); use :func:`read_in_home` for someone else's files.

    >>> read_regular("/nonexistent/x", 10) is None
    True
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0 bytes, not {limit}")
    try:
        fd = os.open(path, _FILE_FLAGS)
    except OSError:
        return None
    try:
        return _read_fd(fd, limit, None)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_in_home(home: str | os.PathLike[str], relative: str, limit: int) -> bytes | None:
    """At most ``limit`` bytes of ``<home>/<relative>``, every component under ``home`` opened
    without following a symlink, the file only if it is a regular file owned by ``home``'s owner;
    else None (also when anything is missing or unreadable). ``home`` itself (from the password
    database or the admin's ``--homes``) may be reached through a symlink; nothing under it may.
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0 bytes, not {limit}")
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"relative must be a path below the home without '.' or '..', not {relative!r}")
    fds: list[int] = []
    try:
        fds.append(os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        owner = os.fstat(fds[0]).st_uid
        for d in parts[:-1]:
            fds.append(os.open(d, _DIR_FLAGS, dir_fd=fds[-1]))
        fds.append(os.open(parts[-1], _FILE_FLAGS, dir_fd=fds[-1]))
        return _read_fd(fds[-1], limit, owner)
    except OSError:
        return None
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
