#!/usr/bin/env python3
"""Fault injection: Partner Center and its token endpoint misbehave in every way the simulator
knows, against `provwatch once` (table-driven, one run per fault) and `provwatch run`.

For each fault: a log line naming the order (or the token endpoint) and the reason, no crash, no
event from the bad answer, the stored snapshot untouched (read from the orders table), and, once
the fault ends, the change that waited meanwhile reported exactly once.

An unknown but well-formed status is not bad input (Partner Center's quantity statuses are
undocumented): provwatch reports it like any other status, as lineitem.changed; statuses compare
case-insensitively, so the same unknown status in capitals is no change. A status that is not a
single printable word ("two words") is refused as malformed."""

import os
import signal
import sqlite3
import urllib.parse
import urllib.request
import json

from harness import Daemon, Env, Sim, check, main, run_once, wait_until

C = "c1"
SCENARIO = {"orders": [
    {"customer": C, "order": f"o{i}", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 4}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 1, "prefulfillmentpending": 3}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 2, "prefulfillmentpending": 2}},
            {"status": "fulfilled", "quantities": {"fulfilled": 4}}]},
        {"number": 1, "olid": 1, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}}]}
    for i in range(1, 7)]}

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Segmentation fault", "Aborted")

# api faults on o1: (name, fault, what the log says about o1 after "failed: ")
API_FAULTS = [
    ("HTTP 500", {"kind": "status", "status": 500}, "HTTP 500: Simulated 500 Internal Server Error"),
    ("HTTP 502", {"kind": "status", "status": 502}, "HTTP 502: Simulated 502 Bad Gateway"),
    ("HTTP 503 with Retry-After", {"kind": "status", "status": 503, "retry_after": 1},
     "HTTP 503: Simulated 503 Service Unavailable"),
    ("HTTP 500 with an HTML body", {"kind": "status", "status": 500, "body": "<html>oops</html>",
                                    "content_type": "text/html"}, "HTTP 500"),
    ("HTTP 400", {"kind": "status", "status": 400}, "HTTP 400: Invalid request input"),
    ("HTTP 403", {"kind": "status", "status": 403}, "HTTP 403: Simulated 403 Forbidden"),
    ("HTTP 401 even with a new token", {"kind": "status", "status": 401},
     "HTTP 401: Unauthorized: the access token is missing, invalid or expired."),
    ("slow answer beyond the timeout", {"kind": "slow", "delay": 4}, "transport error: Operation timed out after "),
    ("slowloris", {"kind": "slowloris", "delay": 0.05}, "transport error: Operation timed out after "),
    ("connection reset", {"kind": "reset"}, "transport error: "),
    ("truncated body", {"kind": "truncated"}, "unexpected answer: truncated JSON"),
    ("malformed JSON", {"kind": "malformed"}, "unexpected answer: invalid JSON at byte "),
    ("HTML instead of JSON", {"kind": "garbage"}, "unexpected answer: invalid JSON at byte "),
    ("empty body", {"kind": "malformed", "body": ""}, "unexpected answer: empty body"),
    ("JSON array", {"kind": "malformed", "body": "[]"}, "unexpected answer: body is not a JSON object"),
    ("trailing garbage", {"kind": "malformed", "body": '{"totalCount":0,"items":[]} x'},
     "unexpected answer: invalid JSON at byte 28: unexpected character"),
    ("no items", {"kind": "malformed", "body": '{"totalCount":0}'}, "unexpected answer: missing items"),
    ("huge body", {"kind": "huge"}, "answer larger than 8388608 bytes"),
    ("items of the wrong type", {"kind": "wrong-type", "field": "items"}, "unexpected answer: items is not an array"),
    ("totalCount of the wrong type", {"kind": "wrong-type", "field": "totalCount"},
     "unexpected answer: totalCount is not an integer"),
    ("status of the wrong type", {"kind": "wrong-type", "field": "status"},
     "unexpected answer: items[0].status is not a string"),
    ("lineItemNumber of the wrong type", {"kind": "wrong-type", "field": "lineItemNumber"},
     "unexpected answer: items[0].lineItemNumber is not an integer"),
    ("quantity of the wrong type", {"kind": "wrong-type", "field": "quantity"},
     "unexpected answer: items[0].quantityProvisioningInformation[0].quantity is not an integer"),
    ("quantityProvisioningInformation of the wrong type",
     {"kind": "wrong-type", "field": "quantityProvisioningInformation"},
     "unexpected answer: items[0].quantityProvisioningInformation is not an array"),
    ("orderLineItemId of the wrong type", {"kind": "wrong-type", "field": "orderLineItemId"},
     "unexpected answer: items[0].orderLineItemId is not an integer"),
    ("fractional quantity", {"kind": "wrong-type", "field": "quantity", "value": 1.5},
     "unexpected answer: items[0].quantityProvisioningInformation[0].quantity is not an integer"),
    ("status empty", {"kind": "wrong-type", "field": "status", "value": ""},
     "unexpected answer: items[0].status is not a valid status"),
    ("status over 256 bytes", {"kind": "wrong-type", "field": "status", "value": "x" * 257},
     "unexpected answer: items[0].status is not a valid status"),
    ("status null", {"kind": "wrong-type", "field": "status", "value": None},
     "unexpected answer: items[0].status is missing"),
    ("duplicate line item numbers", {"kind": "duplicate-line-item"}, "unexpected answer: duplicate lineItemNumber 0"),
    ("negative quantity", {"kind": "negative-quantity"},
     "unexpected answer: items[0].quantityProvisioningInformation[0].quantity is negative"),
    ("429 storm", {"kind": "429", "retry_after": 1}, "rate limited (HTTP 429) too often"),
]

