"""Argument checks shared by every public function.

Messages follow one pattern so learners recognise them:
``<name> must be <what> in <range>, not <value>``.
Booleans are refused where an int is asked: ``True`` is not a backlog.

>>> check_int("clients", 3, 1, 10)
3
>>> check_int("clients", True, 1, 10)
Traceback (most recent call last):
TypeError: clients must be an int in 1..10, not True (bool)
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from typing import Any

__all__ = ["check_int", "check_float", "check_bool", "check_choice", "check_optional_int",
           "check_loopback", "check_port_range"]


def _shown(value: Any) -> str:
    if isinstance(value, (bool, float, str)) or value is None:
        return f"{value!r}" + (f" ({type(value).__name__})" if isinstance(value, bool) else "")
    return repr(value) if not isinstance(value, int) else str(value)


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """Return ``value`` if it is an int (not bool) with ``lo <= value <= hi``."""
    if isinstance(value, bool) or not isinstance(value, int):
        # numpy integers are fine; they index like ints
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = value.__index__()
        else:
            raise TypeError(f"{name} must be an int in {lo}..{hi}, not {_shown(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in {lo}..{hi}, not {value}")
    return int(value)


def check_optional_int(name: str, value: Any, lo: int, hi: int) -> int | None:
    """Like :func:`check_int` but ``None`` passes (meaning "kernel default")."""
    if value is None:
        return None
    try:
        return check_int(name, value, lo, hi)
    except TypeError:
        raise TypeError(f"{name} must be None or an int in {lo}..{hi}, not {_shown(value)}") from None
    except ValueError:
        raise ValueError(f"{name} must be None or an int in {lo}..{hi}, not {value}") from None


def check_float(name: str, value: Any, lo: float, hi: float, *, optional: bool = False) -> float | None:
    """Return ``float(value)`` for a finite real number in ``lo..hi`` (bool refused)."""
    if value is None and optional:
        return None
    what = ("None or " if optional else "") + f"a number in {lo:g}..{hi:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be {what}, not {_shown(value)}")
    f = float(value)
    if math.isnan(f) or not lo <= f <= hi:
        raise ValueError(f"{name} must be {what}, not {value!r}")
    return f


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (0 and 1 are accepted as False and True)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True or False, not {_shown(value)}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    choices = list(choices)
    if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices if c == value):
        shown = ", ".join(repr(c) for c in choices)
        err = ValueError if isinstance(value, type(choices[0])) else TypeError
        raise err(f"{name} must be one of {shown}, not {value!r}")
    return value


def check_loopback(name: str, address: Any) -> str:
    """Return ``address`` if it is a loopback IP (127.0.0.0/8 or ::1); tcplab sends nowhere else."""
    if not isinstance(address, str):
        raise TypeError(f"{name} must be a loopback address string (127.0.0.0/8 or ::1), not {_shown(address)}")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{name} must be a loopback address (127.0.0.0/8 or ::1), not {address!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"{name} must be a loopback address (127.0.0.0/8 or ::1), not {address!r}")
    return address


def check_port_range(name: str, value: Any) -> tuple[int, int] | None:
    """Return ``(low, high)`` for a valid ip_local_port_range, or None."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be None or a (low, high) pair of ports in 1024..65535, not {value!r}")
    lo = check_int(f"{name}[0]", value[0], 1024, 65535)
    hi = check_int(f"{name}[1]", value[1], 1024, 65535)
    if lo > hi:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, not {value!r}")
    return lo, hi
