#!/usr/bin/env python3
"""Webhook delivery end to end: the real daemon (`run` and `once`) against the simulator, delivering
to tests/webhook_receiver.py, which checks signatures and headers independently of provwatch's code.

Covered: Standard Webhooks signatures (whsec_ and raw secrets) and headers, the body equal to the
event on stdout, `events =` filters, a dead and a black-hole endpoint delaying nothing, a receiver
down for a while (every event delivered once it is back, in order per order, one id per event),
410 disabling an endpoint until a reload, 429/503 Retry-After, a hanging receiver and the webhook
timeout, queued events surviving a restart, `once` with the receiver up and down, seventy webhooks
(each gets every event; routing once stopped at 64), and kill -9 at
random moments while events flow (no event lost, none announced under two ids)."""

import base64
import json
import os
import random
import signal
import socket
import threading
import time

from harness import (Daemon, Env, Failure, Sim, WebhookReceiver, check, closed_port, main, run, run_once,
                     wait_until)

INTERVAL = "200ms"  # poll interval: events follow a simulator change within a few hundred ms


def three_steps(order: str) -> dict:
    return {"customer": "c1", "order": order, "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 2}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 1, "prefulfillmentpending": 1}},
            {"status": "fulfilled", "quantities": {"fulfilled": 2}}]}]}


SCENARIO = {"orders": [three_steps(f"o{i}") for i in range(1, 7)]}



def webhook(name: str, url: str, *headers: str, **keys: str) -> str:
    lines = ["", f"[webhook {name}]", f"url = {url}"]
    lines += [f"{k.replace('_', '-')} = {v}" for k, v in keys.items()]
    lines += [f"header = {h}" for h in headers]
    return "\n".join(lines) + "\n"


