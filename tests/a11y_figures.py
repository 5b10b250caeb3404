"""Every figure function of ``tcplab.viz`` applied to simulated runs, by name: what the
accessibility tests (tests/test_a11y.py) read colours, dashes and symbols from.

Not a test module (no ``test_`` prefix): imported by it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcplab import experiments as E
from tcplab.experiments import registry


def _smoke(name: str) -> Any:
    s = registry.spec(name)
    return registry.run(s, dict(s.smoke_points()[0]) if s.smoke_points() else {}, mode="sim")


def figure_makers() -> dict[str, Callable[[], Any]]:
    """figure name -> a function that builds it in sim mode (each registry figure, then the named ones)."""
    from tcplab import viz
    from tcplab.viz import closing, cubic, flow_control, nagle, queues, recovery, states, timers
    from tcplab.viz.generic import experiment_figure

    makers: dict[str, Callable[[], Any]] = {
        f"experiment_figure({n})": (lambda n=n: experiment_figure(_smoke(n))) for n in registry.names()}
    aq = lambda: E.accept_queue(backlog=3, clients=8, mode="sim")  # noqa: E731
    makers.update({
        "accept_queue_fill": lambda: viz.accept_queue_fill(aq()),
        "syn_queue_fill": lambda: viz.syn_queue_fill(E.syn_queue(backlog=4, clients=12, mode="sim")),
        "syn_queue_flood": lambda: queues.syn_queue_figure(E.syn_queue(backlog=4, clients=12, flood=True, mode="sim")),
        "ack_overflow_fates": lambda: viz.ack_overflow_fates(E.ack_overflow(mode="sim")),
        "backlog_sweep": lambda: viz.backlog_sweep([E.accept_queue(backlog=b, clients=8, mode="sim") for b in (1, 3)]),
        "syn_timeline": lambda: viz.syn_timeline(E.syn_retries(retries=2, mode="sim")),
        "failure_curve": lambda: viz.failure_curve([E.syn_retries(retries=2, mode="sim")], max_retries=4),
        "state_timeline": lambda: viz.state_timeline(E.lifecycle(mode="sim")),
        "compare_closes": lambda: viz.compare_closes([E.lifecycle(scenario=s, mode="sim")
                                                      for s in ("client_closes_first", "server_closes_first")]),
        "pile_up": lambda: viz.pile_up(E.time_wait(connections=20, port_range=(40000, 40009), mode="sim")),
        "compare_runs": lambda: viz.compare_runs([E.time_wait(connections=20, port_range=(40000, 40009), tw_reuse=r,
                                                              mode="sim") for r in (0, 1)]),
        "rebind_matrix": lambda: viz.rebind_matrix([E.rebind(old_reuseaddr=a, new_reuseaddr=b, mode="sim")
                                                    for a in (False, True) for b in (False, True)]),
        "dashboard": lambda: viz.dashboard(E.load(mode="sim")),
        "connect_latency": lambda: viz.connect_latency(E.load(mode="sim")),
        "counters_figure": lambda: viz.counters_figure(aq()),
        "state_diagram": lambda: states.state_diagram(show_aborts=True, highlight=["ESTABLISHED", "FIN_WAIT1"]),
        "cubic_figure": lambda: cubic.cubic_figure(E.congestion(algorithm="cubic", duration=2, mode="sim")),
        "sliding_window_figure": lambda: flow_control.sliding_window_figure(_smoke("flow_control")),
        "flow_control_figure": lambda: flow_control.flow_control_figure(_smoke("flow_control")),
        "nagle_figure": lambda: nagle.nagle_figure(_smoke("nagle")),
        "recovery_figure(rto)": lambda: recovery.recovery_figure(E.loss_recovery(drop="last", mode="sim")),
        "retransmission_figure": lambda: timers.retransmission_figure(_smoke("retransmission")),
        "keepalive_figure": lambda: timers.keepalive_figure(_smoke("keepalive")),
        "sequence_diagram": lambda: viz.sequence_diagram(E.handshake(mode="sim")),
        "state_segments_lanes": lambda: closing.compare_closes([E.lifecycle(scenario="simultaneous_open", mode="sim")]),
    })
    return makers