# token endpoint faults: (name, fault, what the log says; {url} is the token endpoint)
TOKEN_FAULTS = [
    ("token endpoint down", {"kind": "down"}, "Cannot obtain an access token: token endpoint {url} unreachable: "),
    ("token endpoint HTTP 500", {"kind": "status", "status": 500},
     "Cannot obtain an access token: token endpoint {url} answered HTTP 500, temporarily_unavailable: "
     "AADSTS50000: simulated error 500."),
    ("token endpoint HTTP 503 with HTML", {"kind": "status", "status": 503, "body": "<html>down</html>",
                                           "content_type": "text/html"},
     "Cannot obtain an access token: token endpoint {url} answered HTTP 503: "),
    ("token endpoint garbage", {"kind": "garbage"},
     "Cannot obtain an access token: token endpoint {url} answered HTTP 200: "),
    ("token endpoint malformed", {"kind": "malformed"},
     "Cannot obtain an access token: token endpoint {url} answered HTTP 200: "),
    ("token endpoint truncated", {"kind": "truncated"},
     "Cannot obtain an access token: token endpoint {url} answered HTTP 200: truncated JSON."),
    ("token endpoint huge", {"kind": "huge"}, "Cannot obtain an access token: token endpoint {url} "),
    ("token endpoint too slow", {"kind": "slow", "delay": 4},
     "Cannot obtain an access token: token endpoint {url} unreachable: Operation timed out after "),
    ("token endpoint slowloris", {"kind": "slowloris", "delay": 0.05},
     "Cannot obtain an access token: token endpoint {url} unreachable: Operation timed out after "),
    ("token endpoint 200 without a token", {"kind": "status", "status": 200, "body": {"token_type": "Bearer"}},
     "Cannot obtain an access token: token endpoint {url} answered HTTP 200: "),
    ("expired refresh token", {"kind": "invalid_grant"},
     "The token endpoint rejected the refresh token (invalid_grant: AADSTS700082: The refresh token has "
     "expired due to inactivity.)"),
]


