#!/usr/bin/env python3
"""Rate budget and spread of polls: the daemon watches N orders on the simulator with a budget far
below what the intervals ask for, for a few minutes; the simulator's request log tells what was
actually sent.

Reported against the baseline of the same run (the configured budget, and the mean rate):
  - requests/min actually sent ÷ max-requests-per-minute   (target: ≥ 0.98 and ≤ 1.00)
  - the largest count in any sliding 60 s window ÷ budget  (target: ≤ 1.00)
  - the busiest second ÷ the mean per second               (target: ≤ 2)
  - the first 10 s after start-up ÷ the mean               (no start-up burst)

    bench/rate.py [--orders 2000] [--budget 300] [--minutes 5] [--interval 2m]
"""

import argparse
import bisect
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Daemon, Env, Sim  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--interval", default="2m")
    a = ap.parse_args()

    env = Env("bench-rate")
    sim = Sim(env.dir, "--generate", str(a.orders), "--in-flight", str(a.orders // 10), "--change-every", "300",
              "--seed", "1", "--tenant-limit", "0")
    orders = [(f"cust-{i % 50}", f"order-{i}") for i in range(a.orders)]
    body = "".join(f"{c} {o}\n" for c, o in orders)
    env.write("orders.list", body)
    cfg = env.config(sim, [], poll={"interval": a.interval, "max-requests-per-minute": str(a.budget),
                                    "concurrency": "8"})
    odir = os.path.join(env.dir, "orders.d")
    os.mkdir(odir)
    os.rename(os.path.join(env.dir, "orders.list"), os.path.join(odir, "bench.list"))
    env.write("provwatch.conf", open(cfg).read().replace("orders-dir =", f"orders-dir = {odir}"))

    d = Daemon(cfg, print_events=False)
    start = time.monotonic()
    try:
        time.sleep(a.minutes * 60)
    finally:
        d.stop(signal.SIGTERM)
    reqs = [r for r in sim.requests() if r["kind"] == "api"]
    sim.stop()
    env.cleanup()

    t = sorted(r["mono"] for r in reqs)
    if not t:
        sys.exit("no requests were sent")
    t0 = start
    duration = a.minutes * 60
    sent_per_min = len(t) / (duration / 60)
    # sliding 60 s windows starting at every request
    worst = max(bisect.bisect_left(t, x + 60) - i for i, x in enumerate(t))
    seconds = [0] * (int(duration) + 2)
    for x in t:
        k = int(x - t0)
        if 0 <= k < len(seconds):
            seconds[k] += 1
    steady = seconds[10:int(duration) - 1]
    mean = sum(steady) / len(steady)
    first10 = max(seconds[:10]) / mean if mean else 0
    print(f"orders={a.orders} budget={a.budget}/min interval={a.interval} run={a.minutes} min")
    print(f"requests sent            {len(t)}")
    print(f"sent per minute / budget {sent_per_min / a.budget:.4f}   ({sent_per_min:.1f}/min)")
    print(f"worst 60 s window / budget {worst / a.budget:.4f}   ({worst} requests)")
    print(f"busiest second / mean    {max(steady) / mean:.2f}   (mean {mean:.2f}/s, max {max(steady)})")
    print(f"first 10 s peak / mean   {first10:.2f}")
    ok = 0.98 <= sent_per_min / a.budget <= 1.0 and worst <= a.budget and max(steady) <= 2 * mean
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
