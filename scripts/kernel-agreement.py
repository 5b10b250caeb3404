#!/usr/bin/env python3
"""The agreement grid on the kernel this runs on (a guest of scripts/kernel-guest, or the host),
real against the simulator *with this kernel's profile* (issue 20, item 1).

    python scripts/kernel-agreement.py [--quick] [--only EXP,...] [--point 'EXP:k=v,k=v' ...]
                                       [--profile NAME|auto] --out FILE.md [--json FILE.json]
    python scripts/kernel-agreement.py --rejudge FILE.json [--profile NAME] --out FILE.md

``python -m tcplab.experiments.agreement`` compares with the default profile (6.18) and stops at
the first real run that raises; this driver (a) picks the profile of the running kernel
(``tcplab.model.profiles.profile_for_release``), (b) records a real run that raises as a row "real error: ..." and goes on, (c) times
every point. It uses tcplab.experiments.agreement's own compare() and render(), so the table
has the same rules and layout as docs/agreement.md.

Exit status: 0 when every compared key agrees and no real run raised, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
import traceback
from typing import Any

from tcplab.experiments import agreement as ag
from tcplab.model import profiles as prof

def pick_profile(name: str) -> tuple[str, str]:
    """(profile name, how it was chosen): tcplab's profile of the running kernel (``auto``)."""
    if name != "auto":
        return prof.get_profile(name).name, "asked for"
    rel = os.uname().release
    p = prof.profile_for_release(rel)
    if p.name in prof.PROFILES:
        return p.name, f"tcplab's profile for {rel}" + ("" if p.measured else ", from source reading")
    prof.PROFILES[p.name] = p   # derived from CHANGES for this version: named so the experiments accept it
    return p.name, f"derived from tcplab.model.profiles.CHANGES for {rel} (no measured profile)"


