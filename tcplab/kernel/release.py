"""Which kernel is this, and which :class:`~tcplab.model.profiles.KernelProfile` describes it.

The simulator follows the kernel the learner is on: ``profile=None`` in an experiment means
this kernel's profile. A kernel line tcplab has compared with its simulator (a *measured*
profile, docs/kernels.md) is used as is; any other release gets the rules its version implies
from :data:`tcplab.model.profiles.CHANGES`, and a note saying so.

>>> fit = running_profile("6.1.0-50-amd64"); fit.profile.name, fit.measured
('linux-6.1', True)
>>> running_profile("6.19.2").measured
False
>>> running_profile("6.8.0-45-generic").note  # doctest: +ELLIPSIS
'this kernel (6.8.0-45-generic) is not one tcplab has measured (linux-6.18, linux-6.12, linux-6.1); ...'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tcplab.model.profiles import PROFILES, KernelProfile, profile_for_release

__all__ = ["KernelFit", "running_release", "running_profile"]


@dataclass(frozen=True)
class KernelFit:
    """A kernel release and the profile that describes it.

    release:  ``uname -r``.
    profile:  the profile the simulator uses for it.
    measured: True when that profile was checked against this kernel line running.
    note:     a sentence for the learner when the fit is not exact (empty otherwise).
    """

    release: str
    profile: KernelProfile
    measured: bool
    note: str = ""


def running_release() -> str:
    """``uname -r`` of the kernel this process runs on."""
    return os.uname().release


def running_profile(release: str | None = None) -> KernelFit:
    """The profile of ``release`` (default: the running kernel), and how well it fits."""
    release = running_release() if release is None else release
    profile = profile_for_release(release)
    same_line = release.split(".")[:2] == [str(v) for v in profile.version]
    if profile.measured and same_line:
        return KernelFit(release, profile, True)
    measured = ", ".join(n for n, p in PROFILES.items() if p.measured)
    how = (f"its simulator profile {profile.name} applies the version differences tcplab knows of, read from "
           "the kernel source" if same_line else
           f"it is newer than all of them, so the simulator uses {profile.name}'s rules")
    note = f"this kernel ({release}) is not one tcplab has measured ({measured}); {how}"
    return KernelFit(release, profile, False, note)
