#!/usr/bin/env python3
"""`provwatch once` end to end against the Partner Center simulator: the exact events of several
rounds, the request headers, token rotation, faults and exit codes."""

import re
import sqlite3

from harness import Env, Sim, check, main, run, run_once

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

SCENARIO = {"orders": [
    {"customer": "c1", "order": "o1", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 5}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 3, "prefulfillmentpending": 2}},
            {"status": "fulfilled", "quantities": {"fulfilled": 5}}]}]},
    {"customer": "c1", "order": "o2", "manual": True, "line_items": [
        {"number": 0, "status": "fulfilled", "quantities": {"fulfilled": 1}},
        {"number": 1, "olid": 7, "status": "unfulfilled", "qpi": "empty"}]},
]}
ORDERS = [("c1", "o1"), ("c1", "o2")]


def summary(events):
    return [(e["type"].removeprefix("provwatch."), e["subject"]) for e in events]


def state(status, **q):
    return {"status": status, "quantities": q}


def test_rounds_emit_exact_events():
    env = Env("once")
    sim = Sim(env.dir, "--strict-rotation", scenario=SCENARIO)
    try:
        cfg = env.config(sim, ORDERS)
        rc, ev, err = run_once(cfg)
        check(rc == 0, f"first round exit {rc}: {err}")
        check(summary(ev) == [
            ("lineitem.added", "customers/c1/orders/o1/lineitems/0"),
            ("lineitem.added", "customers/c1/orders/o2/lineitems/0"),
            ("lineitem.added", "customers/c1/orders/o2/lineitems/1"),
            ("order.completed", "customers/c1/orders/o2"),
        ] or summary(ev) == [
            ("lineitem.added", "customers/c1/orders/o2/lineitems/0"),
            ("lineitem.added", "customers/c1/orders/o2/lineitems/1"),
            ("order.completed", "customers/c1/orders/o2"),
            ("lineitem.added", "customers/c1/orders/o1/lineitems/0"),
        ], f"first round events: {summary(ev)}")
        added = next(e for e in ev if e["subject"].endswith("o1/lineitems/0"))
        check(added["specversion"] == "1.0" and added["datacontenttype"] == "application/json", "CloudEvent")
        check(added["source"].startswith("provwatch://"), "source")
        check(UUID.match(added["id"]), f"id {added['id']}")
        d = added["data"]
        check(d["customer_id"] == "c1" and d["order_id"] == "o1" and d["line_item_number"] == 0, str(d))
        check(d["order_line_item_id"] == 0 and d["old"] is None, str(d))
        check(d["new"] == state("prefulfillmentpending", prefulfillmentpending=5), str(d))
        check(d["previous_poll"] is None, "first poll has no previous poll")
        o2_1 = next(e for e in ev if e["subject"].endswith("o2/lineitems/1"))
        check(o2_1["data"]["order_line_item_id"] == 7 and o2_1["data"]["new"] == state("unfulfilled"),
              str(o2_1["data"]))
        done = next(e for e in ev if e["type"] == "provwatch.order.completed")
        check(done["data"]["line_items"] == [
            {"line_item_number": 0, "status": "fulfilled", "quantities": {"fulfilled": 1}},
            {"line_item_number": 1, "status": "unfulfilled", "quantities": {}}], str(done["data"]))
        first_time = added["time"]

        # nothing changed: nothing emitted
        rc, ev, err = run_once(cfg)
        check(rc == 0 and ev == [], f"quiet round: rc={rc} events={summary(ev)} {err}")

        sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
        rc, ev, err = run_once(cfg)
        check(rc == 0 and summary(ev) == [("lineitem.changed", "customers/c1/orders/o1/lineitems/0")],
              f"partial: {summary(ev)} {err}")
        d = ev[0]["data"]
        check(d["old"] == state("prefulfillmentpending", prefulfillmentpending=5), str(d))
        check(d["new"] == state("prefulfillmentpending", fulfilled=3, prefulfillmentpending=2), str(d))
        check(d["previous_poll"] is not None and d["previous_poll"] >= first_time, str(d))

        sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
        rc, ev, err = run_once(cfg)
        check(rc == 0 and summary(ev) == [("lineitem.changed", "customers/c1/orders/o1/lineitems/0"),
                                          ("order.completed", "customers/c1/orders/o1")],
              f"fulfilled: {summary(ev)} {err}")
        check(ev[1]["data"]["line_items"] == [
            {"line_item_number": 0, "status": "fulfilled", "quantities": {"fulfilled": 5}}], str(ev[1]))
        ids = [e["id"] for e in ev]
        check(len(set(ids)) == len(ids), "ids unique")

        # refresh tokens rotate strictly in the simulator: every run after the first had to use
        # the rotated token from the store, not the file's initial one
        toks = sim.requests(kind="token")
        check(len(toks) >= 4 and all(t["status"] == 200 for t in toks), f"token requests {toks}")
        check(all(t["token"]["refresh_token"] == "valid" for t in toks), "a superseded refresh token was used")
        check(toks[0]["token"]["refresh_token_seq"] == 0 and toks[1]["token"]["refresh_token_seq"] > 0,
              "the second run used the rotated token")

        # headers of SPEC §3
        api = sim.requests()
        check(len(api) == 8, f"{len(api)} API requests")
        for r in api:
            h = r["headers"]
            check(r["auth"] == "valid", "bearer token")
            check(h["Accept"] == "application/json", f"Accept {h}")
            check(h["X-Locale"] == "en-US", f"X-Locale {h}")
            check(h["User-Agent"].startswith("provwatch/"), f"User-Agent {h}")
            check(UUID.match(h["MS-CorrelationId"] or ""), f"MS-CorrelationId {h}")
            check(UUID.match(h["MS-RequestId"] or ""), f"MS-RequestId {h}")
        check(len({r["headers"]["MS-CorrelationId"] for r in api}) == len(api), "correlation ids are unique")

        # the state store: WAL, snapshots saved
        db = sqlite3.connect(f"file:{env.state}/provwatch.db?mode=ro", uri=True)
        check(db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "WAL")
        n = db.execute("SELECT count(*) FROM orders WHERE snapshot IS NOT NULL").fetchone()[0]
        check(n == 2, f"{n} snapshots")
        db.close()
    finally:
        sim.stop()
        env.cleanup()