def status_json(cfg: str) -> dict:
    p = run(["-c", cfg, "status", "--json"], timeout=30)
    check(p.returncode == 0, f"status --json exited {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def queue_depth(cfg: str, name: str) -> int:
    return next(w["queue_depth"] for w in status_json(cfg)["webhooks"] if w["name"] == name)


def advance(sim: Sim, order: str) -> None:
    sim.control("POST", "advance", {"customer": "c1", "order": order})


def of_order(order: str, type_: str = None):
    return lambda e: e["data"]["order_id"] == order and (type_ is None or e["type"] == type_)


def advance_and_wait(sim: Sim, d: Daemon, order: str, what: str) -> dict:
    """One simulator step of the order and the event it makes (the next step needs a poll in between)."""
    n = len(d.all_events)
    advance(sim, order)
    return d.wait_event(of_order(order, "provwatch.lineitem.changed"), 30, what, since=n)


def by_id(events) -> dict:
    return {e["id"]: e for e in events}


def kill(d: Daemon) -> None:
    if d.proc.poll() is None:
        d.stop(signal.SIGKILL)


def check_in_order(events: list[dict], deliveries: list[dict]) -> None:
    """Per order, the first successful deliveries come in the order the events were emitted."""
    first = {}
    for a in deliveries:
        first.setdefault(a["id"], a["mono"])
    for order in {e["data"]["order_id"] for e in events}:
        emitted = [e["id"] for e in events if e["data"]["order_id"] == order]
        arrived = sorted(emitted, key=lambda i: first[i])
        check(arrived == emitted, f"order {order}: delivered {arrived}, emitted {emitted}")


# ---- tests ----


def test_signatures_headers_and_filter():
    env = Env("wh-sig")
    sim = Sim(env.dir, scenario=SCENARIO)
    whsec = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    whsec_file = env.write("whsec", whsec + "\n", 0o600)
    raw_file = env.write("raw-secret", "a raw secret, not base64: ünïcode & spaces\n", 0o600)
    a = WebhookReceiver(env.dir, "a", secret=whsec)
    b = WebhookReceiver(env.dir, "b", secret_file=raw_file)
    try:
        cfg = env.config(sim, [("c1", "o1"), ("c1", "o2")], poll={"interval": INTERVAL},
                         extra=webhook("a", a.url, "Authorization: Bearer xyz", "X-Extra: 1", secret_file=whsec_file)
                         + webhook("b", b.url, secret_file=raw_file, events="provwatch.order.* nothing.else"))
        d = Daemon(cfg)
        try:
            d.wait_event(of_order("o2", "provwatch.lineitem.added"), 20, "o2 added")
            advance_and_wait(sim, d, "o1", "o1 partly fulfilled")
            advance(sim, "o1")
            d.wait_event(of_order("o1", "provwatch.order.completed"), 10, "o1 completed")
            events = list(d.all_events)
            check(len(events) == 5, f"events {[e['type'] for e in events]}")
            a.wait_delivered(by_id(events), 10, "every event at a")
            wanted_b = {e["id"] for e in events if e["type"].startswith("provwatch.order.")}
            check(len(wanted_b) == 1, f"order events {wanted_b}")
            b.wait_delivered(wanted_b, 10, "order.completed at b")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)

        printed = by_id(events)
        for r, name in ((a, "a"), (b, "b")):
            for x in r.attempts():
                check(x["answered"] == 204 and x["signature_ok"] is True and x["problems"] == [],
                      f"{name}: {x['answered']} signature_ok={x['signature_ok']} problems={x['problems']}")
                h = {k.lower(): v for k, v in x["headers"].items()}
                check(h["webhook-id"] == x["body"]["id"], f"{name}: webhook-id {h['webhook-id']}")
                check(abs(int(h["webhook-timestamp"]) - x["received"]) <= 5,
                      f"{name}: webhook-timestamp {h['webhook-timestamp']} vs received {x['received']}")
                check(h["content-type"] == "application/cloudevents+json", f"{name}: Content-Type {h['content-type']}")
                check(x["body"] == printed.get(x["id"]), f"{name}: body differs from stdout: {x['body']}")
                check(h["webhook-signature"].startswith("v1,"), f"{name}: {h['webhook-signature']}")
            if r is a:
                check(all(x["headers"].get("Authorization") == "Bearer xyz" and x["headers"].get("X-Extra") == "1"
                          for x in r.attempts()), "configured headers at a")
            else:
                check(not any("Authorization" in x["headers"] for x in r.attempts()), "a's header leaked to b")
        check(sorted(x["id"] for x in a.attempts()) == sorted(printed), "a got each event exactly once")
        check([x["type"] for x in b.attempts()] == ["provwatch.order.completed"],
              f"b (provwatch.order.*) got {[x['type'] for x in b.attempts()]}")
    finally:
        a.stop()
        b.stop()
        sim.stop()
        env.cleanup()


def test_dead_endpoints_delay_nothing():
    """One webhook refuses connections, one accepts them and never answers; the live one and
    polling are not held up by either."""
    env = Env("wh-dead")
    sim = Sim(env.dir, scenario=SCENARIO)
    alive = WebhookReceiver(env.dir, "alive")
    hole = socket.socket()  # the kernel completes connections in the backlog; nobody reads them
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    try:
        orders = [("c1", f"o{i}") for i in range(1, 5)]
        cfg = env.config(sim, orders, poll={"interval": INTERVAL},
                         extra=webhook("dead", f"http://127.0.0.1:{closed_port()}/hook")
                         + webhook("hole", f"http://127.0.0.1:{hole.getsockname()[1]}/hook", timeout="30s")
                         + webhook("alive", alive.url))
        d = Daemon(cfg)
        try:
            for _, o in orders:
                d.wait_event(of_order(o, "provwatch.lineitem.added"), 20, f"{o} added")
            d.wait_log("Webhook 'dead': event", 10, "a failed delivery to 'dead' logged")
            for _, o in orders:
                advance_and_wait(sim, d, o, f"{o} changed while two endpoints are dead")
            # events keep coming while both dead endpoints have their queues stuck
            for _, o in orders:
                advance(sim, o)
            for _, o in orders:
                d.wait_event(of_order(o, "provwatch.order.completed"), 10, f"{o} completed")
            alive.wait_delivered(by_id(d.all_events), 5, "every event at the live endpoint")
            n = len(d.all_events)
            check(n == 16, f"{n} events")  # per order: added, changed, changed and completed
            check(queue_depth(cfg, "dead") == n and queue_depth(cfg, "hole") == n and
                  queue_depth(cfg, "alive") == 0, f"queues {status_json(cfg)['webhooks']}")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        # promptly: from the event on stdout (right after its commit) to the live receiver
        arrival = {x["id"]: x["mono"] for x in alive.delivered()}
        lat = sorted(arrival[e["id"]] - d.printed_at[e["id"]] for e in d.all_events)
        check(lat[-1] < 1.0, f"latencies {[round(x, 3) for x in lat]}")
    finally:
        hole.close()
        alive.stop()
        sim.stop()
        env.cleanup()


