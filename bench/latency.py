#!/usr/bin/env python3
"""Detection latency under the rate budget, against the naive schedule of peer tools.

The simulator (tests/pcsim.py) serves --orders orders (default 10,000), of which --in-flight
(default 200) keep changing, one change every --change-every seconds on average (default 90);
the others are fulfilled for good. The daemon runs for --minutes (default 10) with
max-requests-per-minute = --budget (default 450), twice:

  tiered   interval = 30s, settled-interval = 6h (provwatch's schedule)
  naive    every order at one fixed interval, the shortest the budget allows for all of them:
           orders ÷ budget (10,000 ÷ 450 ≈ 22.2 min), as peer tools poll

Before each run the store is filled by one `provwatch once` (simulator unthrottled), and the
last poll times are spread uniformly over one interval of each order (what a daemon that has
been running for a long time has), so the run starts in steady state.

Latency of a change = when its event line arrives on the daemon's stdout (monotonic) − the
simulator's change time (CLOCK_MONOTONIC too), changes matched to events by (order, line item,
new status and quantities). A change that the next poll does not see any more (superseded by a
later change) is "missed"; a change not yet seen when the run ends is censored (its latency is at
least the time left; percentiles then are lower bounds, shown with ≥). Changes in the last minute
of a run are left out.

The simulator's in-flight orders go back from fulfilled to pending, which real orders do not:
once the daemon has seen an order fulfilled it is settled and, by design, polled at the settled
interval. So the tiered figures are given for changes of orders the daemon then knew to be in
flight (its last event for the order was not terminal) — the target — and for all changes.

Also checked: the busiest sliding 60 s window of API requests at the simulator ≤ budget, settled
orders polled at the rate their interval asks for (settled orders ÷ 360 min), and every settled
order that came due during the run (by the prepared last poll times) polled.

Where the time goes: for orders the daemon believed in flight, the gaps between two consecutive
requests at the simulator (mean and p95; the configured interval is the ideal), and the ideal p95 a
uniform revisit at the interval gives (0.95 × interval), against which the measured p95 is judged
(target ≤ 1.05 ×).

--discovery turns discovery on in the daemon's runs ([discovery] enabled = yes, interval = 1m, the
default sweep) while the simulator places new orders at --placed-per-day (default 2,000) into its
activity log: what reading the log and sweeping cost from the same budget (requests per minute
that are not provisioning polls), and whether the latency of in-flight orders moves (compare a run
without it, in the same invocation with --discovery both).

--answer-delay makes the simulator answer every API request that much later, as Partner Center
itself takes its time: the ideal p95 is then 0.95 × interval + the delay.

The tiered schedule runs with the configured interval only (--revisit interval, the default), or
with `min-interval = 10s` (--revisit spare: unsettled orders are revisited sooner than interval when
the budget has room, never more often than every 10 s), or both one after the other. `[poll]
min-interval` comes with the daemon's wiring of revisit_interval() (the manager patch described in
bench/README.md); a build without it rejects the key, and --revisit spare then fails at start.

    nice bench/latency.py [--minutes 10] [--orders 10000] [--in-flight 200] [--change-every 90]
                          [--budget 450] [--only tiered|naive] [--revisit interval|spare|both]
                          [--answer-delay SECONDS] [--discovery off|on|both] [--placed-per-day N]
"""

import argparse
import bisect
import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from harness import Daemon, Env, Sim, run_once  # noqa: E402

TERMINAL = {"fulfilled", "unfulfilled"}
P95_TARGET_S = 45.0
P95_IDEAL_RATIO = 1.05  # measured p95 ÷ the p95 of a uniform revisit at the interval
TAIL_S = 60.0
SPARE_FLOOR = "10s"


