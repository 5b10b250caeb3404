"""The pure TCP model: states and transitions as data, segments, a sans-IO endpoint,
the Linux listen-queue rules, SYN retry schedule, ports/TIME_WAIT, kernel profiles.
No sockets, no files, no clock, no global RNG: time (and rng) are parameters."""

from tcplab.model.endpoint import Endpoint
from tcplab.model.listen import Listener, new_counters
from tcplab.model.outcome import Outcome
from tcplab.model.ports import PortTable, bind_conflict
from tcplab.model.profiles import PROFILES, KernelProfile, get_profile, profile_for_release
from tcplab.model.retries import SynSchedule, syn_schedule
from tcplab.model.segment import Segment
from tcplab.model.states import TRANSITIONS, IllegalTransition, TcpState, edges, next_state, reachable

__all__ = ["Endpoint", "Listener", "new_counters", "Outcome", "PortTable", "bind_conflict", "PROFILES",
           "KernelProfile", "get_profile", "profile_for_release", "SynSchedule", "syn_schedule", "Segment",
           "TRANSITIONS", "IllegalTransition", "TcpState", "edges", "next_state", "reachable"]
