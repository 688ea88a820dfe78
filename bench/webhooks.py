#!/usr/bin/env python3
"""Webhook delivery: latency from commit to receiver, and sustained deliveries per second to one
endpoint. Everything on loopback: the simulator, provwatch, tests/webhook_receiver.py (which checks
every signature).

Reported as ratios against baselines measured in the same run, against the same receiver:
  - latency: receiver arrival − arrival of the event's line on provwatch's stdout (printed right
    after the commit; both CLOCK_MONOTONIC), median and p99, ÷ the median of a plain loopback
    HTTP POST round trip (python http.client, keep-alive, the same bodies, headers and signature);
  - throughput: events delivered per second while provwatch drains a backlog to one endpoint,
    ÷ the receiver's capacity: clients posting pre-signed events as fast as they can with
    provwatch's concurrency (4 connections, one process each, so the client is not the limit);
  - provwatch's CPU time per 1000 deliveries during the drain.

    bench/webhooks.py [--latency-orders 100] [--change-every 5] [--latency-seconds 20]
                      [--backlog-orders 5000]
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Daemon, Env, Sim, WebhookReceiver, run, wait_until  # noqa: E402

CONCURRENCY = 4  # provwatch's requests in flight per webhook (CONCURRENCY_MAX in src/webhook.c)
TICK = os.sysconf("SC_CLK_TCK")


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def sign(key: bytes, msg_id: str, ts: str, body: bytes) -> str:
    return "v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()


def headers_for(key: bytes, body: bytes, msg_id: str) -> dict:
    ts = str(int(time.time()))
    return {"Content-Type": "application/cloudevents+json", "webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": sign(key, msg_id, ts, body), "User-Agent": "provwatch/bench"}


class LineCounter:
    """Counts the lines of a growing file incrementally: waiting on the receiver's log must not
    load the machine being measured (parsing the whole log every time would)."""

    def __init__(self, path: str):
        self.f = open(path, "rb")
        self.n = 0

    def count(self) -> int:
        while chunk := self.f.read(1 << 20):
            self.n += chunk.count(b"\n")
        return self.n


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def orders_dir_config(env: Env, sim: Sim, n: int, poll: dict, extra: str) -> str:
    odir = os.path.join(env.dir, "orders.d")
    os.makedirs(odir, exist_ok=True)
    with open(os.path.join(odir, "bench.list"), "w") as f:
        f.write("".join(f"cust-{i % 50} order-{i}\n" for i in range(n)))
    cfg = env.config(sim, [], poll=poll, extra=extra)
    return env.write("provwatch.conf", open(cfg).read().replace("orders-dir =", f"orders-dir = {odir}"))


def webhook(name: str, url: str, secret_file: str, **keys: str) -> str:
    return "".join([f"\n[webhook {name}]\nurl = {url}\nsecret-file = {secret_file}\n"] +
                   [f"{k} = {v}\n" for k, v in keys.items()])


# ---- latency ----

def round_trips(port: int, key: bytes, bodies: list[bytes]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i, body in enumerate(bodies):
        hdr = headers_for(key, body, f"baseline-{i}")
        t = time.monotonic()
        conn.request("POST", "/hook", body=body, headers=hdr)
        r = conn.getresponse()
        r.read()
        out.append(time.monotonic() - t)
        if r.status != 204:
            sys.exit(f"baseline POST answered {r.status}")
    conn.close()
    return out


def bench_latency(a, whsec: str, key: bytes) -> dict:
    env = Env("bench-wh-latency")
    secret_file = env.write("whsec", whsec + "\n", 0o600)
    sim = Sim(env.dir, "--generate", str(a.latency_orders), "--in-flight", str(a.latency_orders),
              "--change-every", str(a.change_every), "--seed", "1", "--tenant-limit", "0")
    rcv = WebhookReceiver(env.dir, "latency", secret=whsec)
    try:
        cfg = orders_dir_config(env, sim, a.latency_orders, {"interval": "1s", "concurrency": "8"},
                                webhook("bench", rcv.url, secret_file))
        d = Daemon(cfg)
        try:
            # the first poll of every order makes a burst of "added" events: let it drain first
            wait_until(lambda: len(d.all_events) >= a.latency_orders, 60, "the first events")
            rcv.wait_delivered([e["id"] for e in list(d.all_events)], 60, "the first events delivered")
            start = len(d.all_events)
            time.sleep(a.latency_seconds)  # the measurement window
            measured = list(d.all_events[start:])
            rcv.wait_delivered([e["id"] for e in measured], 60, "the measured events delivered")
            d.stop(signal.SIGTERM)
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        arrival = {}
        for x in rcv.delivered():
            arrival.setdefault(x["id"], x["mono"])
        bad = [x for x in rcv.attempts() if not x["signature_ok"] or x["problems"]]
        if bad:
            sys.exit(f"receiver problems: {bad[:3]}")
        lat = [arrival[e["id"]] - d.printed_at[e["id"]] for e in measured]
        # events committed right behind an earlier one of the same order wait for its delivery
        # (per-order ordering): the others show the pipeline alone
        last_of = {}
        alone = []
        for e in measured:
            o, t = e["data"]["order_id"], d.printed_at[e["id"]]
            if t - last_of.get(o, -1e9) > 0.5:
                alone.append(arrival[e["id"]] - t)
            last_of[o] = t
        bodies = [json.dumps(e, separators=(",", ":")).encode() for e in measured]
        rtt = round_trips(rcv.port, key, (bodies * (1 + 500 // max(1, len(bodies))))[:500])
    finally:
        rcv.stop()
        sim.stop()
        env.cleanup()
    return {"events": len(lat), "median": statistics.median(lat), "p99": percentile(lat, 99), "max": max(lat),
            "min": min(lat), "alone": len(alone), "alone_median": statistics.median(alone),
            "alone_p99": percentile(alone, 99), "rtt_median": statistics.median(rtt), "rtt_p99": percentile(rtt, 99)}


# ---- throughput ----

def _post_worker(port: int, jobs: list[tuple[bytes, dict]], start, out) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start.wait()
    for body, hdr in jobs:
        conn.request("POST", "/hook", body=body, headers=hdr)
        r = conn.getresponse()
        r.read()
        if r.status != 204:
            out.put(f"answered {r.status}")
            return
    out.put(time.monotonic())


def receiver_capacity(port: int, key: bytes, bodies: list[bytes]) -> float:
    jobs = [(b, headers_for(key, b, f"capacity-{i}")) for i, b in enumerate(bodies)]
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_post_worker, args=(port, jobs[i::CONCURRENCY], start, out))
             for i in range(CONCURRENCY)]
    for p in procs:
        p.start()
    time.sleep(0.5)  # let every worker connect and wait on the start signal
    t0 = time.monotonic()
    start.set()
    ends = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(10)
    if any(isinstance(e, str) for e in ends):
        sys.exit(f"capacity clients: {ends}")
    return len(jobs) / (max(ends) - t0)


def bench_throughput(a, whsec: str, key: bytes) -> dict:
    env = Env("bench-wh-throughput")
    secret_file = env.write("whsec", whsec + "\n", 0o600)
    n = a.backlog_orders
    # every generated order is fulfilled: its first poll makes "added" and "completed"
    sim = Sim(env.dir, "--generate", str(n), "--in-flight", "0", "--seed", "2", "--tenant-limit", "0")
    rcv = WebhookReceiver(env.dir, "throughput", secret=whsec)
    try:
        cfg = orders_dir_config(env, sim, n, {"interval": "1h", "settled-interval": "0", "concurrency": "8"},
                                webhook("bench", rcv.url, secret_file, **{"once-timeout": "1s"}))
        # build the backlog: the receiver answers 410, so the endpoint is disabled at the first
        # attempt and every event stays queued, due at once
        rcv.control(mode="status", status=410)
        p = run(["-c", cfg, "once"], timeout=600)
        events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        depth = json.loads(run(["-c", cfg, "status", "--json"]).stdout)["webhooks"][0]["queue_depth"]
        if depth != len(events) or depth < n:
            sys.exit(f"backlog of {depth} events, {len(events)} printed: {p.stderr[-2000:]}")
        rcv.control(mode="ok")
        first_attempts = len(rcv.attempts())
        lines = LineCounter(rcv.log_path)
        lines.count()
        polls_before = sim.control("GET", "stats")["by_kind"]["api"]

        d = Daemon(cfg, print_events=False)
        try:
            t0 = time.monotonic()
            wait_until(lambda: lines.count() - first_attempts >= depth, 600, "the backlog delivered", interval=0.5)
            t1 = time.monotonic()
            cpu = cpu_seconds(d.proc.pid)
            wait_until(lambda: json.loads(run(["-c", cfg, "status", "--json"]).stdout)["webhooks"][0]
                       ["queue_depth"] == 0, 30, "the queue empty")
            d.stop(signal.SIGTERM)
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        polls_during = sim.control("GET", "stats")["by_kind"]["api"] - polls_before
        drained = rcv.attempts()[first_attempts:]
        bad = [x for x in drained if x["answered"] != 204 or not x["signature_ok"] or x["problems"]]
        if bad:
            sys.exit(f"receiver problems: {bad[:3]}")
        monos = sorted(x["mono"] for x in drained)
        rate = (len(monos) - 1) / (monos[-1] - monos[0])
        bodies = [json.dumps(e, separators=(",", ":")).encode() for e in events]
        capacity = receiver_capacity(rcv.port, key, bodies[:min(len(bodies), 10000)])
    finally:
        rcv.stop()
        sim.stop()
        env.cleanup()
    return {"events": len(drained), "rate": rate, "wall": t1 - t0, "capacity": capacity,
            "cpu_per_1000": cpu / len(drained) * 1000, "polls_during": polls_during}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--latency-orders", type=int, default=100)
    ap.add_argument("--change-every", type=float, default=5)
    ap.add_argument("--latency-seconds", type=float, default=20)
    ap.add_argument("--backlog-orders", type=int, default=5000)
    a = ap.parse_args()
    whsec = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    key = base64.b64decode(whsec[len("whsec_"):])

    lat = bench_latency(a, whsec, key)
    ms = 1000
    print(f"latency: {lat['events']} events in {a.latency_seconds:g} s ({a.latency_orders} orders changing every "
          f"~{a.change_every:g} s, polled every second)")
    print(f"  commit -> receiver       median {lat['median'] * ms:.2f} ms, p99 {lat['p99'] * ms:.2f} ms "
          f"(min {lat['min'] * ms:.2f}, max {lat['max'] * ms:.2f})")
    print(f"  first of its order ({lat['alone']}) median {lat['alone_median'] * ms:.2f} ms, "
          f"p99 {lat['alone_p99'] * ms:.2f} ms")
    print(f"  baseline POST round trip median {lat['rtt_median'] * ms:.2f} ms, p99 {lat['rtt_p99'] * ms:.2f} ms")
    print(f"  median / baseline median {lat['median'] / lat['rtt_median']:.2f}")
    print(f"  p99 / baseline median    {lat['p99'] / lat['rtt_median']:.2f}")
    print(f"  first of its order: median / baseline {lat['alone_median'] / lat['rtt_median']:.2f}, "
          f"p99 / baseline {lat['alone_p99'] / lat['rtt_median']:.2f}")

    tp = bench_throughput(a, whsec, key)
    print(f"throughput: backlog of {tp['events']} events ({a.backlog_orders} orders) drained in {tp['wall']:.1f}s"
          f" ({tp['polls_during']} polls meanwhile)")
    print(f"  provwatch                {tp['rate']:.0f} events/s")
    print(f"  receiver capacity        {tp['capacity']:.0f} events/s ({CONCURRENCY} clients, keep-alive)")
    print(f"  provwatch / capacity     {tp['rate'] / tp['capacity']:.2f}")
    print(f"  provwatch CPU            {tp['cpu_per_1000']:.3f} s per 1000 deliveries")


if __name__ == "__main__":
    main()
