"""The ``tcplab`` command.

    tcplab doctor [--workshop]          what is real here, sysctls, advice
    tcplab ss [-l] [--port N] [--state S]   sockets with ss's Recv-Q/Send-Q
    tcplab counters [--watch SECONDS] [--count N]   counters, or their deltas
    tcplab watch [--port N] [--state S] [--duration S] [--interval S]   live table of sockets with tcp_info
    tcplab run EXPERIMENT [--mode M] [--seed N] [--set name=value ...]   run one experiment
    tcplab run EXPERIMENT --help        its parameters: type, range, default, unit, sysctl
    tcplab workshop progress [--homes DIR]   who passed which self-check or prediction (admin, on a workshop hub)
    tcplab grades export [--csv F] [--gradebook F] [--homes DIR | --answers FILE]   predictions' grades

Bad arguments exit with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from tcplab.errors import TcpLabError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"tcplab: error: {message}\n")


def _int_in(name: str, lo: int, hi: int):
    def conv(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an int in {lo}..{hi}, not {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be an int in {lo}..{hi}, not {value}")
        return value
    return conv


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"SECONDS must be a number in 0.1..3600, not {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"SECONDS must be a number in 0.1..3600, not {text}")
    return value


def _float_in(name: str, lo: float, hi: float):
    def conv(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number in {lo:g}..{hi:g}, not {text!r}") from None
        if not lo <= value <= hi:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{name} must be a number in {lo:g}..{hi:g}, not {text}")
        return value
    return conv


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tcplab", description="See what the Linux kernel does with TCP connections.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("doctor", help="what this machine allows, the TCP sysctls, advice")
    d.add_argument("--workshop", action="store_true", help="also check a JupyterHub host for a workshop")
    s = sub.add_parser("ss", help="TCP sockets with Recv-Q/Send-Q as ss shows them")
    s.add_argument("-l", "--listening", action="store_true", help="only LISTEN sockets")
    s.add_argument("--port", type=_int_in("--port", 0, 65535), help="local or remote port")
    s.add_argument("--state", help="kernel state name, e.g. TIME_WAIT")
    c = sub.add_parser("counters", help="TCP counters (non-zero), or their deltas with --watch")
    c.add_argument("--watch", type=_seconds, metavar="SECONDS", help="print deltas every SECONDS")
    c.add_argument("--count", type=_int_in("--count", 1, 100000), default=60,
                   help="with --watch: stop after this many intervals (default 60)")
    wt = sub.add_parser("watch", help="a live table of TCP sockets with cwnd, rtt, retransmits and queues",
                        description="Sample the sockets matching the filter through sock_diag (as ss -ti) every "
                                    "INTERVAL seconds for DURATION seconds and print a compact table each time "
                                    "(redrawn in place on a terminal, one block per sample otherwise). Ctrl-C stops.")
    wt.add_argument("--port", type=_int_in("--port", 0, 65535), help="local or remote port")
    wt.add_argument("--local-port", type=_int_in("--local-port", 0, 65535), help="local port")
    wt.add_argument("--remote-port", type=_int_in("--remote-port", 0, 65535), help="remote port")
    wt.add_argument("--address", help="local or remote address or network, e.g. 127.0.0.1 or 10.0.0.0/8")
    wt.add_argument("--state", action="append", help="kernel state name, e.g. ESTABLISHED (repeatable)")
    wt.add_argument("--duration", type=_float_in("--duration", 0, 86400), default=10.0,
                    help="seconds to watch, 0..86400 (default 10)")
    wt.add_argument("--interval", type=_float_in("--interval", 0.05, 3600), default=1.0,
                    help="seconds between samples, 0.05..3600 (default 1)")
    wt.add_argument("--rows", type=_int_in("--rows", 1, 10000), default=20,
                    help="sockets shown per sample, 1..10000 (default 20; the rest are counted)")
    r = sub.add_parser("run", help="run one experiment and print its summary",
                       description="Run one experiment (real kernel where possible, else simulated) and "
                                   "print its Result. `tcplab run NAME --help` lists NAME's parameters.")
    exps = r.add_subparsers(dest="experiment", required=True, parser_class=_Parser, metavar="EXPERIMENT")
    from tcplab.experiments.registry import SPECS, names

    names()
    for name, spec in SPECS.items():
        lines = [f"  {q.name:18} {q.describe()}{f'; sysctl {q.sysctl}' if q.sysctl else ''}\n"
                 f"  {'':18} {q.help}" for q in spec.params] or ["  (none)"]
        e = exps.add_parser(name, help=spec.title, description=spec.title,
                            epilog="parameters (--set NAME=VALUE):\n" + "\n".join(lines)
                                   + "\n\nsummary keys:\n" + "\n".join(f"  {k.name}: {k.meaning}" for k in spec.summary),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        e.add_argument("--mode", choices=["auto", "real", "sim"], default="auto",
                       help="auto: real where possible (default); real; sim")
        e.add_argument("--seed", type=_int_in("--seed", 0, 2**63 - 1), default=0, help="simulator seed")
        e.add_argument("--set", dest="params", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter, e.g. --set backlog=5 (repeatable; see below)")
    w = sub.add_parser("workshop", help="for the instructor of a workshop hub")
    wsub = w.add_subparsers(dest="workshop_command", required=True, parser_class=_Parser)
    wp = wsub.add_parser("progress", help="who passed which self-check or prediction (reads DIR/*/.tcplab/"
                                          "progress.jsonl and answers.jsonl)")
    wp.add_argument("--homes", default="/home", metavar="DIR", help="where the learners' homes are (default /home)")
    g = sub.add_parser("grades", help="the grades of committed predictions (docs/grading.md)")
    gsub = g.add_subparsers(dest="grades_command", required=True, parser_class=_Parser)
    ge = gsub.add_parser("export", help="every attempt as CSV, and/or a gradebook in nbgrader's export format",
                         description="Read the answers (yours, ~/.tcplab/answers.jsonl, or a room's with --homes) "
                                     "and write them out. At least one of --csv and --gradebook.")
    ge.add_argument("--csv", metavar="FILE", help="every attempt, one row each ('-': standard output)")
    ge.add_argument("--gradebook", metavar="FILE", help="nbgrader export CSV: one row per notebook and learner "
                                                         "('-': standard output)")
    src = ge.add_mutually_exclusive_group()
    src.add_argument("--homes", metavar="DIR", help="read DIR/*/.tcplab/answers.jsonl (an admin, on a hub)")
    src.add_argument("--answers", metavar="FILE", help="read this answers file (default ~/.tcplab/answers.jsonl)")
    return p


def _cmd_workshop(args: argparse.Namespace) -> None:
    from tcplab.grading import store
    from tcplab.kernel.progress import progress_table, read_room

    print(progress_table(read_room(args.homes) + store.progress_rows(store.read_room(args.homes))))


def _cmd_grades(args: argparse.Namespace) -> None:
    import pathlib

    from tcplab.grading import store
    from tcplab.grading.export import write_csv, write_gradebook

    if not args.csv and not args.gradebook:
        raise ValueError("grades export needs --csv FILE or --gradebook FILE (or both)")
    if args.answers is not None and not pathlib.Path(args.answers).is_file():
        raise ValueError(f"--answers must be an existing answers file, not {args.answers!r}")
    records = store.read_room(args.homes) if args.homes else store.read(args.answers)
    for dest, write, what in ((args.csv, write_csv, "attempts"), (args.gradebook, write_gradebook, "gradebook rows")):
        if not dest:
            continue
        if dest == "-":
            n = write(records, sys.stdout)
        else:
            if not pathlib.Path(dest).resolve().parent.is_dir():
                raise ValueError(f"the directory of {dest!r} must exist")
            n = write(records, dest)
            print(f"tcplab: wrote {n} {what} to {dest}", file=sys.stderr)


def _cmd_ss(args: argparse.Namespace) -> None:
    from tcplab.observe import sockets

    state = "LISTEN" if args.listening else args.state
    if args.listening and args.state and args.state.upper() != "LISTEN":
        raise ValueError(f"--state {args.state} contradicts -l (LISTEN only)")
    df = sockets(state=state, port=args.port)
    print(f"{'State':12} {'Recv-Q':>6} {'Send-Q':>6}  {'Local Address:Port':28} Peer Address:Port")
    for r in df.itertuples():
        send_q = "NA" if str(r.send_q) == "<NA>" else r.send_q
        local = f"{r.local_address}:{r.local_port}" if r.family == 4 else f"[{r.local_address}]:{r.local_port}"
        peer = f"{r.remote_address}:{r.remote_port or '*'}" if r.family == 4 else f"[{r.remote_address}]:{r.remote_port or '*'}"
        print(f"{r.state:12} {r.recv_q:>6} {send_q!s:>6}  {local:28} {peer}")


def _cmd_counters(args: argparse.Namespace) -> None:
    from tcplab.observe import counters, counters_delta

    if args.watch is None:
        for name, value in counters().items():
            if value:
                print(f"{name:32} {value}")
        return
    before = counters()
    for _ in range(args.count):
        time.sleep(args.watch)
        after = counters()
        delta = counters_delta(before, after)
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} " + (", ".join(f"{k} +{v}" for k, v in sorted(delta.items())) or "(no change)"),
              flush=True)
        before = after


def _cmd_watch(args: argparse.Namespace) -> None:
    from tcplab.watching import format_table, watch_samples

    samples = watch_samples(args.port, duration=args.duration, interval=args.interval, state=args.state,
                            local_port=args.local_port, remote_port=args.remote_port, address=args.address)
    tty = sys.stdout.isatty()
    drawn, count = 0, 0
    try:
        for frame in samples:
            count += 1
            lines = format_table(frame, rows=args.rows, title=f"sample {count}")
            if tty and drawn:   # redraw in place: up to the first line of the last block, clear below
                sys.stdout.write(f"\x1b[{drawn}F\x1b[J")
            elif drawn:
                sys.stdout.write("\n")
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            drawn = len(lines)
    except KeyboardInterrupt:
        samples.close()
        print(f"tcplab watch: stopped by Ctrl-C after {count} samples", file=sys.stderr)


def _parse_params(name: str, pairs: Sequence[str]) -> dict:
    """``--set NAME=VALUE`` pairs, each parsed and checked by the experiment's spec."""
    from tcplab.experiments.registry import spec

    s = spec(name)
    known = {p.name: p for p in s.params}
    params = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--set must look like NAME=VALUE, not {pair!r}")
        if key not in known:
            allowed = ", ".join(known) or "(none)"
            raise ValueError(f"{name} has no parameter {key!r} (allowed: {allowed})")
        params[key] = known[key].parse(text)
    return params


def _cmd_run(args: argparse.Namespace) -> None:
    from tcplab.experiments.registry import functions

    fn = functions()[args.experiment]
    result = fn(**_parse_params(args.experiment, args.params), mode=args.mode, seed=args.seed)
    print(repr(result))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "doctor":
            from tcplab.doctor import doctor_report
            print(doctor_report(workshop=args.workshop))
        elif args.command == "ss":
            _cmd_ss(args)
        elif args.command == "counters":
            _cmd_counters(args)
        elif args.command == "watch":
            _cmd_watch(args)
        elif args.command == "run":
            _cmd_run(args)
        elif args.command == "workshop":
            _cmd_workshop(args)
        elif args.command == "grades":
            _cmd_grades(args)
    except (ValueError, TypeError) as e:
        print(f"tcplab: error: {e}", file=sys.stderr)
        return 2
    except TcpLabError as e:
        print(f"tcplab: {type(e).__name__}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tcplab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