def test_receiver_down_then_back():
    env = Env("wh-down")
    sim = Sim(env.dir, scenario=SCENARIO)
    r = WebhookReceiver(env.dir, "r")
    try:
        orders = ["o1", "o2", "o3"]
        cfg = env.config(sim, [("c1", o) for o in orders], poll={"interval": INTERVAL},
                         extra=webhook("r", r.url))
        d = Daemon(cfg)
        try:
            for o in orders:
                d.wait_event(of_order(o, "provwatch.lineitem.added"), 20, f"{o} added")
            r.wait_delivered(by_id(d.all_events), 10, "the first events delivered")
            r.control(mode="status", status=500)
            n = len(d.all_events)
            for o in orders:
                advance_and_wait(sim, d, o, f"{o} partly fulfilled")
            for o in orders:
                advance(sim, o)
            for o in orders:
                d.wait_event(of_order(o, "provwatch.order.completed"), 10, f"{o} completed")
            down = d.all_events[n:]
            check(len(down) == 9, f"{len(down)} events while down")
            # every order's oldest undelivered event was tried (and refused); the later ones wait
            wait_until(lambda: {x["order"] for x in r.attempts() if x["answered"] == 500} == set(orders), 10,
                       "a refused attempt for every order")
            check(all(x["id"] in by_id(down) for x in r.attempts() if x["answered"] == 500), "attempts")
            r.control(mode="ok")
            r.wait_delivered(by_id(d.all_events), 20, "every event after the receiver came back")
            check(queue_depth(cfg, "r") == 0, "queue empty")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        events = d.all_events
        delivered = r.delivered()
        check(len({e["id"] for e in events}) == len(events), "ids unique per event")
        check(sorted(x["id"] for x in delivered) == sorted(e["id"] for e in events),
              "each event delivered exactly once")
        printed = by_id(events)
        check(all(x["body"] == printed[x["id"]] and x["signature_ok"] is None and not x["problems"]
                  for x in r.attempts()), "bodies and ids as printed")
        check_in_order(events, delivered)
        # the refused ones were retried, with the same id, after about 5 s (±20 %)
        for x in [x for x in r.attempts() if x["answered"] == 500]:
            later = [y["mono"] for y in r.attempts() if y["id"] == x["id"] and y["mono"] > x["mono"]]
            check(later and 3.9 <= min(later) - x["mono"] <= 7, f"retry of {x['id']} after "
                  f"{[round(t - x['mono'], 2) for t in later]}")
    finally:
        r.stop()
        sim.stop()
        env.cleanup()


