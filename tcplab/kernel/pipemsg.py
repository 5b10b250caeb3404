"""One framed message over a pipe between a runner and the process it forked (bounded in time).

The bottleneck path's router child reports to the runner this way, and so do experiments'
receivers inside the path's namespaces (window). A message is a pickle behind an 8-byte length:
both ends are our own processes, forked from the same interpreter.

>>> r, w = os.pipe()
>>> send_msg(w, {"ready": 1})
>>> read_msg(r, time.monotonic() + 1, what="the test's writer")
{'ready': 1}
>>> os.close(r); os.close(w)
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import time
from typing import Any

from tcplab.errors import KernelUnavailable

__all__ = ["send_msg", "read_msg"]

_HEADER = struct.Struct(">Q")


def send_msg(fd: int, obj: Any) -> None:
    """Write ``obj`` as one message (all of it: a pipe may take a large one in parts)."""
    data = pickle.dumps(obj)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def read_msg(fd: int, deadline: float, *, what: str, error: type[Exception] = KernelUnavailable) -> Any:
    """The next message on ``fd``; ``error`` names ``what`` did not answer by ``deadline``
    (time.monotonic()) or exited first."""
    buf = bytearray()
    need = None
    while need is None or len(buf) < _HEADER.size + need:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise error(f"{what} did not answer in time")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise error(f"{what} exited before answering")
        buf += chunk
        if need is None and len(buf) >= _HEADER.size:
            need = _HEADER.unpack(bytes(buf[:_HEADER.size]))[0]
    return pickle.loads(bytes(buf[_HEADER.size:_HEADER.size + need]))
