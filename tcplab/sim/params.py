"""The experiment parameter contract of docs/experiments.md, as data, with checks.

:func:`validate` fills defaults, refuses unknown keys and checks every value with the
shared ``tcplab._validate`` helpers, so ``simulate`` accepts the same dict the real
runners get.

>>> validate("accept_queue", {"backlog": 3})["clients"]
20
>>> validate("accept_queue", {"backlog": -1})
Traceback (most recent call last):
ValueError: backlog must be an int in 0..65535, not -1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcplab._validate import (check_bool, check_choice, check_float, check_int,
                              check_optional_int, check_port_range)

__all__ = ["EXPERIMENTS", "DEFAULTS", "validate", "LIFECYCLE_SCENARIOS", "ack_overflow_max_burst"]

LIFECYCLE_SCENARIOS = ("client_closes_first", "server_closes_first", "server_never_closes",
                       "abortive_close", "half_close", "simultaneous_open")


def _int(lo: int, hi: int) -> Callable[[str, Any], Any]:
    return lambda n, v: check_int(n, v, lo, hi)


def _oint(lo: int, hi: int) -> Callable[[str, Any], Any]:
    return lambda n, v: check_optional_int(n, v, lo, hi)


def _flt(lo: float, hi: float, optional: bool = False) -> Callable[[str, Any], Any]:
    return lambda n, v: check_float(n, v, lo, hi, optional=optional)


def _obool(n: str, v: Any) -> bool | None:
    return None if v is None else check_bool(n, v)


def _choice(*choices: Any) -> Callable[[str, Any], Any]:
    return lambda n, v: check_choice(n, v, choices)


# experiment -> {param: (default, checker)}
_SPEC: dict[str, dict[str, tuple[Any, Callable[[str, Any], Any]]]] = {
    "accept_queue": {
        "backlog": (5, _int(0, 65535)), "somaxconn": (None, _oint(1, 65535)),
        "clients": (20, _int(1, 1000)), "abort_on_overflow": (False, check_bool),
        "accept_after": (None, _flt(0, 30, optional=True)), "settle": (1.5, _flt(0.1, 30)),
    },
    "ack_overflow": {
        "abort_on_overflow": (False, check_bool), "syncookies": (1, _choice(0, 1, 2)),
        "backlog": (4, _int(0, 8)), "burst": (6, _int(1, 12)), "slow_motion": (6.0, _flt(2, 20)),
    },
    "syn_queue": {
        "backlog": (4, _int(0, 65535)), "clients": (60, _int(1, 1000)),
        "syncookies": (1, _choice(0, 1, 2)), "max_syn_backlog": (None, _oint(1, 65535)),
        "synack_retries": (None, _oint(0, 255)), "flood": (False, check_bool),
        "settle": (0.5, _flt(0.1, 30)),
    },
    "syn_retries": {
        "retries": (2, _int(1, 127)), "linear_timeouts": (None, _oint(0, 255)),
        "max_seconds": (60.0, _flt(0, 1e9)),
    },
    "lifecycle": {
        "scenario": ("client_closes_first", _choice(*LIFECYCLE_SCENARIOS)),
        "slow_motion": (0.0, _flt(0, 500)),
    },
    "handshake": {},
    "time_wait": {
        "connections": (20, _int(1, 5000)), "port_range": (None, check_port_range),
        "tw_reuse": (None, lambda n, v: None if v is None else check_choice(n, v, (0, 1, 2))),
        "timestamps": (None, _obool), "max_tw_buckets": (None, _oint(0, 2**31 - 1)),
        "closer": ("client", _choice("client", "server")), "duration": (3.0, _flt(0.1, 120)),
    },
    "rebind": {
        "old_reuseaddr": (True, check_bool), "new_reuseaddr": (True, check_bool),
        "closer": ("server", _choice("client", "server")), "old_listener_open": (False, check_bool),
    },
    "load": {
        "rate": (100, _flt(1, 1e6)), "accept_rate": (50, _flt(0, 100000)),
        "duration": (3.0, _flt(0.1, 3600)), "backlog": (16, _int(0, 65535)),
        "somaxconn": (None, _oint(1, 65535)), "syncookies": (None, lambda n, v: None if v is None else check_choice(n, v, (0, 1, 2))),
        "syn_retries": (None, _oint(1, 127)),
    },
}



def ack_overflow_max_burst(backlog: int) -> int:
    """Largest ack_overflow burst for ``backlog``: every SYN-ACK and ACK of the burst passes the
    slowed loopback before the 1 s retransmit timers, and at most backlog+1 SYNs are left to
    retry, so they all fit the drained queue at once (the regime the real run is built for)."""
    return min(12, 2 * (backlog + 1))


def _check_ack_overflow(p: dict[str, Any]) -> None:
    hi = ack_overflow_max_burst(p["backlog"])
    if p["burst"] > hi:
        raise ValueError(f"burst must be an int in 1..{hi} for backlog {p['backlog']} "
                         f"(at most 2 x (backlog + 1), at most 12), not {p['burst']}")


#: checks that involve several parameters, run after each one is checked on its own
_CROSS_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"ack_overflow": _check_ack_overflow}

EXPERIMENTS: tuple[str, ...] = tuple(_SPEC)
DEFAULTS: dict[str, dict[str, Any]] = {e: {k: d for k, (d, _) in spec.items()} for e, spec in _SPEC.items()}


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be one of {', '.join(EXPERIMENTS)}, not {name!r}")
    if name not in _SPEC:
        raise ValueError(f"name must be one of {', '.join(EXPERIMENTS)}, not {name!r}")
    return name


def validate(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Return a new dict with every parameter of ``name``: given values checked, defaults filled."""
    spec = _SPEC[check_name(name)]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, not {type(params).__name__}")
    unknown = sorted(set(params) - set(spec))
    if unknown:
        allowed = ", ".join(spec) or "(none)"
        raise ValueError(f"{name} has no parameter {', '.join(map(repr, unknown))} (allowed: {allowed})")
    out = {}
    for key, (default, check) in spec.items():
        value = params.get(key, default)
        out[key] = check(key, value)
    if name in _CROSS_CHECKS:
        _CROSS_CHECKS[name](out)
    return out