def parse_point(text: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for kv in filter(None, rest.split(";") if ";" in rest else rest.split(",")):
        k, _, v = kv.partition("=")
        try:
            params[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            params[k.strip()] = v.strip()
    return name.strip(), params


def run_points(points: list[tuple[str, dict[str, Any]]], profile: str) -> list[dict[str, Any]]:
    import tcplab.experiments as ex
    from tcplab.errors import RealModeUnavailable

    rows: list[dict[str, Any]] = []
    for i, (name, params) in enumerate(points):
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        print(f"[{i + 1}/{len(points)}] {name} {shown}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        base = {"experiment": name, "params": shown, "params_repr": repr(params), "key": "-", "rule": "-", "real": None, "sim": None,
                "kernel": os.uname().release, "profile": profile}
        try:
            real = getattr(ex, name)(**params, mode="real")
        except RealModeUnavailable as e:
            rows.append({**base, "verdict": f"real unavailable: {e}", "real_s": time.monotonic() - t0})
            continue
        except Exception as e:  # noqa: BLE001 - recorded, the grid goes on
            msg = f"{type(e).__name__}: {e}".replace("\n", " ")
            rows.append({**base, "verdict": f"real error: {msg}", "real_s": time.monotonic() - t0})
            traceback.print_exc(limit=3)
            continue
        real_s = time.monotonic() - t0
        if not real.reason.startswith("Linux kernel in a private"):
            rows.append({**base, "verdict": f"real unavailable: ran as '{real.reason}', not compared",
                         "real_s": real_s})
            continue
        if not real.trusted:
            # lost fidelity twice (Result.fidelity): the guest's timing, not the kernel's alone, so not
            # compared (as tcplab.experiments.agreement does); the values stay in the JSON
            rows.append({**base, "verdict": f"real unavailable: {real.fidelity.reason}, not compared",
                         "real_s": real_s, "untrusted_summary": real.summary,
                         "timings": {t.name: t.ms for t in real.fidelity.timings}})
            continue
        sim = getattr(ex, name)(**params, mode="sim", profile=profile)
        for key in dict.fromkeys([*sim.summary, *real.summary]):
            rule, verdict = ag.compare(name, params, key, real.summary.get(key), sim.summary.get(key),
                                       sampled=ag.states_sampled(real), profile=profile,
                                       real_summary=real.summary)
            rows.append({**base, "key": key, "rule": rule, "real": real.summary.get(key),
                         "sim": sim.summary.get(key), "verdict": verdict, "kernel": real.kernel,
                         "profile": sim.profile, "real_s": real_s,
                         "timings": {t.name: t.ms for t in real.fidelity.timings} if real.fidelity else {}})
        print(f"    real {real_s:.1f} s", file=sys.stderr, flush=True)
    return rows


def _from_shown(shown: str) -> dict[str, Any]:
    """'a=1, b=(2, 3), c=cubic' -> {'a': 1, 'b': (2, 3), 'c': 'cubic'} (rows written before params_repr)."""
    import re
    out: dict[str, Any] = {}
    for kv in filter(None, re.split(r", (?=\w+=)", shown)):
        k, _, v = kv.partition("=")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def rejudge(path: str, profile: str) -> list[dict[str, Any]]:
    """The real values stored in a --json file, compared again with the simulator under another
    profile (no guest needed: the simulator is deterministic)."""
    import tcplab.experiments as ex

    with open(path) as f:
        stored = json.load(f)
    rows: list[dict[str, Any]] = []
    done: dict[tuple[str, str], Any] = {}
    for r in stored["rows"]:
        if r["verdict"] not in ("agree", "DIFFER"):
            rows.append(r)
            continue
        params = ast.literal_eval(r["params_repr"]) if "params_repr" in r else _from_shown(r["params"])
        k = (r["experiment"], r["params"])
        if k not in done:
            done[k] = getattr(ex, r["experiment"])(**params, mode="sim", profile=profile)
        sim = done[k]
        real_summary = {x["key"]: x["real"] for x in stored["rows"]
                        if x["experiment"] == r["experiment"] and x["params"] == r["params"]}
        rule, verdict = ag.compare(r["experiment"], params, r["key"], r["real"], sim.summary.get(r["key"]),
                                   profile=profile, real_summary=real_summary)
        rows.append({**r, "sim": sim.summary.get(r["key"]), "rule": rule, "verdict": verdict, "profile": profile})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the grid's quick points")
    ap.add_argument("--only", default="", help="comma-separated experiment names")
    ap.add_argument("--skip", default="", help="comma-separated experiment names to leave out")
    ap.add_argument("--point", action="append", default=[],
                    help="'EXP:k=v,k=v' instead of the grid (repeatable; ';' separates when a value has commas)")
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--out", required=True, help="Markdown file (- for stdout)")
    ap.add_argument("--json", help="rows as JSON, with per-point real seconds")
    ap.add_argument("--rejudge", metavar="FILE.json",
                    help="no real runs: compare the real values stored in FILE.json (from --json, on any "
                         "machine) with the simulator under --profile NAME (default: tcplab's profile of the kernel that ran them)")
    args = ap.parse_args(argv)

    if args.rejudge:
        with open(args.rejudge) as f:
            kernel = json.load(f)["kernel"]
        if args.profile == "auto":
            profile = prof.profile_for_release(kernel).name
            how = f"tcplab's profile for {kernel}, re-judging the real values it measured"
        else:
            profile, how = prof.get_profile(args.profile).name, f"asked for, re-judging the real values of {kernel}"
        t0 = time.monotonic()
        rows = rejudge(args.rejudge, profile)
        points: list[tuple[str, dict[str, Any]]] = []
    else:
        profile, how = pick_profile(args.profile)
    if args.rejudge:
        pass
    elif args.point:
        points = [parse_point(p) for p in args.point]
    else:
        points = [(n, p) for n, p, q in ag.GRID if q or not args.quick]
    only = {x for x in args.only.split(",") if x}
    skip = {x for x in args.skip.split(",") if x}
    points = [(n, p) for n, p in points if (not only or n in only) and n not in skip]
    if not args.rejudge:
        print(f"kernel {os.uname().release}; simulator profile {profile} ({how}); {len(points)} points",
              file=sys.stderr, flush=True)
        t0 = time.monotonic()
        rows = run_points(points, profile)
    seconds = time.monotonic() - t0
    text = ag.render(rows, quick=args.quick, seconds=seconds)
    cmd = "python scripts/kernel-agreement.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = text.replace("Generated by `python -m tcplab.experiments.agreement" + (" --quick" if args.quick else "") + "`",
                        f"Generated by `{cmd}`", 1)
    errors = [r for r in rows if r["verdict"].startswith("real error")]
    text = text.replace("## Rules", f"Simulator profile: {profile} ({how}).\n"
                        + (f"\n**{len(errors)} points raised in the real run** (rows \"real error\").\n" if errors else "")
                        + "\n## Rules", 1)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kernel": os.uname().release, "profile": profile, "profile_how": how,
                       "seconds": round(seconds, 1), "rows": rows}, f, indent=1, default=str)
    differ = [r for r in rows if r["verdict"] == "DIFFER"]
    for r in differ:
        print(f"DIFFER {r['experiment']} {r['params']} {r['key']}: real {r['real']!r} sim {r['sim']!r}",
              file=sys.stderr)
    for r in errors:
        print(f"ERROR {r['experiment']} {r['params']}: {r['verdict']}", file=sys.stderr)
    compared = [r for r in rows if r["verdict"] in ("agree", "DIFFER")]
    print(f"{len(compared) - len(differ)} of {len(compared)} compared keys agree; {len(differ)} differ; "
          f"{len(errors)} real errors; {seconds:.0f} s", file=sys.stderr)
    return 1 if differ or errors else 0


if __name__ == "__main__":
    sys.exit(main())