def snapshots(env):
    """{order: snapshot column} read from the store, read-only."""
    db = sqlite3.connect(f"file:{env.state}/provwatch.db?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT order_id, snapshot FROM orders WHERE customer_id = ?", (C,)).fetchall())
    finally:
        db.close()


def no_crash(rc, err, what):
    check(rc in (0, 1), f"{what}: exit status {rc}; stderr:\n{err}")
    marks = [m for m in SANITIZER_MARKS if m in err]
    check(not marks, f"{what}: {marks} in stderr:\n{err}")


def summary(events):
    return [(e["type"].removeprefix("provwatch."), e["subject"]) for e in events]


def set_o1(sim, fulfilled):
    """Makes a change of o1 line item 0 pending; returns its new state as events show it."""
    q = {"fulfilled": fulfilled, "prefulfillmentpending": 100 - fulfilled}
    sim.control("POST", "set", {"customer": C, "order": "o1", "line_items": [
        {"number": 0, "olid": 0, "status": "prefulfillmentpending", "quantities": q},
        {"number": 1, "olid": 1, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}}]})
    return {"status": "prefulfillmentpending", "quantities": {k: v for k, v in q.items() if v}}


def test_once_faults_table():
    env = Env("faults-once")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        # a short timeout for the slow cases; failure-threshold high: failed polls are what is looked at
        cfg = env.config(sim, [(C, "o1"), (C, "o2")], poll={"failure-threshold": "1000"}, pc={"timeout": "2s"})
        token_url = f"{sim.url}/tenant1/oauth2/token"
        rc, ev, err = run_once(cfg)
        check(rc == 0 and len(ev) == 4, f"baseline: {rc} {summary(ev)} {err}")
        old = set_o1(sim, 0)
        rc, ev, err = run_once(cfg)
        check(rc == 0 and len(ev) == 1, f"first change: {rc} {summary(ev)} {err}")
        problems = []
        cases = [("api", *c) for c in API_FAULTS] + [("token", *c) for c in TOKEN_FAULTS]
        for n, (target, name, fault, reason) in enumerate(cases, start=1):
            new = set_o1(sim, n)
            before = snapshots(env)
            fid = sim.fault(target=target, **({"order": "o1"} if target == "api" else {}), **fault)
            rc, ev, err = run_once(cfg)
            sim.control("DELETE", f"fault/{fid}")
            no_crash(rc, err, name)
            # a grant refused for good is announced (SPEC §9), once; nothing else is an event
            alert = target == "token" and fault["kind"] == "invalid_grant"
            if rc != 1:
                problems.append(f"{name}: exit {rc}, not 1")
            if summary(ev) != ([("auth.failed", "tenants/tenant1")] if alert else []):
                problems.append(f"{name}: events from a bad answer: {summary(ev)}")
            if snapshots(env) != before:
                problems.append(f"{name}: the snapshot changed")
            if target == "api":
                line = f"provwatch: warning: Poll of order 'o1' (customer '{C}') failed: {reason}"
                if line not in err:
                    problems.append(f"{name}: the log does not say {line!r}:\n{err}")
                if "'o2'" in err:
                    problems.append(f"{name}: o2 failed too:\n{err}")
            else:
                line = "provwatch: error: " + reason.format(url=token_url)
                if line not in err:
                    problems.append(f"{name}: the log does not say {line!r}:\n{err}")
                for o in ("o1", "o2"):
                    if f"Order '{o}' (customer '{C}') not polled: no access token: " not in err:
                        problems.append(f"{name}: the log does not say that {o} was not polled:\n{err}")
            # the fault is gone: the change that waited is reported, exactly once
            rc, ev, err = run_once(cfg)
            no_crash(rc, err, f"{name} (recovery)")
            if alert and ev and ev[0]["type"] == "provwatch.auth.recovered":
                ev = ev[1:]
            elif alert:
                problems.append(f"{name}: no auth.recovered: {summary(ev)}")
            if rc != 0 or summary(ev) != [("lineitem.changed", f"customers/{C}/orders/o1/lineitems/0")]:
                problems.append(f"{name}: recovery: exit {rc}, events {summary(ev)}\n{err}")
            elif ev[0]["data"]["old"] != old or ev[0]["data"]["new"] != new:
                problems.append(f"{name}: recovery: reported {ev[0]['data']['old']} -> {ev[0]['data']['new']}, "
                                f"expected {old} -> {new}")
            old = new
            rc, ev, err = run_once(cfg)
            if rc != 0 or ev:
                problems.append(f"{name}: the change was reported again: {rc} {summary(ev)}")
        check(not problems, f"{len(problems)} problems:\n" + "\n".join(problems))
        # once sends nothing for an order it could not fetch, and nothing after a bad answer
        check(sim.control("GET", "stats")["active_faults"] == 0, "faults left over")
    finally:
        sim.stop()
        env.cleanup()