class StampedDaemon(Daemon):
    """Daemon whose events carry the monotonic time their line arrived."""

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            t = time.monotonic()
            line = line.strip()
            if line:
                ev = json.loads(line)
                ev["_mono"] = t
                with self.cond:
                    self.all_events.append(ev)
                    self.cond.notify_all()


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def spread_last_polls(state: str, unsettled_s: float, settled_s: float, seed: int) -> dict:
    """Steady state: each order was last polled at a uniformly random point of its interval.
    Returns when each settled order is due next (Unix seconds)."""
    rnd = random.Random(seed)
    now = time.time()
    db = sqlite3.connect(os.path.join(state, "provwatch.db"))
    rows = db.execute("SELECT customer_id, order_id, settled FROM orders").fetchall()
    due = {}
    for c, o, settled in rows:
        iv = settled_s if settled else unsettled_s
        last = now - rnd.random() * iv
        if settled:
            due[(c, o)] = last + iv
        db.execute("UPDATE orders SET last_poll = ?, last_success = ?, next_poll = ? "
                   "WHERE customer_id = ? AND order_id = ?",
                   (int(last * 1e6), int(last * 1e6), int((last + iv) * 1e6), c, o))
    db.commit()
    db.close()
    return due


def run(kind: str, a: argparse.Namespace) -> dict:
    """kind: tiered, tiered+spare or naive, each optionally +discovery."""
    discovery = kind.endswith("+discovery")
    kind_base = kind.removesuffix("+discovery")
    env = Env(f"bench-latency-{kind.replace('+', '-')}")
    placed = max(1, round(a.placed_per_day * a.minutes / 1440)) if discovery else 0
    sim = Sim(env.dir, "--generate", str(a.orders), "--in-flight", str(a.in_flight), "--change-every",
              str(a.change_every), "--seed", "7", "--tenant-limit", "0", "--history-max", "1000000",
              *(["--place", str(placed), "--place-over", str(a.minutes * 60)] if discovery else []))
    try:
        orders = [(f"cust-{i % 50}", f"order-{i}") for i in range(a.orders)]
        naive_s = a.orders / a.budget * 60
        if kind_base.startswith("tiered"):
            interval_s, settled_s = 30.0, 6 * 3600.0
            poll = {"interval": "30s", "settled-interval": "6h"}
            if kind_base == "tiered+spare":
                poll["min-interval"] = SPARE_FLOOR
        else:
            interval_s = settled_s = naive_s
            poll = {"interval": f"{int(naive_s)}s", "settled-interval": f"{int(naive_s)}s"}
        poll.update({"max-requests-per-minute": str(a.budget), "concurrency": "8"})
        once_cfg = env.config(sim, orders, poll={"concurrency": "16", "max-requests-per-minute": "0"},
                              name="once.conf")
        rc, prep_events, err = run_once(once_cfg, timeout=600)
        if rc != 0:
            sys.exit(f"preparing the store failed ({rc}): {err[-2000:]}")
        # what the daemon knows of each order when the run starts
        known: dict[tuple, list] = {}
        t_prep = time.monotonic()
        for ev in prep_events:
            if ev["type"] in ("provwatch.lineitem.added", "provwatch.lineitem.changed"):
                d = ev["data"]
                known.setdefault((d["customer_id"], d["order_id"]), []).append((t_prep, d["new"]["status"]))
        settled_due = spread_last_polls(env.state, interval_s, settled_s, seed=11)
        sim.control("POST", "config", {"tenant_limit": 500})
        if a.answer_delay > 0:
            # Partner Center takes its time to answer; every API answer waits this long
            sim.fault(kind="slow", delay=a.answer_delay)
        first_change = sim.control("GET", "changes?limit=1&since=999999999")["next"]
        first_request = sim.control("GET", "requests?limit=1&since=999999999&kind=api")["next"]

        cfg = env.config(sim, orders, poll=poll,
                         extra="\n[discovery]\nenabled = yes\ninterval = 1m\n" if discovery else "")
        start, start_wall = time.monotonic(), time.time()
        d = StampedDaemon(cfg)
        try:
            time.sleep(a.minutes * 60)
        finally:
            d.stop(signal.SIGTERM)
        end = time.monotonic()
        changes = sim.control("GET", f"changes?since={first_change}&limit=1000000")["changes"]
        reqs = sim.control("GET", f"requests?since={first_request}&limit=1000000&kind=api")["requests"]
        events = d.all_events
        placed_orders = {c["order"] for c in sim.control("GET", f"changes?since={first_change}&limit=1000000")[
            "changes"] if c.get("kind") == "audit_visible"} if discovery else set()
    finally:
        sim.stop()
        env.cleanup()

    # the daemon's view of each order over time: (mono, status of its line item)
    for ev in events:
        if ev["type"] in ("provwatch.lineitem.added", "provwatch.lineitem.changed"):
            dd = ev["data"]
            known.setdefault((dd["customer_id"], dd["order_id"]), []).append((ev["_mono"], dd["new"]["status"]))
    by_item: dict[tuple, list] = {}
    for ev in events:
        if ev["type"] in ("provwatch.lineitem.added", "provwatch.lineitem.changed") and ev["data"]["new"]:
            dd = ev["data"]
            by_item.setdefault((dd["customer_id"], dd["order_id"], dd["line_item_number"]), []).append(ev)

    def believed_in_flight(key: tuple, t: float) -> bool:
        seen = [s for (m, s) in known.get(key, []) if m <= t]
        return bool(seen) and seen[-1] not in TERMINAL

    other_ops: dict[str, int] = {}
    for q in reqs:
        if q.get("op") != "provisioningstatus":
            other_ops[q.get("op") or "?"] = other_ops.get(q.get("op") or "?", 0) + 1
    all_reqs, reqs = reqs, [q for q in reqs if q.get("op") == "provisioningstatus"]
    discovered = {e["data"]["order_id"] for e in events if e["type"] == "provwatch.order.discovered"}
    polls: dict[tuple, list] = {}
    for q in reqs:
        polls.setdefault((q["customer"], q["order"]), []).append(q["mono"])
    for v in polls.values():
        v.sort()

    results = {g: {"lat": [], "censored": [], "missed": 0, "look": {"lat": [], "censored": [], "missed": 0}}
               for g in ("all", "in_flight")}
    for c in changes:
        # the last minute's changes may be just before their next poll: not counted at all
        if c["kind"] != "changed" or c["mono"] < start or c["mono"] > end - TAIL_S:
            continue
        if c["order"] in placed_orders:  # the orders discovery found are not the ones measured
            continue
        key = (c["customer"], c["order"])
        groups = ["all"] + (["in_flight"] if believed_in_flight(key, c["mono"]) else [])
        evs = [e for e in by_item.get((c["customer"], c["order"], c["number"]), []) if e["_mono"] >= c["mono"]]
        p = polls.get(key, [])
        k = bisect.bisect_left(p, c["mono"])
        for g in groups:
            look = results[g]["look"]
            if k < len(p):
                look["lat"].append(p[k] - c["mono"])
            else:
                look["censored"].append(end - c["mono"])
        for g in groups:
            r = results[g]
            if not evs:
                r["censored"].append(end - c["mono"])
                continue
            e = evs[0]
            if e["data"]["new"]["status"] == c["status"] and e["data"]["new"]["quantities"] == c["quantities"]:
                r["lat"].append(e["_mono"] - c["mono"])
            else:
                r["missed"] += 1

    # gaps between consecutive requests of an order the daemon then believed in flight
    gaps = []
    for key, p in polls.items():
        for x, y in zip(p, p[1:]):
            if x >= start + 5 and believed_in_flight(key, x) and believed_in_flight(key, y - 0.001):
                gaps.append(y - x)
    t = sorted(r["mono"] for r in all_reqs)
    worst = max((bisect.bisect_left(t, x + 60) - i for i, x in enumerate(t)), default=0)
    # Settled orders that never change (not the in-flight ones): which were due in the run (from the
    # prepared last polls; 5 s of slack either side for pacing), which were polled.
    never_change = {(f"cust-{i % 50}", f"order-{i}") for i in range(a.in_flight, a.orders)}
    offset = start_wall - start
    due = {k for k, w in settled_due.items() if k in never_change and start + 5 <= w - offset <= end - 5}
    polled = [(r["customer"], r["order"]) for r in reqs if (r["customer"], r["order"]) in never_change]
    minutes = (end - start) / 60
    return {"kind": kind, "results": results, "worst_window": worst, "requests": len(t),
            "settled_per_min": len(polled) / minutes, "settled_due": len(due),
            "settled_due_polled": len(due & set(polled)), "settled_polled": len(set(polled)),
            "settled_expected": len(never_change) / (settled_s / 60), "duration": end - start,
            "interval_s": interval_s, "gaps": gaps, "other_ops": other_ops, "placed": len(placed_orders),
            "placed_discovered": len(placed_orders & discovered)}