def test_410_disables_until_reload():
    env = Env("wh-410")
    sim = Sim(env.dir, scenario=SCENARIO)
    gone = WebhookReceiver(env.dir, "gone")
    witness = WebhookReceiver(env.dir, "witness")
    try:
        orders = ["o1", "o2"]
        gone.control(mode="status", status=410)
        cfg = env.config(sim, [("c1", o) for o in orders], poll={"interval": INTERVAL},
                         extra=webhook("gone", gone.url) + webhook("witness", witness.url))
        d = Daemon(cfg)
        try:
            for o in orders:
                d.wait_event(of_order(o, "provwatch.lineitem.added"), 20, f"{o} added")
            d.wait_log("error: Webhook 'gone': the receiver answered 410 Gone", 10, "the 410 logged as an error")
            check(len([x for x in gone.attempts() if x["answered"] == 410]) >= 1, "a 410 answer")
            witness.wait_delivered(by_id(d.all_events), 10, "the first events at the witness")
            n = len(d.all_events)
            committed = time.monotonic()
            for o in orders:
                advance_and_wait(sim, d, o, f"{o} changed")
            witness.wait_delivered(by_id(d.all_events), 10, "the new events at the witness")
            # requests already in flight when the 410 came may still land; nothing new is sent
            old_ids = {e["id"] for e in d.all_events[:n]}
            late = [x for x in gone.attempts() if x["mono"] > committed and x["id"] not in old_ids]
            check(not late, f"{len(late)} attempts of new events to the disabled endpoint")
            check(len(gone.attempts()) <= len(old_ids), f"{len(gone.attempts())} attempts for {len(old_ids)} events: "
                  "an event was retried at the disabled endpoint")
            check(queue_depth(cfg, "gone") == len(d.all_events), f"queue kept: {status_json(cfg)['webhooks']}")
            check(len(d.all_events) == n + 2, "two more events")

            gone.control(mode="ok")
            d.send(signal.SIGHUP)
            gone.wait_delivered(by_id(d.all_events), 10, "the queue drained after the reload")
            wait_until(lambda: queue_depth(cfg, "gone") == 0, 5, "queue empty")
            check("delivery resumes" in d.log(), d.log_tail())
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        check_in_order(d.all_events, gone.delivered())
        check(all(x["body"]["id"] == x["id"] for x in gone.attempts()), "ids kept")
    finally:
        gone.stop()
        witness.stop()
        sim.stop()
        env.cleanup()


def test_429_and_503_retry_after():
    env = Env("wh-429")
    sim = Sim(env.dir, scenario=SCENARIO)
    r = WebhookReceiver(env.dir, "r")
    try:
        r.control(mode="status", status=429, retry_after=3, count=1)
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": INTERVAL}, extra=webhook("r", r.url))
        d = Daemon(cfg)
        try:
            added = d.wait_event(of_order("o1", "provwatch.lineitem.added"), 20, "o1 added")
            r.wait_delivered([added["id"]], 10, "the event after the 429")
            r.control(mode="status", status=503, retry_after=1, count=1)
            changed = advance_and_wait(sim, d, "o1", "o1 changed")
            r.wait_delivered([changed["id"]], 10, "the event after the 503")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        for ev, status, wait in ((added, 429, 3), (changed, 503, 1)):
            tries = [x for x in r.attempts() if x["id"] == ev["id"]]
            check([x["answered"] for x in tries] == [status, 204], f"answers {[x['answered'] for x in tries]}")
            gap = tries[1]["mono"] - tries[0]["mono"]
            # not before Retry-After, and not the ≥ 4 s of the normal schedule (5 s - 20 %) either
            check(wait <= gap < 3.9, f"{status}: next attempt after {gap:.2f}s (Retry-After: {wait})")
        check("as the receiver asked" in d.log(), d.log_tail())
    finally:
        r.stop()
        sim.stop()
        env.cleanup()


def test_retry_for_dead_letters():
    """After retry-for, an event is dead-lettered: logged, counted, out of the queue; the next
    event of the order goes on."""
    env = Env("wh-deadletter")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": INTERVAL},
                         extra=webhook("w", f"http://127.0.0.1:{closed_port()}/hook", retry_for="1s"))
        d = Daemon(cfg)
        try:
            added = d.wait_event(of_order("o1", "provwatch.lineitem.added"), 20, "o1 added")
            changed = advance_and_wait(sim, d, "o1", "o1 changed")
            for ev in (added, changed):
                d.wait_log(f"giving up on event {ev['id']}", 10, f"{ev['type']} dead-lettered")
            w = next(w for w in status_json(cfg)["webhooks"] if w["name"] == "w")
            check(w["queue_depth"] == 0 and w["dead_letters"] == 2, f"status {w}")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        check("It is kept as a dead letter" in d.log(), d.log_tail())
    finally:
        sim.stop()
        env.cleanup()