def test_once_unknown_status_is_a_change():
    env = Env("faults-unknown")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = env.config(sim, [(C, "o1")])
        rc, ev, err = run_once(cfg)
        check(rc == 0 and len(ev) == 2, f"baseline {summary(ev)}")
        # an undocumented line-item status: an ordinary change, reported lowercased
        fid = sim.fault(kind="unknown-status", status="Frobnicating", order="o1")
        rc, ev, err = run_once(cfg)
        check(rc == 0 and summary(ev) == [("lineitem.changed", f"customers/{C}/orders/o1/lineitems/0")],
              f"unknown status: {rc} {summary(ev)} {err}")
        check(ev[0]["data"]["old"]["status"] == "prefulfillmentpending" and ev[0]["data"]["new"] == {
            "status": "frobnicating", "quantities": {"prefulfillmentpending": 4}}, str(ev[0]["data"]))
        check("frobnicating" in snapshots(env)["o1"], "the snapshot keeps the unknown status")
        sim.control("DELETE", f"fault/{fid}")
        # the same status in other letters is the same status
        fid = sim.fault(kind="unknown-status", status="FROBNICATING", order="o1")
        rc, ev, err = run_once(cfg)
        check(rc == 0 and ev == [], f"case-insensitive: {summary(ev)}")
        sim.control("DELETE", f"fault/{fid}")
        rc, ev, err = run_once(cfg)
        check(rc == 0 and summary(ev) == [("lineitem.changed", f"customers/{C}/orders/o1/lineitems/0")],
              f"back to the real status: {summary(ev)}")
        check(ev[0]["data"]["old"]["status"] == "frobnicating" and
              ev[0]["data"]["new"]["status"] == "prefulfillmentpending", str(ev[0]["data"]))
        # an undocumented quantity status, and a terminal status unknown to [poll] terminal-statuses
        sim.control("POST", "set", {"customer": C, "order": "o1", "line_items": [
            {"number": 0, "olid": 0, "status": "Provisioning", "quantities": [["Activating", 3], ["fulfilled", 1]]},
            {"number": 1, "olid": 1, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}}]})
        rc, ev, err = run_once(cfg)
        check(rc == 0 and summary(ev) == [("lineitem.changed", f"customers/{C}/orders/o1/lineitems/0")],
              f"unknown quantity status: {summary(ev)}")
        check(ev[0]["data"]["new"] == {"status": "provisioning", "quantities": {"activating": 3, "fulfilled": 1}},
              str(ev[0]["data"]))
        rc, ev, err = run_once(cfg)
        check(rc == 0 and ev == [], f"reported again: {summary(ev)}")
        # SPEC §3: a status with spaces, "=", non-ASCII text or up to 256 bytes is a change to report
        odd = "Pending Activation = " + "é" * 100  # 21 + 200 bytes
        sim.control("POST", "set", {"customer": C, "order": "o1", "line_items": [
            {"number": 0, "olid": 0, "status": "Provisioning", "quantities": [[odd, 3], ["fulfilled", 1]]},
            {"number": 1, "olid": 1, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}}]})
        rc, ev, err = run_once(cfg)
        check(rc == 0 and summary(ev) == [("lineitem.changed", f"customers/{C}/orders/o1/lineitems/0")],
              f"status with spaces: {rc} {summary(ev)} {err}")
        check(ev[0]["data"]["new"] == {"status": "provisioning",
                                       "quantities": {odd.replace("P", "p").replace("A", "a"): 3, "fulfilled": 1}},
              str(ev[0]["data"]))
    finally:
        sim.stop()
        env.cleanup()