def summary(r: dict) -> dict:
    """Percentiles over detected and censored changes (censored ones count with their lower
    bound, so a percentile that lands on one is itself a lower bound)."""
    vals = [(x, False) for x in r["lat"]] + [(x, True) for x in r["censored"]]
    vals.sort()
    out = {"n": len(vals) + r["missed"], "detected": len(r["lat"]), "censored": len(r["censored"]),
           "missed": r["missed"]}
    for p in (50, 95):
        if vals:
            k = min(len(vals) - 1, max(0, int(round(p / 100 * (len(vals) - 1)))))
            out[f"p{p}"] = vals[k]
        else:
            out[f"p{p}"] = (float("nan"), False)
    out["max"] = vals[-1] if vals else (float("nan"), False)
    return out


def fmt(v: tuple) -> str:
    x, censored = v
    return f"{'≥' if censored else ' '}{x:7.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--orders", type=int, default=10000)
    ap.add_argument("--in-flight", type=int, default=200)
    ap.add_argument("--change-every", type=float, default=90)
    ap.add_argument("--budget", type=int, default=450)
    ap.add_argument("--only", choices=("tiered", "naive"))
    ap.add_argument("--answer-delay", type=float, default=0.0, metavar="SECONDS",
                    help="the simulator answers every API request this much later (default 0)")
    ap.add_argument("--discovery", choices=("off", "on", "both"), default="off",
                    help="discovery in the daemon's runs, with orders placed at --placed-per-day (default off)")
    ap.add_argument("--placed-per-day", type=float, default=2000)
    ap.add_argument("--revisit", choices=("interval", "spare", "both"), default="interval",
                    help="tiered schedule: configured interval only, sooner with spare budget (min-interval = "
                         f"{SPARE_FLOOR}), or both")
    a = ap.parse_args()

    kinds = []
    if a.only in (None, "tiered"):
        kinds += {"interval": ["tiered"], "spare": ["tiered+spare"], "both": ["tiered", "tiered+spare"]}[a.revisit]
    if a.only in (None, "naive"):
        kinds.append("naive")
    kinds = [k + suffix for k in kinds for suffix in {"off": [""], "on": ["+discovery"],
                                                        "both": ["", "+discovery"]}[a.discovery]]
    runs = [run(k, a) for k in kinds]
    print()
    print(f"{a.orders} orders, {a.in_flight} in flight (a change every {a.change_every:.0f} s on average), "
          f"budget {a.budget}/min, {a.minutes:.0f} min per run"
          + (f", every answer {a.answer_delay:g} s late" if a.answer_delay else ""))
    print("event latency: change at the simulator → its event on stdout; next poll: change → the next request "
          "for that order")
    print(f"{'run / changes':46} {'n':>5} {'seen':>5} {'missed':>6} {'later':>5} {'p50 s':>8} {'p95 s':>8} "
          f"{'max s':>8} | {'next poll p50':>13} {'p95':>8}")
    sums = {}
    for r in runs:
        for g, label in (("in_flight", "in flight (daemon's view)"), ("all", "all changes, in-flight orders")):
            s = summary(r["results"][g])
            look = summary(r["results"][g]["look"])
            sums[(r["kind"], g)] = s
            sums[(r["kind"], g, "look")] = look
            print(f"{r['kind'] + ': ' + label:46} {s['n']:5} {s['detected']:5} {s['missed']:6} {s['censored']:5} "
                  f"{fmt(s['p50'])} {fmt(s['p95'])} {fmt(s['max'])} | {fmt(look['p50']):>13} {fmt(look['p95'])}")
    print()
    ok = True
    for r in runs:
        ratio = r["worst_window"] / a.budget
        rate = r["settled_per_min"] / r["settled_expected"] if r["settled_expected"] else float("nan")
        print(f"{r['kind']}: busiest 60 s window {r['worst_window']} requests = {ratio:.3f} × budget (target ≤ 1)")
        print(f"{r['kind']}: settled orders polled {r['settled_per_min']:.1f}/min = {rate:.2f} × the "
              f"{r['settled_expected']:.1f}/min their interval asks for; of the {r['settled_due']} due during the "
              f"run {r['settled_due_polled']} were polled ({r['settled_due_polled'] / max(r['settled_due'], 1):.3f}), "
              f"{r['settled_polled'] - r['settled_due_polled']} others")
        ok = ok and r["worst_window"] <= a.budget
        if r["kind"].endswith("+discovery"):
            other = sum(r["other_ops"].values())
            print(f"{r['kind']}: discovery took {other} requests = {other / (r['duration'] / 60):.2f}/min of the "
                  f"budget ({', '.join(f'{k} {v}' for k, v in sorted(r['other_ops'].items()))}); "
                  f"{r['placed_discovered']} of {r['placed']} placed orders discovered")
        g = sorted(r["gaps"])
        if g:
            print(f"{r['kind']}: gap between two polls of an order in flight: mean {statistics.mean(g):.2f} s, "
                  f"p50 {percentile(g, 50):.2f} s, p95 {percentile(g, 95):.2f} s ({len(g)} gaps; interval "
                  f"{r['interval_s']:.0f} s)")
    for kind in ("tiered", "tiered+spare", "tiered+discovery", "tiered+spare+discovery"):
        if (kind, "in_flight") not in sums:
            continue
        p95 = sums[(kind, "in_flight")]["p95"]
        ideal = 0.95 * 30.0
        print(f"{kind} p95 (in flight) {p95[0]:.1f} s = {p95[0] / ideal:.2f} × the {ideal:.1f} s of a uniform "
              f"30 s revisit" + (f" (target ≤ {P95_IDEAL_RATIO:.2f})" if kind in ("tiered", "tiered+discovery") else ""))
        if kind in ("tiered", "tiered+discovery"):
            ok = ok and p95[0] <= P95_IDEAL_RATIO * ideal
    if ("tiered", "in_flight") in sums:
        p95 = sums[("tiered", "in_flight")]["p95"]
        print(f"tiered p95 (in flight) {p95[0]:.1f} s (target < {P95_TARGET_S:.0f} s)")
        ok = ok and p95[0] < P95_TARGET_S and not p95[1]
        if ("naive", "all") in sums:
            n95 = sums[("naive", "all", "look")]["p95"]
            t95 = sums[("tiered", "in_flight")]["p95"]
            print(f"naive p95 ÷ tiered p95 = {'≥ ' if n95[1] else ''}{n95[0] / t95[0]:.1f}: naive next-poll p95 "
                  f"{'≥ ' if n95[1] else ''}{n95[0]:.0f} s (its schedule says ≈ 0.95 × "
                  f"{runs[-1]['interval_s'] / 60:.1f} min = {0.95 * runs[-1]['interval_s']:.0f} s), tiered event "
                  f"p95 {t95[0]:.1f} s")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