def test_hanging_receiver_times_out():
    env = Env("wh-hang")
    sim = Sim(env.dir, scenario=SCENARIO)
    r = WebhookReceiver(env.dir, "r")
    try:
        r.control(mode="ok", hang=4)
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": INTERVAL}, extra=webhook("r", r.url, timeout="2s"))
        d = Daemon(cfg)
        try:
            added = d.wait_event(of_order("o1", "provwatch.lineitem.added"), 20, "o1 added")
            t0 = time.monotonic()
            # polling goes on while the delivery hangs
            changed = advance_and_wait(sim, d, "o1", "o1 changed during the hang")
            d.wait_log(f"event {added['id']} not delivered (attempt 1)", 5, "the attempt timed out")
            took = time.monotonic() - t0
            check(1.5 < took < 3.5, f"the attempt failed after {took:.1f}s (timeout = 2s)")
            r.control(mode="ok")
            r.wait_delivered([added["id"], changed["id"]], 10, "the events after the receiver answers again")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        tries = sorted((x for x in r.attempts() if x["id"] == added["id"]), key=lambda x: x["mono"])
        check(len(tries) == 2, f"{len(tries)} attempts")
        gap = tries[1]["mono"] - tries[0]["mono"]
        check(2 + 4 * 0.95 <= gap <= 2 + 6 * 1.05 + 0.5, f"retried {gap:.2f}s after the hanging attempt")
        check_in_order(d.all_events, r.delivered())
    finally:
        r.stop()
        sim.stop()
        env.cleanup()


def test_slow_order_delays_no_other_order():
    """A receiver slow to answer for one order: the other orders' events to the same receiver (same
    host and port) go out meanwhile. (With CURLOPT_PIPEWAIT on plain-http requests, curl would queue
    every request to that host:port behind the one in flight.)"""
    env = Env("wh-slow")
    sim = Sim(env.dir, scenario=SCENARIO)
    r = WebhookReceiver(env.dir, "r")
    try:
        r.control(mode="ok", hang=3, order="o1")
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": INTERVAL}, extra=webhook("r", r.url))
        d = Daemon(cfg)
        try:
            d.wait_event(of_order("o1", "provwatch.lineitem.added"), 20, "o1 added")
            env.config(sim, [("c1", "o1"), ("c1", "o2")], poll={"interval": INTERVAL}, extra=webhook("r", r.url))
            d.send(signal.SIGHUP)
            other = d.wait_event(of_order("o2", "provwatch.lineitem.added"), 10, "o2 added")
            r.wait_delivered([other["id"]], 10, "o2's event")
            lat = next(x["mono"] for x in r.delivered() if x["id"] == other["id"]) - d.printed_at[other["id"]]
            check(lat < 1, f"o2's event waited {lat:.2f}s behind o1's slow answer")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
    finally:
        r.stop()
        sim.stop()
        env.cleanup()


def test_restart_keeps_queue():
    env = Env("wh-restart")
    sim = Sim(env.dir, scenario=SCENARIO)
    r = WebhookReceiver(env.dir, "r")
    try:
        r.control(mode="status", status=500)
        orders = ["o1", "o2"]
        cfg = env.config(sim, [("c1", o) for o in orders], poll={"interval": INTERVAL},
                         extra=webhook("r", r.url))
        d = Daemon(cfg)
        try:
            for o in orders:
                d.wait_event(of_order(o, "provwatch.lineitem.added"), 20, f"{o} added")
            for o in orders:
                advance_and_wait(sim, d, o, f"{o} changed")
            wait_until(lambda: {x["order"] for x in r.attempts()} == set(orders), 10, "attempts for both orders")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        first = d.all_events
        check(len(first) == 4, f"{len(first)} events")
        check(queue_depth(cfg, "r") == 4, f"queue after SIGTERM: {status_json(cfg)['webhooks']}")
        r.control(mode="ok")
        d = Daemon(cfg)
        try:
            r.wait_delivered(by_id(first), 15, "the queued events after the restart")
            wait_until(lambda: queue_depth(cfg, "r") == 0, 5, "queue empty")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        check(d.all_events == [], f"the restart re-announced {[e['type'] for e in d.all_events]}")
        printed = by_id(first)
        check(sorted(x["id"] for x in r.delivered()) == sorted(printed), "each delivered once, same ids")
        check(all(x["body"] == printed[x["id"]] for x in r.attempts()), "same bodies")
        check_in_order(first, r.delivered())
    finally:
        r.stop()
        sim.stop()
        env.cleanup()