def added(order):
    """The last event of an order's first poll (line item 1 comes after 0)."""
    return lambda e: e["type"] == "provwatch.lineitem.added" and e["data"]["order_id"] == order \
        and e["data"]["line_item_number"] == 1


def of_type(events, t, order=None):
    return [e for e in events if e["type"] == "provwatch." + t and (order is None or e["data"]["order_id"] == order)]


def stopped(d):
    if d.proc.poll() is None:
        d.stop(signal.SIGKILL)


def test_daemon_5xx_storm_backs_off_and_recovers():
    """Every order fails at once (5xx, resets, malformed answers); with failure-threshold 1 each gets
    one fetch_failed, the failing orders are retried with backoff, then all recover."""
    env = Env("faults-storm")
    sim = Sim(env.dir, scenario=SCENARIO)
    orders = [f"o{i}" for i in range(1, 7)]
    try:
        cfg = env.config(sim, [(C, o) for o in orders], poll={"interval": "1s", "failure-threshold": "1"})
        d = Daemon(cfg)
        try:
            for o in orders:
                d.wait_event(added(o), 20, f"{o} added")
            n0 = len(d.all_events)
            before = snapshots(env)
            for o in orders:
                sim.control("POST", "advance", {"customer": C, "order": o})
            idx = sim.control("GET", "requests?since=0")["next"]
            kinds = {"o1": {"kind": "status", "status": 500}, "o2": {"kind": "status", "status": 502},
                     "o3": {"kind": "status", "status": 503}, "o4": {"kind": "status", "status": 504},
                     "o5": {"kind": "reset"}, "o6": {"kind": "malformed"}}
            fids = [sim.fault(order=o, **k) for o, k in kinds.items()]
            for o in orders:
                d.wait_event(lambda e, o=o: e["type"] == "provwatch.order.fetch_failed" and e["data"]["order_id"] == o,
                             20, f"{o} fetch_failed", n0)
            check(not of_type(d.all_events[n0:], "lineitem.changed"), "an event from a bad answer")
            check(snapshots(env) == before, "a snapshot changed during the storm")
            log = d.log()
            for o in orders:
                check(f"Poll of order '{o}' (customer '{C}') failed: " in log, f"no log line for {o}:\n{log}")
            ff = {e["data"]["order_id"]: e["data"] for e in of_type(d.all_events[n0:], "order.fetch_failed")}
            check(ff["o1"]["http_status"] == 500 and ff["o1"]["reason"].startswith("HTTP 500"), str(ff["o1"]))
            check(ff["o6"]["http_status"] == 200 and ff["o6"]["reason"].startswith("unexpected answer"), str(ff["o6"]))
            for fid in fids:
                sim.control("DELETE", f"fault/{fid}")
            for o in orders:
                d.wait_event(lambda e, o=o: e["type"] == "provwatch.lineitem.changed" and e["data"]["order_id"] == o,
                             30, f"{o} recovers with its change", n0)
            # every order polled fine once more after its recovery: nothing is reported twice
            mark = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: {r["order"] for r in sim.requests(mark) if r["status"] == 200} >= set(orders), 20,
                       "every order polled again")
            check(d.stop() == 0, "clean exit")
            later = d.all_events[n0:]
            for o in orders:
                for t in ("order.fetch_failed", "order.recovered", "lineitem.changed"):
                    n = len(of_type(later, t, o))
                    check(n == 1, f"{o}: {n} {t} events")
                rec = of_type(later, "order.recovered", o)[0]
                chg = of_type(later, "lineitem.changed", o)[0]
                check(later.index(rec) < later.index(chg), f"{o}: recovered comes before the change")
            # failed polls were retried with backoff (10 s, jitter 0.8-1.2), not at the 1 s interval; a
            # poll is one MS-CorrelationId (curl itself resends a request whose reused connection died)
            reqs = [r for r in sim.requests(idx) if r["order"]]
            for o in orders:
                mine, seen = [], set()
                for r in reqs:
                    if r["order"] == o and r["headers"]["MS-CorrelationId"] not in seen:
                        seen.add(r["headers"]["MS-CorrelationId"])
                        mine.append(r)
                for a, b in zip(mine, mine[1:]):
                    if a["faults"]:
                        gap = b["mono"] - a["mono"]
                        check(gap > 7.5, f"{o}: retried {gap:.1f}s after a failed poll")
        finally:
            stopped(d)
    finally:
        sim.stop()
        env.cleanup()


