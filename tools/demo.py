#!/usr/bin/env python3
"""The demo behind tools/demo: simulator + daemon on loopback, events printed live."""

import json
import os
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("PROVWATCH", os.path.join(ROOT, "build", "src", "provwatch"))
from harness import Daemon, Env, Failure, Sim  # noqa: E402

BOLD, DIM, GREEN, YELLOW, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[33m", "\033[31m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = YELLOW = RED = RESET = ""


def quantities(state):
    if not state or not state["quantities"]:
        return ""
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(state["quantities"].items())) + ")"


def line_item(d):
    name = d.get("friendly_name") or d.get("offer_id")
    return f"item {d['line_item_number']}" + (f" {name}" if name else "")


def describe(e):
    d = e["data"]
    kind = e["type"].removeprefix("provwatch.")
    who = f"{(d.get('customer_name') or d['customer_id'])[:22]:<22} {d['order_id'][:10]}…"
    if kind.startswith("lineitem."):
        old, new = d["old"], d["new"]
        who += f" {line_item(d)}"
        if kind == "lineitem.added":
            return YELLOW, kind, who, f"{new['status']}{quantities(new)}"
        if kind == "lineitem.removed":
            return YELLOW, kind, who, f"was {old['status']}"
        return YELLOW, kind, who, f"{old['status']}{quantities(old)} → {new['status']}{quantities(new)}"
    if kind == "order.discovered":
        return BOLD, kind, who, ", ".join(f"{li['friendly_name'] or li['offer_id']} × {li['quantity']}"
                                          for li in d["line_items"])
    if kind == "order.completed":
        return GREEN, kind, who, ", ".join(f"item {li['line_item_number']} {li['status']}" for li in d["line_items"])
    if kind in ("order.not_found", "order.fetch_failed", "order.stalled"):
        return RED, kind, who, d.get("description") or d.get("reason") or ""
    return GREEN, kind, who, ""


ORDERS = 5


def main() -> None:
    env = Env("demo")
    print(f"{BOLD}provwatch demo{RESET}: a Partner Center simulator on loopback. Nothing is configured: the")
    print(f"simulator places {ORDERS} orders for its customers over the first 30 s, and provwatch finds them in the")
    print("activity log, names them (customer, product) and follows each until it is provisioned. The")
    print("activity log is read every 5 s; each order is polled every 5 s, within 120 requests/min.\n")
    sim = Sim(env.dir, "--seed", "1", "--place", str(ORDERS), "--place-over", "30", "--fulfil-after", "40")
    cfg = env.config(sim, [], poll={"interval": "5s", "max-requests-per-minute": "120"},
                     extra="\n[discovery]\nenabled = yes\ninterval = 5s\n")
    print(f"{DIM}simulator: {sim.url}   config: {cfg}{RESET}")
    print(f"{DIM}events also go to the journal when provwatch runs as a service; here they are printed from "
          f"--print-events{RESET}\n")
    d = Daemon(cfg)
    start = time.monotonic()
    completed = set()
    shown = 0
    try:
        while len(completed) < ORDERS and time.monotonic() - start < 150:
            try:
                d.wait_event(lambda e: True, 1, "an event", since=shown)
            except Failure:
                if d.proc.poll() is not None:
                    print(d.log_tail())
                    sys.exit(1)
                continue
            while shown < len(d.all_events):
                e = d.all_events[shown]
                shown += 1
                color, kind, who, what = describe(e)
                print(f"{DIM}{time.monotonic() - start:5.1f}s{RESET} {color}{kind:<20}{RESET} {who}  {what}",
                      flush=True)
                if e["type"] == "provwatch.order.completed":
                    completed.add(e["data"]["order_id"])
        print(f"\n{BOLD}All {len(completed)} orders completed.{RESET} One event as JSON (what webhooks receive):")
        print(json.dumps(d.all_events[-1], indent=2))
    except KeyboardInterrupt:
        print()
    finally:
        d.stop(signal.SIGTERM)
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main()