def test_once():
    env = Env("wh-once")
    sim = Sim(env.dir, scenario=SCENARIO)
    r = WebhookReceiver(env.dir, "r")
    try:
        orders = [("c1", "o1"), ("c1", "o2")]
        cfg = env.config(sim, orders, extra=webhook("r", r.url, once_timeout="3s"))
        t0 = time.monotonic()
        rc, ev, err = run_once(cfg)
        took = time.monotonic() - t0
        check(rc == 0 and len(ev) == 2, f"once exit {rc}, {len(ev)} events: {err}")
        check(took < 3, f"once took {took:.1f}s")
        check(sorted(x["id"] for x in r.delivered()) == sorted(by_id(ev)), "delivered before once exited")

        r.stop()
        advance(sim, "o1")
        advance(sim, "o2")
        t0 = time.monotonic()
        rc, ev, err = run_once(cfg)
        took = time.monotonic() - t0
        check(rc == 1 and len(ev) == 2, f"once with the receiver down: exit {rc}, {len(ev)} events: {err}")
        check(took < 3 + 2, f"once with the receiver down took {took:.1f}s (once-timeout = 3s)")
        check("still queued" in err, err)
        check(queue_depth(cfg, "r") == 2, f"queued: {status_json(cfg)['webhooks']}")

        # the same webhook at a new address, which takes longer than once-timeout to answer: once
        # gives up at once-timeout, not at the webhook's (longer) timeout. o3's first event is due
        # at once; the queued ones are due about 5 s after their failed attempt
        r = WebhookReceiver(env.dir, "r2")
        r.control(mode="ok", hang=10)
        cfg = env.config(sim, orders + [("c1", "o3")], extra=webhook("r", r.url, once_timeout="3s"))
        t0 = time.monotonic()
        rc, ev3, err = run_once(cfg)
        took = time.monotonic() - t0
        check(rc == 1 and [e["data"]["order_id"] for e in ev3] == ["o3"], f"exit {rc}, events {ev3}: {err}")
        check(2.5 < took < 3 + 2, f"once with a hanging receiver took {took:.1f}s (once-timeout = 3s)")
        check(queue_depth(cfg, "r") == 3, f"queued: {status_json(cfg)['webhooks']}")

        # the queued events keep their ids, and their retry time, within this once-timeout
        r.control(mode="ok")
        cfg = env.config(sim, orders + [("c1", "o3")], extra=webhook("r", r.url, once_timeout="15s"))
        rc, ev4, err = run_once(cfg)
        check(rc == 0 and ev4 == [], f"next once: exit {rc}, events {ev4}: {err}")
        queued = by_id(ev + ev3)
        check(r.delivered_ids() == set(queued), "queued events delivered, same ids")
        check(all(x["body"] == queued[x["id"]] for x in r.delivered()), "same bodies")
        check(queue_depth(cfg, "r") == 0, "queue empty")
    finally:
        r.stop()
        sim.stop()
        env.cleanup()