def test_daemon_429_storm_without_retry_after():
    """429s without Retry-After: every request pauses, 5 s then 10 s (exponential)."""
    env = Env("faults-429")
    sim = Sim(env.dir, scenario=SCENARIO)
    orders = [f"o{i}" for i in range(1, 4)]
    try:
        cfg = env.config(sim, [(C, o) for o in orders], poll={"interval": "1s", "concurrency": "1"})
        d = Daemon(cfg)
        try:
            for o in orders:
                d.wait_event(added(o), 20, f"{o} added")
            n0 = len(d.all_events)
            before = snapshots(env)
            sim.control("POST", "advance", {"customer": C, "order": "o1"})
            idx = sim.control("GET", "requests?since=0")["next"]
            sim.fault(kind="429", retry_after=None, count=2)
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed", 40, "the change after the storm", n0)
            reqs = [r for r in sim.requests(idx) if r["order"]]
            r429 = [r for r in reqs if r["status"] == 429]
            check(len(r429) == 2, f"{len(r429)} answers 429")
            gap1 = r429[1]["mono"] - r429[0]["mono"]
            after = [r for r in reqs if r["mono"] > r429[1]["mono"]]
            gap2 = after[0]["mono"] - r429[1]["mono"]
            check(4.8 < gap1 < 7, f"paused {gap1:.1f}s after the first 429 (expected 5 s)")
            check(9.8 < gap2 < 13, f"paused {gap2:.1f}s after the second 429 (expected 10 s)")
            check(snapshots(env) != before, "the snapshot follows the change")
            log = d.log()
            check("Partner Center throttles requests (HTTP 429); pausing all polls for 5 s." in log, log)
            check("Partner Center throttles requests (HTTP 429); pausing all polls for 10 s." in log, log)
            mark = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: len([r for r in sim.requests(mark) if r["order"] == "o1" and r["status"] == 200]) >= 1,
                       10, "o1 polled again")
            # a throttled poll is sent again as the same request
            for r in r429:
                resent = wait_until(lambda r=r: next((q for q in sim.requests(r["index"] + 1) if q["order"] == r["order"]),
                                                     None), 10, f"{r['order']} polled after its 429")
                check(resent["headers"]["MS-RequestId"] == r["headers"]["MS-RequestId"],
                      f"{r['order']}: MS-RequestId {r['headers']['MS-RequestId']} after the 429, "
                      f"{resent['headers']['MS-RequestId']} when sent again")
            check(d.stop() == 0, "clean exit")
            check(len(of_type(d.all_events[n0:], "lineitem.changed")) == 1, f"{summary(d.all_events[n0:])}")
            check(not of_type(d.all_events[n0:], "order.fetch_failed"), "429 is not a failed poll")
        finally:
            stopped(d)
    finally:
        sim.stop()
        env.cleanup()


