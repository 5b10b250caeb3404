"""tcplab: see what the Linux kernel does with a TCP connection.

>>> import tcplab
>>> tcplab.sockets(state="LISTEN")                      # doctest: +SKIP
>>> r = tcplab.experiments.accept_queue(backlog=5, clients=20)   # doctest: +SKIP
>>> r.summary["established_clients"]                    # doctest: +SKIP
6

Names are loaded on first use (PEP 562 ``__getattr__``) so that ``import tcplab``
does not import pandas or plotly. The module's own helpers are private (``_importlib``):
its public namespace is ``__all__`` and the submodules, which a test checks.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "sockets": "tcplab.observe",
    "counters": "tcplab.observe",
    "counters_delta": "tcplab.observe",
    "sysctls": "tcplab.observe",
    "watch": "tcplab.watching",
    "watch_samples": "tcplab.watching",
    "capabilities": "tcplab.observe",
    "Capabilities": "tcplab.observe",
    "NETSTAT_SENTENCES": "tcplab.model.counters",
    "counter_for_sentence": "tcplab.model.counters",
    "in_namespace": "tcplab.kernel.namespace",
    "TcpLabError": "tcplab.errors",
    "ParseError": "tcplab.errors",
    "KernelUnavailable": "tcplab.errors",
    "NamespaceUnavailable": "tcplab.errors",
    "SockDiagUnavailable": "tcplab.errors",
    "SysctlUnavailable": "tcplab.errors",
    "NamespaceError": "tcplab.errors",
    "NamespaceTimeout": "tcplab.errors",
    "RealModeUnavailable": "tcplab.errors",
    "ExperimentError": "tcplab.errors",
    "EventLimitExceeded": "tcplab.errors",
    "IllegalTransition": "tcplab.model.states",
    "Timeline": "tcplab.experiments.timeline",
    "timeline_of": "tcplab.experiments.timeline",
    "timeline_from_pcap": "tcplab.experiments.timeline",
    "trace": "tcplab.experiments.trace",
    "timeline_figure": "tcplab.viz.timeline",
}
_SUBMODULES = ("experiments", "sim", "model", "kernel", "viz", "widgets")

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])

if _typing.TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from tcplab import experiments, kernel, model, sim, viz, widgets  # noqa: F401
    from tcplab.errors import (EventLimitExceeded, ExperimentError, KernelUnavailable,  # noqa: F401
                               NamespaceError, NamespaceTimeout, NamespaceUnavailable, ParseError,
                               RealModeUnavailable, SockDiagUnavailable, SysctlUnavailable,
                               TcpLabError)
    from tcplab.kernel.namespace import in_namespace  # noqa: F401
    from tcplab.model.counters import NETSTAT_SENTENCES, counter_for_sentence  # noqa: F401
    from tcplab.experiments.timeline import Timeline, timeline_from_pcap, timeline_of  # noqa: F401
    from tcplab.experiments.trace import trace  # noqa: F401
    from tcplab.model.states import IllegalTransition  # noqa: F401
    from tcplab.observe import (Capabilities, capabilities, counters, counters_delta,  # noqa: F401
                                sockets, sysctls)
    from tcplab.viz.timeline import timeline_figure  # noqa: F401
    from tcplab.watching import watch, watch_samples  # noqa: F401


def __getattr__(name: str) -> _typing.Any:
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"tcplab.{name}")
    else:
        raise AttributeError(f"module 'tcplab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
