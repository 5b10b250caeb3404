"""Agreement grid: every experiment run on the real kernel and in the simulator, summaries
compared key by key (issue 4 §3; the facts are docs/kernel-facts.md's).

    python -m tcplab.experiments.agreement [--quick] [--out docs/agreement.md]
    python -m tcplab.experiments.agreement --only NAME [--only NAME ...]   # those experiments' points, to stdout

How each summary key is compared is declared with the key, in its experiment's spec
(``Key(name, meaning, rule=...)``, a :class:`~tcplab.experiments.spec.Rule`: ``Exact()``,
``Rel(0.10)``, ``Abs(0.05)``, ``States()``, or ``When(condition, ...)`` whose condition on the
run's parameters the spec declares); the grid points are the specs' ``grid``. ``RULES`` and
``GRID`` here are read from the specs; nothing here knows an experiment or a parameter.

``States()``: a real run that derives its states from the packets reports every state the
kernel went through, however short: the lists must be *equal*. Only a real run that had to
sample (``Result.sampled``: e.g. /proc/net/tcp every millisecond without CAP_NET_RAW, or a
capture that lost packets) is held to less: its list must be a *subsequence* of the simulated
one that ends with the same state and starts with it or after the handshake (states lasting
microseconds slip between two samples); the verdict's rule then reads
"states (sampled: subsequence)".

Keys not in ``RULES`` are not compared (there are none today; a new key shows up as
"not compared" in the table rather than silently passing).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from typing import Any

from tcplab.experiments.spec import NAMED, Rule

__all__ = ["RULES", "GRID", "agreement_grid", "compare", "rules_used", "states_sampled", "render", "main"]

def _rules() -> dict[str, dict[str, Rule]]:
    from tcplab.experiments.registry import SPECS, names
    names()
    return {n: s.rules for n, s in SPECS.items()}


def _grid() -> list[tuple[str, dict[str, Any], bool]]:
    from tcplab.experiments.registry import SPECS, names
    names()
    return [(n, dict(g.params), g.quick) for n, s in SPECS.items() for g in s.grid]


def __getattr__(name: str) -> Any:
    # RULES and GRID are read from the experiment specs (each key's rule, each grid point)
    if name == "RULES":
        return _rules()
    if name == "GRID":
        return _grid()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: What was found where real and sim differ, checked against docs/kernel-facts.md (shown under the table
#: for an experiment that has DIFFER rows; the verdicts themselves are never softened).
FINDINGS: dict[str, str] = {}


def rules_used() -> dict[str, str]:
    """Every rule the specs use, by the name the grid shows -> its meaning (the page's rules table):
    the plain rules in :data:`~tcplab.experiments.spec.NAMED`'s order, then the conditional ones."""
    out: dict[str, str] = {}
    for keys in _rules().values():
        for rule in keys.values():
            out.setdefault(rule.name, rule.meaning)
    order = list(NAMED)
    return dict(sorted(out.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def compare(name: str, params: dict[str, Any], key: str, real: Any, sim: Any, *,
            sampled: bool = False, profile: str | None = None,
            real_summary: dict[str, Any] | None = None) -> tuple[str, str]:
    """(rule, verdict) for one summary key; verdict is "agree", "DIFFER" or "not compared".

    The rule is the key's, as the experiment's spec declares it (a
    :class:`~tcplab.experiments.spec.Rule`); ``params`` missing from ``params`` take the spec's
    defaults (a rule may depend on them). ``sampled``: the real run observed by sampling, not
    from packets (:attr:`tcplab.experiments.Result.sampled`); a rule may be laxer then.

    >>> st = ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    >>> compare("lifecycle", {"slow_motion": 0}, "client_states", st, st)
    ('states', 'agree')
    >>> compare("lifecycle", {"slow_motion": 0}, "client_states", st[1:3] + st[4:], st, sampled=True)
    ('states (sampled: subsequence)', 'agree')
    """
    rule = _rules().get(name, {}).get(key)
    if rule is None:
        return "-", "not compared"
    from tcplab.experiments.registry import spec
    shown, ok = rule.verdict(real, sim, {**spec(name).defaults, **params}, sampled=sampled,
                             profile=profile, real_summary=real_summary)
    return shown, "not compared" if ok is None else "agree" if ok else "DIFFER"


def states_sampled(result: Any) -> bool:
    """Whether a real Result observed by sampling (/proc every ms) rather than from packets
    (:attr:`tcplab.experiments.Result.sampled`)."""
    return bool(getattr(result, "sampled", False))


def _run(name: str, params: dict[str, Any], mode: str) -> Any:
    import tcplab.experiments as ex
    return getattr(ex, name)(**params, mode=mode)


def agreement_grid(quick: bool = False, *, progress: Any = None,
                   points: list[tuple[str, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Run the grid (only the quick points with ``quick``) in ``mode="real"`` and
    ``mode="sim"``; one row per (point, summary key): experiment, params, key, rule, real,
    sim, verdict, kernel. A point whose real run cannot happen here gives one row with
    verdict "real unavailable: ..." (the test skips on those). ``points``: these
    ``(experiment, params)`` instead of the grid's."""
    from tcplab.errors import RealModeUnavailable

    rows: list[dict[str, Any]] = []
    if points is None:
        points = [(n, p) for n, p, q in _grid() if q or not quick]
    for idx, (name, params) in enumerate(points):
        if progress is not None:
            progress(idx, len(points), name, params)
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        try:
            real = _run(name, params, "real")
        except RealModeUnavailable as e:
            rows.append({"experiment": name, "params": shown, "key": "-", "rule": "-", "real": None,
                         "sim": None, "verdict": f"real unavailable: {e}", "kernel": None})
            continue
        if not real.reason.startswith("Linux kernel in a private"):
            # host namespace (no private one here): host sysctls and host-wide counters, so the
            # simulator's profile defaults are not the same experiment
            rows.append({"experiment": name, "params": shown, "key": "-", "rule": "-", "real": None,
                         "sim": None, "verdict": f"real unavailable: ran as '{real.reason}', not compared",
                         "kernel": real.kernel})
            continue
        if not real.trusted:
            # the real run lost fidelity twice (Result.fidelity): its figures are the busy host's
            # as much as the kernel's, so they are not compared with the simulator's
            rows.append({"experiment": name, "params": shown, "key": "-", "rule": "-", "real": None,
                         "sim": None, "verdict": f"real unavailable: {real.fidelity.reason}, not compared",
                         "kernel": real.kernel})
            continue
        sim = _run(name, params, "sim")
        for key in dict.fromkeys([*sim.summary, *real.summary]):
            rule, verdict = compare(name, params, key, real.summary.get(key), sim.summary.get(key),
                                    sampled=states_sampled(real), profile=sim.profile,
                                    real_summary=real.summary)
            rows.append({"experiment": name, "params": shown, "key": key, "rule": rule,
                         "real": real.summary.get(key), "sim": sim.summary.get(key), "verdict": verdict,
                         "kernel": real.kernel, "profile": sim.profile})
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v).replace("|", "\\|")


def render(rows: list[dict[str, Any]], *, quick: bool, seconds: float) -> str:
    """The Markdown page: kernel, date, the rules and one table row per compared key."""
    kernels = sorted({r["kernel"] for r in rows if r.get("kernel")})
    profiles = sorted({r["profile"] for r in rows if r.get("profile")})
    compared = [r for r in rows if r["verdict"] in ("agree", "DIFFER")]
    differ = [r for r in rows if r["verdict"] == "DIFFER"]
    unavailable = [r for r in rows if r["verdict"].startswith("real unavailable")]
    out = [
        "# Agreement: real kernel vs simulator",
        "",
        f"Generated by `python -m tcplab.experiments.agreement{' --quick' if quick else ''}` on "
        f"{datetime.date.today().isoformat()}, Linux {', '.join(kernels) or os.uname().release} "
        f"({os.uname().machine}); simulator profile {', '.join(profiles) or '-'}; {seconds:.0f} s.",
        "",
        f"**{len(compared) - len(differ)} of {len(compared)} compared keys agree**"
        + (f"; {len(differ)} differ" if differ else "")
        + (f"; {len(unavailable)} points could not run on the real kernel here" if unavailable else "") + ".",
        "",
        "## Rules",
        "",
        "| rule | meaning |",
        "|---|---|",
        *[f"| {rule} | {meaning} |" for rule, meaning in rules_used().items()],
        "",
        "## Results",
        "",
        "| experiment | params | key | real | sim | rule | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "**DIFFER**" if r["verdict"] == "DIFFER" else r["verdict"]
        out.append(f"| {r['experiment']} | {_fmt(r['params'])} | {r['key']} | {_fmt(r['real'])} | "
                   f"{_fmt(r['sim'])} | {r['rule']} | {verdict} |")
    found = [FINDINGS[e] for e in dict.fromkeys(r["experiment"] for r in differ) if e in FINDINGS]
    unexplained = sorted({r["experiment"] for r in differ} - set(FINDINGS))
    if found or unexplained:
        out += ["", "## Where real and sim differ", ""]
        out += [f"* {text}" for text in found]
        out += [f"* **{e}**: not analysed yet." for e in unexplained]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tcplab.experiments.agreement", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small grid (under a minute)")
    ap.add_argument("--out", default=None, help="Markdown file to write (- for stdout; default docs/agreement.md, "
                                                "stdout with --only: a partial table must not replace the page)")
    ap.add_argument("--only", action="append", metavar="NAME", default=None,
                    help="only this experiment's grid points (repeatable)")
    args = ap.parse_args(argv)
    known = sorted({n for n, _, _ in _grid()})
    bad = sorted(set(args.only or ()) - set(known))
    if bad:
        ap.error(f"--only must name experiments of the grid ({', '.join(known)}), not {', '.join(bad)}")
    if args.out is None:
        args.out = "-" if args.only else "docs/agreement.md"
    t0 = time.monotonic()

    def progress(i: int, n: int, name: str, params: dict[str, Any]) -> None:
        print(f"[{i + 1}/{n}] {name} {params}", file=sys.stderr, flush=True)

    points = None
    if args.only:
        points = [(n, p) for n, p, q in _grid() if n in args.only and (q or not args.quick)]
    rows = agreement_grid(args.quick, progress=progress, points=points)
    text = render(rows, quick=args.quick, seconds=time.monotonic() - t0)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {args.out}", file=sys.stderr)
    differ = [r for r in rows if r["verdict"] == "DIFFER"]
    for r in differ:
        print(f"DIFFER {r['experiment']} {r['params']} {r['key']}: real {r['real']!r} sim {r['sim']!r}",
              file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