def test_faults_fail_the_poll_and_keep_the_snapshot():
    env = Env("once-faults")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = env.config(sim, ORDERS, poll={"failure-threshold": "2"})
        rc, ev, err = run_once(cfg)
        check(rc == 0 and len(ev) == 4, f"baseline {rc} {summary(ev)}")
        sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
        for kind, extra in [("status", {"status": 500}), ("malformed", {}), ("truncated", {}),
                            ("wrong-type", {"field": "status"}), ("negative-quantity", {}),
                            ("duplicate-line-item", {}), ("reset", {})]:
            fid = sim.fault(kind=kind, order="o1", **extra)
            rc, ev, err = run_once(cfg)
            sim.control("DELETE", f"fault/{fid}")
            bad = [e for e in ev if e["type"].startswith("provwatch.lineitem")]
            check(rc == 1, f"{kind}: exit {rc}")
            check(bad == [], f"{kind}: events from a bad answer: {summary(bad)}")
            check("'o1'" in err, f"{kind}: the log names the order: {err}")
        # the threshold (2) was crossed once: exactly one fetch_failed, edge-triggered
        # (it came with the second fault above); then recovery and the change that waited
        rc, ev, err = run_once(cfg)
        check(rc == 0, f"recovery exit {rc}: {err}")
        check(summary(ev) == [("order.recovered", "customers/c1/orders/o1"),
                              ("lineitem.changed", "customers/c1/orders/o1/lineitems/0")], f"recovery {summary(ev)}")
        check(ev[1]["data"]["old"] == state("prefulfillmentpending", prefulfillmentpending=5), "old snapshot kept")
    finally:
        sim.stop()
        env.cleanup()


def test_fetch_failed_is_edge_triggered():
    env = Env("once-edge")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = env.config(sim, [("c1", "o1")], poll={"failure-threshold": "2"})
        run_once(cfg)
        sim.fault(kind="status", status=503, order="o1")
        types = []
        for _ in range(4):
            rc, ev, err = run_once(cfg)
            check(rc == 1, "failing run exits 1")
            types += [e["type"] for e in ev]
        check(types == ["provwatch.order.fetch_failed"], f"events over 4 failing runs: {types}")
        sim.clear_faults()
        rc, ev, _ = run_once(cfg)
        check([e["type"] for e in ev] == ["provwatch.order.recovered"], f"recovery {summary(ev)}")
    finally:
        sim.stop()
        env.cleanup()


