"""A TCP segment as a frozen record (no bytes on the wire, just the fields that matter).

>>> s = Segment(src=40000, dst=5000, flags="SA", seq=100, ack=1)
>>> s.syn, s.ack_flag, s.fin, str(s)
(True, True, False, '40000 > 5000 [S.] seq 100 ack 1 win 65535')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Segment", "FLAG_NAMES"]

#: one-letter flag -> name (tcpdump letters, with A for ACK as in ``tcpdump``'s ``.``)
FLAG_NAMES = {"S": "SYN", "A": "ACK", "F": "FIN", "R": "RST", "P": "PSH"}


@dataclass(frozen=True)
class Segment:
    """One segment. ``flags`` is a string of letters from :data:`FLAG_NAMES` (order free).

    ``options`` is a tuple of ``(name, value)`` pairs so the record stays hashable,
    e.g. ``(("mss", 65495), ("sack_perm", True), ("ts", (1, 0)), ("wscale", 7))``.
    ``length`` is the payload size in bytes (SYN and FIN take one sequence number each).
    """

    src: int
    dst: int
    flags: str
    seq: int = 0
    ack: int = 0
    window: int = 65535
    options: tuple[tuple[str, Any], ...] = field(default=())
    length: int = 0

    def __post_init__(self) -> None:
        bad = set(self.flags) - set(FLAG_NAMES)
        if bad:
            raise ValueError(f"flags must be letters from {''.join(FLAG_NAMES)}, not {self.flags!r}")

    @property
    def syn(self) -> bool:
        return "S" in self.flags

    @property
    def ack_flag(self) -> bool:
        return "A" in self.flags

    @property
    def fin(self) -> bool:
        return "F" in self.flags

    @property
    def rst(self) -> bool:
        return "R" in self.flags

    @property
    def seq_len(self) -> int:
        """Sequence space used: payload plus one for SYN and one for FIN."""
        return self.length + self.syn + self.fin

    def option(self, name: str, default: Any = None) -> Any:
        for key, value in self.options:
            if key == name:
                return value
        return default

    def __str__(self) -> str:
        letters = "".join(f for f in "SFRP" if f in self.flags) + ("." if self.ack_flag else "")
        return f"{self.src} > {self.dst} [{letters}] seq {self.seq} ack {self.ack} win {self.window}"