def test_daemon_timeout_retries_under_the_same_request_id():
    env = Env("faults-timeout")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = env.config(sim, [(C, "o1")], poll={"interval": "1s"}, pc={"timeout": "2s"})
        d = Daemon(cfg)
        try:
            d.wait_event(added("o1"), 20, "o1 added")
            n0 = len(d.all_events)
            idx = sim.control("GET", "requests?since=0")["next"]
            sim.fault(kind="slow", delay=3, order="o1", count=1)
            sim.control("POST", "advance", {"customer": C, "order": "o1"})
            d.wait_log("Poll of order 'o1' (customer 'c1') failed: transport error: Operation timed out after ", 10,
                       "the timeout logged")
            changed = d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed", 20, "the change after the timeout",
                                   n0)
            reqs = [r for r in sim.requests(idx) if r["order"] == "o1"]
            slow = next(i for i, r in enumerate(reqs) if r["faults"] == ["slow"])
            retry = reqs[slow + 1]
            # the timed-out answer (sent later, in full) changed nothing: the change came from the retry
            check(d.printed_at[changed["id"]] > retry["mono"], "the change was printed before the retry was sent")
            check(retry["headers"]["MS-RequestId"] == reqs[slow]["headers"]["MS-RequestId"],
                  "the retry of a timed-out request keeps its MS-RequestId")
            check(retry["headers"]["MS-CorrelationId"] != reqs[slow]["headers"]["MS-CorrelationId"],
                  "the retry has a new MS-CorrelationId")
            nxt = reqs[slow + 2] if len(reqs) > slow + 2 else None
            if nxt:
                check(nxt["headers"]["MS-RequestId"] != retry["headers"]["MS-RequestId"], "a new poll, a new request id")
            check(d.stop() == 0, "clean exit")
            check(len(of_type(d.all_events[n0:], "lineitem.changed")) == 1, summary(d.all_events[n0:]))
        finally:
            stopped(d)
    finally:
        sim.stop()
        env.cleanup()


def test_daemon_token_faults_then_recovery():
    """A 401 mid-run needs a new token; the token endpoint answers 500, then invalid_grant, then resets
    the connection; polling waits and the change is reported once the endpoint is back."""
    env = Env("faults-token")
    sim = Sim(env.dir, "--strict-rotation", scenario=SCENARIO)
    try:
        cfg = env.config(sim, [(C, "o1"), (C, "o2")], poll={"interval": "1s", "failure-threshold": "1"})
        token_url = f"{sim.url}/tenant1/oauth2/token"
        d = Daemon(cfg)
        try:
            d.wait_event(added("o1"), 20, "o1 added")
            d.wait_event(added("o2"), 20, "o2 added")
            n0 = len(d.all_events)
            tok0 = len(sim.requests(kind="token"))
            # The endpoint stays down until the daemon has said so: libcurl sends a request again by
            # itself when a reused connection dies before answering (up to five times, on whatever
            # connection to the host its pool holds), so a reset or two may never reach the daemon.
            sim.fault(target="token", count=1, kind="status", status=500)
            sim.fault(target="token", count=1, kind="invalid_grant")
            down = sim.fault(target="token", kind="down")
            sim.control("POST", "tokens/expire")
            expired = sim.control("GET", "requests?since=0")["next"]
            sim.control("POST", "advance", {"customer": C, "order": "o1"})
            wait_until(lambda: len([t for t in sim.requests(kind="token")[tok0:] if t["faults"]]) >= 3, 30,
                       "three failed token requests")
            # the simulator records a request before the daemon has read its answer
            for line in (f"Cannot obtain an access token: token endpoint {token_url} answered HTTP 500",
                         "The token endpoint rejected the refresh token (invalid_grant: AADSTS700082",
                         f"Cannot obtain an access token: token endpoint {token_url} unreachable: "):
                d.wait_log(line, 20)
            sim.control("DELETE", f"fault/{down}")
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed", 30, "the change with the new token", n0)
            new_token = next(t for t in sim.requests(expired, kind="token") if t["status"] == 200)
            answered = [r for r in sim.requests(expired) if r["index"] < new_token["index"] and r["status"] == 200]
            check(not answered, f"answered without a token: {answered}")
            mark = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: {r["order"] for r in sim.requests(mark) if r["status"] == 200} >= {"o1", "o2"}, 10,
                       "both polled again")
            check(d.stop() == 0, "clean exit")
            later = d.all_events[n0:]
            # the refused refresh token is said once (SPEC §9), and so is the recovery
            check(summary(later) == [("auth.failed", "tenants/tenant1"), ("auth.recovered", "tenants/tenant1"),
                                     ("lineitem.changed", f"customers/{C}/orders/o1/lineitems/0")],
                  f"events: {summary(later)}")
            toks = sim.requests(kind="token")
            check(all(t["token"]["refresh_token"] == "valid" for t in toks), "a superseded refresh token was used")
        finally:
            stopped(d)
    finally:
        sim.stop()
        env.cleanup()