def test_wire_variants_are_equivalent():
    """BOM, upper-case statuses and pagination describe the same state: no events."""
    env = Env("once-wire")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = env.config(sim, ORDERS)
        run_once(cfg)
        for kind, extra in [("bom", {}), ("uppercase", {}), ("paginate", {"page_size": 1})]:
            fid = sim.fault(kind=kind, **extra)
            rc, ev, err = run_once(cfg)
            sim.control("DELETE", f"fault/{fid}")
            check(rc == 0 and ev == [], f"{kind}: rc={rc} events={summary(ev)} {err}")
        pages = [r for r in sim.requests() if r["headers"]["MS-ContinuationToken"]]
        check(len(pages) >= 1, "the second page was requested with its continuation token")
        check(all(r["status"] == 200 for r in pages), f"continuation answered {[r['status'] for r in pages]}")
    finally:
        sim.stop()
        env.cleanup()


def test_not_found_grace():
    env = Env("once-404")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = env.config(sim, [("c1", "missing")], poll={"not-found-grace": "0"})
        rc, ev, err = run_once(cfg)
        check(rc == 1, f"404 exit {rc}")
        check([e["type"] for e in ev] == ["provwatch.order.not_found"], f"{summary(ev)}")
        check(ev[0]["data"]["code"] == "20000" and ev[0]["data"]["description"] == "Order ID not found",
              str(ev[0]["data"]))
        rc, ev, err = run_once(cfg)
        check(ev == [], "not_found is edge-triggered")
        cfg = env.config(sim, [("c1", "missing2")], poll={"not-found-grace": "10m"})
        rc, ev, err = run_once(cfg)
        check(ev == [], f"within the grace period nothing is emitted: {summary(ev)}")
    finally:
        sim.stop()
        env.cleanup()


def test_exit_codes():
    env = Env("once-exit")
    try:
        p = run(["--frobnicate"])
        check(p.returncode == 64, f"bad option: {p.returncode}")
        p = run(["-c", env.write("bad.conf", "[poll]\ninterval = 5 parsecs\n"), "once"])
        check(p.returncode == 78, f"bad config: {p.returncode}")
        check("bad.conf:2: [poll] interval: \"5 parsecs\" is not a time span" in p.stderr, p.stderr)
        check(p.stdout == "", "nothing on stdout")
        p = run(["--version"])
        check(p.returncode == 0 and p.stdout.startswith("provwatch "), p.stdout)
    finally:
        env.cleanup()


def test_new_orders_polled_in_key_order():
    """Orders never polled go out in the order of their ids (customer, then order), whatever the
    configuration's order: their rows then enter the store's index one after the other (bench/README.md,
    "Where the time goes"). One at a time, so that the simulator sees them in the order they were sent.
    In a second round with one order added, the new one is polled first, the others after it."""
    customers = ["c-b", "c-a", "c-c"]
    orders = [(c, f"o-{(i * 7) % 8}") for i in range(8) for c in customers]
    scenario = {"orders": [{"customer": c, "order": o, "line_items": [
        {"number": 0, "status": "fulfilled", "quantities": {"fulfilled": 1}}]} for c, o in orders + [("c-a", "o-new")]]}
    env = Env("once-order")
    sim = Sim(env.dir, scenario=scenario)
    try:
        check(orders != sorted(orders), "the configuration lists them out of order")
        rc, ev, err = run_once(env.config(sim, orders, poll={"concurrency": "1"}))
        check(rc == 0, f"exit {rc}: {err}")
        polled = [(r["customer"], r["order"]) for r in sim.requests() if r["op"] == "provisioningstatus"]
        check(polled == sorted(orders), f"first polls in key order: {polled}")
        check(len(ev) == 2 * len(orders), f"{len(ev)} events")

        n_before = len(sim.requests())
        rc, ev, err = run_once(env.config(sim, orders + [("c-a", "o-new")], poll={"concurrency": "1"}))
        check(rc == 0, f"exit {rc}: {err}")
        polled = [(r["customer"], r["order"]) for r in sim.requests()[n_before:] if r["op"] == "provisioningstatus"]
        check(polled[0] == ("c-a", "o-new") and sorted(polled[1:]) == sorted(orders),
              f"second round: the new order first, then the others once each: {polled}")
    finally:
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main([test_rounds_emit_exact_events, test_faults_fail_the_poll_and_keep_the_snapshot,
          test_fetch_failed_is_edge_triggered, test_wire_variants_are_equivalent, test_not_found_grace,
          test_exit_codes, test_new_orders_polled_in_key_order])
