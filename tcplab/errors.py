"""The one exception tree of tcplab.

Everything tcplab raises on purpose is a :class:`TcpLabError`, except argument
errors, which are the built-in :class:`ValueError` / :class:`TypeError` so that
``except ValueError`` works as users expect, and an ``OSError`` of a socket call the
caller asked for (``SocketSet.connect``), passed on as the kernel gave it::

    TcpLabError
     ├── ParseError              kernel text (/proc, sysctl, sock_diag) did not parse
     ├── KernelUnavailable       a kernel facility cannot be used here (reason attached)
     │    ├── NamespaceUnavailable   no private network namespace can be made
     │    ├── SysctlUnavailable      a sysctl cannot be set in the private namespace (not shown there)
     │    └── SockDiagUnavailable    NETLINK_SOCK_DIAG cannot be opened
     ├── NamespaceError          code run by in_namespace() failed (child traceback attached)
     │    └── NamespaceTimeout       ... or did not finish in time and was killed
     ├── RealModeUnavailable     mode="real" was asked for but cannot run; says why
     ├── ExperimentError         an experiment could not complete (harness failure)
     ├── EventLimitExceeded      the simulator scheduled more events than max_events (also a RuntimeError)
     └── IllegalTransition       an event the TCP state table forbids in this state (also a ValueError;
                                 defined in tcplab.model.states, next to the table it reads)

tests/test_architecture.py checks that this drawing is the package's: every exception
class tcplab defines is here, under the parent it really has.

Argument errors name the parameter, the allowed range and the value::

    >>> from tcplab._validate import check_int
    >>> check_int("backlog", -1, 0, 65535)
    Traceback (most recent call last):
    ValueError: backlog must be an int in 0..65535, not -1
"""

from __future__ import annotations

__all__ = [
    "TcpLabError",
    "ParseError",
    "KernelUnavailable",
    "NamespaceUnavailable",
    "SockDiagUnavailable",
    "SysctlUnavailable",
    "NamespaceError",
    "NamespaceTimeout",
    "RealModeUnavailable",
    "ExperimentError",
    "EventLimitExceeded",
]


class TcpLabError(Exception):
    """Root of every exception tcplab raises on purpose."""


class ParseError(TcpLabError):
    """Kernel text did not parse. Names the source, line number and line.

    >>> str(ParseError("bad field", source="/proc/net/tcp", lineno=3, line="x"))
    "/proc/net/tcp:3: bad field: 'x'"
    """

    def __init__(self, message: str, *, source: str = "<text>", lineno: int | None = None,
                 line: str | None = None) -> None:
        self.source = source
        self.lineno = lineno
        self.line = line
        self.message = message
        where = source if lineno is None else f"{source}:{lineno}"
        text = f"{where}: {message}"
        if line is not None:
            text += f": {line!r}"
        super().__init__(text)

    def __reduce__(self):  # keep the keyword-only fields across pickling (in_namespace)
        return (_rebuild_parse_error, (self.message, self.source, self.lineno, self.line))


def _rebuild_parse_error(message, source, lineno, line):
    return ParseError(message, source=source, lineno=lineno, line=line)


class KernelUnavailable(TcpLabError):
    """A kernel facility cannot be used on this machine; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NamespaceUnavailable(KernelUnavailable):
    """No private network namespace can be created here (neither user+net nor net as root)."""


class SysctlUnavailable(KernelUnavailable):
    """A sysctl cannot be set in the private namespace: this kernel does not show it there
    (global, or hidden from a namespace an unprivileged user owns)."""


class SockDiagUnavailable(KernelUnavailable):
    """NETLINK_SOCK_DIAG could not be opened, so listener Send-Q is unknown."""


class NamespaceError(TcpLabError):
    """The function run by :func:`tcplab.in_namespace` raised something that could not be
    re-raised as itself, or the child died. ``child_traceback`` holds the child's text."""

    def __init__(self, message: str, child_traceback: str = "") -> None:
        self.child_traceback = child_traceback
        super().__init__(message if not child_traceback else f"{message}\n--- child traceback ---\n{child_traceback}")

    def __reduce__(self):
        return (type(self), (self.args[0].split("\n--- child traceback ---\n")[0], self.child_traceback))


class NamespaceTimeout(NamespaceError):
    """The namespace child did not finish within its timeout and was killed."""


class RealModeUnavailable(TcpLabError):
    """``mode="real"`` cannot run here; the message says why (use mode="auto" or "sim")."""


class ExperimentError(TcpLabError):
    """An experiment's harness failed (not a kernel result: those go in the Result)."""


class EventLimitExceeded(TcpLabError, RuntimeError):
    """The simulator scheduled more events than its ``max_events`` allows (a runaway run is
    stopped, not left to fill memory)."""