def test_seventy_webhooks():
    """Every webhook gets its events, however many there are: routing once kept at most 64 names,
    so webhooks 65 and on got nothing and nothing said so. The metrics name each of them too."""
    env = Env("wh-many")
    sim = Sim(env.dir, scenario=SCENARIO)
    r = WebhookReceiver(env.dir, "r")
    try:
        n = 70
        prom = os.path.join(env.dir, "provwatch.prom")
        extra = f"\n[metrics]\ntextfile = {prom}\n"
        extra += "".join(webhook(f"w{i}", r.url, f"X-Hook: w{i}", once_timeout="20s") for i in range(1, n + 1))
        cfg = env.config(sim, [("c1", "o1"), ("c1", "o2")], extra=extra)
        rc, ev, err = run_once(cfg, timeout=90)
        check(rc == 0 and len(ev) == 2, f"once exit {rc}, {len(ev)} events: {err}")
        got = sorted((x["headers"].get("X-Hook"), x["id"]) for x in r.delivered())
        want = sorted((f"w{i}", e["id"]) for i in range(1, n + 1) for e in ev)
        check(got == want, f"{len(got)} deliveries, want {len(want)}; "
                           f"missing {sorted(set(want) - set(got))[:6]}")
        hooks = status_json(cfg)["webhooks"]
        check(sorted(w["name"] for w in hooks) == sorted(f"w{i}" for i in range(1, n + 1))
              and all(w["queue_depth"] == 0 for w in hooks), f"status: {len(hooks)} webhooks")
        with open(prom, encoding="utf-8") as f:
            text = f.read()
        for i in (1, 64, 65, n):
            line = f'provwatch_webhook_deliveries_total{{webhook="w{i}",result="delivered"}} 2'
            check(line in text, f"metrics: no line {line!r}")
    finally:
        r.stop()
        sim.stop()
        env.cleanup()