def access_token(sim):
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "test-client",
                                   "client_secret": "test-secret", "resource": "x"}).encode()
    req = urllib.request.Request(f"{sim.url}/t1/oauth2/token", data=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["access_token"]


def test_daemon_token_file_missing_then_rejected():
    """auth = token-file: a token file that is not there yet, then one that Partner Center rejects;
    polling resumes when the file (re)appears, without a reload."""
    env = Env("faults-tokenfile")
    sim = Sim(env.dir, scenario=SCENARIO)
    tok = os.path.join(env.dir, "token")
    try:
        cfg = env.config(sim, [(C, "o1")], poll={"interval": "1s"},
                         pc={"auth": "token-file", "token-file": tok, "tenant-id": None, "client-id": None,
                             "client-secret-file": None, "refresh-token-file": None, "token-endpoint": None})
        d = Daemon(cfg)
        try:
            d.wait_log(f"Cannot read token-file '{tok}': No such file or directory", 10, "the missing token file logged")
            env.write("token.tmp", access_token(sim) + "\n", 0o600)
            os.rename(tok + ".tmp", tok)
            d.wait_event(added("o1"), 10, "o1 added once the token file is there")
            n0 = len(d.all_events)
            before = snapshots(env)
            sim.control("POST", "tokens/expire")
            sim.control("POST", "advance", {"customer": C, "order": "o1"})
            d.wait_log(f"Partner Center rejected the token in '{tok}' (HTTP 401)", 10, "the rejected token logged")
            d.wait_event(lambda e: e["type"] == "provwatch.auth.failed", 10, "auth.failed for the rejected token", n0)
            check(snapshots(env) == before and not [e for e in d.all_events[n0:] if "auth." not in e["type"]],
                  "something changed with a rejected token")
            env.write("token.tmp", access_token(sim) + "\n", 0o600)
            os.rename(tok + ".tmp", tok)
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed", 10, "the change with the new token", n0)
            mark = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: any(r["status"] == 200 for r in sim.requests(mark)), 10, "o1 polled again")
            check(d.stop() == 0, "clean exit")
            check(summary(d.all_events[n0:]) == [("auth.failed", "tenants/-"), ("auth.recovered", "tenants/-"),
                                                 ("lineitem.changed", f"customers/{C}/orders/o1/lineitems/0")],
                  summary(d.all_events[n0:]))
            check(d.log().count("Cannot read token-file") == 1, "the missing file is logged once, not at every look")
        finally:
            stopped(d)
    finally:
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main([test_once_faults_table, test_once_unknown_status_is_a_change, test_daemon_5xx_storm_backs_off_and_recovers,
          test_daemon_429_storm_without_retry_after, test_daemon_timeout_retries_under_the_same_request_id,
          test_daemon_token_faults_then_recovery, test_daemon_token_file_missing_then_rejected])
