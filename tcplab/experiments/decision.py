"""Before anything runs: can this experiment run on the real kernel here, and if not, why;
and which kernel the simulator models. One function, :func:`plan`, asked once per run.

The checks, in order (the first that says no is the answer):

1. the parameters are beyond what the real runner can do (``Param.real_hi``, the spec's
   ``real_refusal``: too many fds, too long) -> ValueError in mode="real";
2. this host cannot (the spec's ``host_limit``: e.g. ``net.core.rmem_max`` too small);
3. a sysctl asked for does not exist on this kernel (``tcp_syn_linear_timeouts`` before 6.5):
   then the simulator models the newest kernel, which has it.

What only an attempt can tell (no private namespace, a sysctl the namespace hides, a run the
host disturbed) is decided in :func:`tcplab.experiments._mode.run`, the one place that runs.

>>> from tcplab.experiments.registry import spec
>>> plan(spec("syn_retries"), spec("syn_retries").validate({"retries": 9}), "auto", None).refusal[:40]
'syn_retries(retries=9, linear_timeouts=4'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcplab.errors import RealModeUnavailable
from tcplab.experiments import _mode
from tcplab.experiments.spec import Experiment
from tcplab.kernel.release import running_profile
from tcplab.model.profiles import DEFAULT_PROFILE

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """refusal:     why this run cannot be real here (None: try the kernel).
    sim_profile: the profile name or kernel release the simulator models.
    kernel_note: a sentence for a simulated Result when that kernel is not one tcplab has measured."""

    refusal: str | None
    sim_profile: str
    kernel_note: str = ""


def plan(s: Experiment, params: dict[str, Any], mode: str, profile: str | None) -> Plan:
    """The decision for validated ``params``; in mode="real" a refusal raises instead
    (ValueError for parameters the real runner cannot take, RealModeUnavailable for the host)."""
    fit = running_profile()
    sim_profile = profile if profile is not None else fit.release
    note = fit.note if profile is None else ""
    if mode == "sim":
        return Plan(None, sim_profile, note)
    refusal = s.refuse_real(params)
    if refusal is not None:
        if mode == "real":
            raise ValueError(refusal)
        return Plan(refusal, sim_profile, note)
    limit = s.host_limit(dict(params)) if s.host_limit is not None else None
    if limit is not None:
        if mode == "real":
            raise RealModeUnavailable(f"cannot run {s.name} on the real kernel here: {limit}. "
                                      "Use mode='sim' (or 'auto') to simulate it.")
        return Plan(limit, sim_profile, note)
    lacking = _mode.absent_on_host(_mode.applicable(s.sysctls(params)))
    if lacking:
        why = "; ".join(_mode.absence_note(n, fit.release) for n in lacking)
        if mode == "real":
            raise RealModeUnavailable(f"cannot run {s.name} on the real kernel here: {why}. "
                                      "Use mode='sim' (or 'auto') to simulate a kernel that has it.")
        # the kernel cannot show a knob it does not have; a kernel that has it can be simulated
        return Plan(why, profile if profile is not None else DEFAULT_PROFILE)
    return Plan(None, sim_profile, note)