def test_kill9_loses_nothing():
    """Orders change continuously; the daemon is killed with SIGKILL at random moments; then one
    clean run drains the queue. Every state transition the simulator made is covered by delivered
    events, every event printed was delivered, and no transition has two ids."""
    env = Env("wh-kill")
    n_orders = 6
    scenario = {"orders": [{"customer": "c1", "order": f"k{i}", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}}]}
        for i in range(n_orders)]}
    sim = Sim(env.dir, "--tenant-limit", "0", scenario=scenario)
    r = WebhookReceiver(env.dir, "r")
    seed = os.environ.get("PROVWATCH_TEST_SEED") or str(random.randrange(1 << 30))
    print(f"     PROVWATCH_TEST_SEED={seed}", flush=True)
    rng = random.Random(seed)
    stop = threading.Event()
    errors = []

    def mutate():
        """Every state gets a quantity never used before, so each transition is unique."""
        k = 1
        pick = random.Random(seed + "-mutator")
        try:
            while not stop.is_set():
                k += 1
                sim.control("POST", "set", {"customer": "c1", "order": f"k{pick.randrange(n_orders)}", "line_items": [
                    {"number": 0, "olid": 0, "status": "prefulfillmentpending",
                     "quantities": {"prefulfillmentpending": k}}]})
                stop.wait(0.02)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    mutator = threading.Thread(target=mutate, daemon=True)
    try:
        cfg = env.config(sim, [("c1", f"k{i}") for i in range(n_orders)], poll={"interval": INTERVAL},
                         extra=webhook("r", r.url))
        printed = []
        mutator.start()
        for i in range(20):
            d = Daemon(cfg)
            try:
                time.sleep(rng.uniform(0.3, 1.5))  # the random moment of the kill, not a synchronisation
                check(d.proc.poll() is None, f"run {i} exited early: {d.log_tail()}")
            finally:
                d.stop(signal.SIGKILL)
            printed += d.all_events
        stop.set()
        mutator.join(5)
        check(not errors, f"mutator: {errors}")
        final = {o["order"]: o["line_items"][0]["quantities"] for o in sim.control("GET", "orders")["orders"]}

        def state_key(s):
            return None if s is None else (s["status"], tuple(sorted(s["quantities"].items())))

        def last_delivered():
            last = {}
            for x in r.delivered():
                last[x["order"]] = x["body"]["data"]["new"]["quantities"]
            return last

        d = Daemon(cfg)
        try:
            try:
                wait_until(lambda: last_delivered() == final and queue_depth(cfg, "r") == 0, 30,
                           "the final run to deliver every order's final state", interval=0.2)
            except Failure as e:
                last = last_delivered()
                raise Failure(f"{e}: queue {status_json(cfg)['webhooks']}, behind: "
                              f"{ {o: (last.get(o), q) for o, q in final.items() if last.get(o) != q} }\n"
                              f"{d.log_tail()}")
            check(d.stop() == 0, "clean exit")
        finally:
            kill(d)
        printed += d.all_events

        delivered = r.delivered()
        check(all(x["problems"] == [] for x in r.attempts()), "receiver problems")
        bodies = {}
        for x in delivered:
            check(bodies.setdefault(x["id"], x["body"]) == x["body"], f"id {x['id']} with two bodies")
        missing = {e["id"] for e in printed} - set(bodies)
        check(not missing, f"{len(missing)} printed events never delivered")
        check(all(bodies[e["id"]] == e for e in printed), "delivered bodies equal the printed events")

        # one id per transition, among printed and delivered events alike
        ids_of = {}
        for ev in list(bodies.values()) + printed:
            t = (ev["data"]["order_id"], ev["data"]["line_item_number"], state_key(ev["data"]["old"]),
                 state_key(ev["data"]["new"]))
            ids_of.setdefault(t, set()).add(ev["id"])
        dup = {t: ids for t, ids in ids_of.items() if len(ids) > 1}
        check(not dup, f"transitions announced under several ids: {dup}")

        # no change lost: per order, the delivered events chain from the first state to the last,
        # through states the simulator went through, in its order
        changes = sim.control("GET", "changes?limit=1000000")
        check(changes["dropped"] == 0, "change log complete")
        n_changes = 0
        first_arrival = {}
        for x in delivered:
            first_arrival.setdefault(x["id"], x["mono"])
        for i in range(n_orders):
            order = f"k{i}"
            states = [state_key({"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}})]
            states += [state_key({"status": c["status"], "quantities": c["quantities"]})
                       for c in changes["changes"] if c["order"] == order]
            n_changes += len(states) - 1
            pos = {s: j for j, s in enumerate(states)}
            check(len(pos) == len(states), f"{order}: states repeat")
            evs = sorted((b for b in bodies.values() if b["data"]["order_id"] == order),
                         key=lambda b: first_arrival[b["id"]])
            chain, at = [], None
            for b in evs:
                old, new = state_key(b["data"]["old"]), state_key(b["data"]["new"])
                check(old == at, f"{order}: delivered {old} -> {new} after reaching {at} (events out of order "
                      "or a change lost)")
                check(new in pos and (at is None or pos[new] > pos[at]), f"{order}: {at} -> {new} is not a "
                      "forward step of the simulator")
                chain.append(b["type"])
                at = new
            check(at == states[-1], f"{order}: delivered events end at {at}, the simulator at {states[-1]}")
            check(chain[0] == "provwatch.lineitem.added" and
                  all(t == "provwatch.lineitem.changed" for t in chain[1:]), f"{order}: {chain}")
        check(n_changes > 100, f"only {n_changes} changes made")
        print(f"     {n_changes} changes, {len(bodies)} events, {len(delivered)} deliveries, "
              f"{len(delivered) - len(bodies)} duplicates", flush=True)
    finally:
        stop.set()
        r.stop()
        sim.stop()
        env.cleanup()


TESTS = [test_signatures_headers_and_filter, test_dead_endpoints_delay_nothing, test_receiver_down_then_back,
         test_410_disables_until_reload, test_429_and_503_retry_after, test_retry_for_dead_letters,
         test_hanging_receiver_times_out, test_restart_keeps_queue, test_once, test_seventy_webhooks,
         test_kill9_loses_nothing,
         test_slow_order_delays_no_other_order]

if __name__ == "__main__":
    main(TESTS)
