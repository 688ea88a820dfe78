#!/usr/bin/env python3
"""Order discovery (SPEC §8): `provwatch run` with [discovery] on, against the simulator's activity log.

The record parser and the cursor arithmetic have their unit tests in test-audit-log.c and the fuzz
target fuzz-audit-log; here the real daemon reads the simulator's log. What each test checks comes
from three places: the daemon's events (--print-events), its log and state store, and the
simulator's request log (every Partner Center request with its query, headers and "op").

- discovery with names: one order.discovered per placed order, with the names exactly as placed,
  then line-item events carrying them; the activity-log request exactly as SPEC §8 says, its pages
  followed with the continuation header; the store and `provwatch status --json`.
- update_order: an update record of a watched order makes it due at once; the new line item is
  reported with its names.
- unusable records: one warning per unusable record, naming it, never repeated; the good records
  of the same pages are used; failed operations are not used and not warned about.
- restart: nothing discovered or announced again; reading resumes at the cursor; an order placed
  while the daemon was down is discovered.
- lookback on a first start: what is older is not discovered, what is newer is; the first startDate;
  never a startDate more than 89 days back, even with lookback = 89d.
- midnight UTC: the simulator's clock set to 23:59:30; orders before and after midnight are
  discovered once each, and the reads' startDate follows the cursor into the new day.
- allow-list: only the listed customers' orders; the others' once the list is cleared by a reload.
- forget-after: a discovered order settled that long is no longer polled, a configured order that
  is settled keeps being polled at settled-interval.
- budget: every Partner Center request (polls, activity-log pages, the sweep's customers and
  order lists, 401 retries; not token requests) stays within max-requests-per-minute in every
  sliding 60-second window.
- 400, 5xx (on a continuation page) and 429 on the activity log: a warning naming the reason and
  the support handles, backoff between the tries, and no order lost or discovered twice.
- kill -9 around large discovery commits: every order discovered exactly once across all runs,
  the store agreeing.
"""

import datetime
import http.client
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import time

from harness import (Daemon, Env, Failure, Sim, WebhookReceiver, check, main, printed_events, provwatch_binary,
                     run, wait_until)

FILTER = '{"Field":"ResourceType","Value":"Order","Operator":"equals"}'
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PERCENT_ENCODED = re.compile(r"^(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})*$")
PAGE_SIZE = 500
DAY = 86400

CUST_A = "7b21e0c4-58d9-4f0a-b3e6-91c2d4a6f8e0"
CUST_B = "3f9a1c2e-4b5d-4e6f-8a7b-9c0d1e2f3a4b"
CUST_C = "c0ffee00-1111-4222-8333-944455566677"

BP = ("CFQ7TTC0LH18:0001:CFQ7TTC0KHS4", "Microsoft 365 Business Premium")
E3 = ("CFQ7TTC0LF8Q:0001:CFQ7TTC0J1FV", "Microsoft 365 E3")
DEFENDER = ("CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF", "Microsoft Defender for Endpoint P1")
EXCHANGE = ("CFQ7TTC0LCHC:0002:CFQ7TTC0KDLJ", "Exchange Online (Plan 1)")


# ---- helpers ----

def discovery_config(env: Env, sim: Sim, orders=(), poll=None, discovery=None, extra: str = "",
                     name: str = "provwatch.conf") -> str:
    """A configuration with [discovery] on (read every second), polls every 2 s unless told."""
    d = {"enabled": "yes", "interval": "1s", "lookback": "1d"}
    d.update(discovery or {})
    p = {"interval": "2s"}
    p.update(poll or {})
    text = "\n[discovery]\n" + "\n".join(f"{k} = {v}" for k, v in d.items()) + "\n" + extra
    return env.config(sim, list(orders), poll=p, extra=text, name=name)


class Control:
    """The simulator's control API over one kept-alive connection, for writing many records fast."""

    def __init__(self, sim: Sim):
        self.conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)

    def post(self, path: str, body: dict) -> dict:
        self.conn.request("POST", "/_control/" + path, json.dumps(body), {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise Failure(f"POST /_control/{path} {body}: {r.status} {data!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


def place(sim: Sim, customer: str, items: list, name=None, **kw) -> dict:
    """POST /_control/place; returns the placed order's state (ORDER_STATE) with its record."""
    body = {"customer": customer, "line_items": items, **kw}
    if name is not None:
        body["customer_name"] = name
    answer = sim.control("POST", "place", body)
    return {**answer["order"], "record": answer["record"], "audit": answer["audit"]}


def fillers(sim: Sim, n: int, offset: float, customer: str = "cust-filler") -> None:
    """n failed create_order records: in the activity log and its pages, never used."""
    ctl = Control(sim)
    try:
        for i in range(n):
            ctl.post("auditrecords", {"operation": "create_order", "customer": customer, "order": f"filler{i}",
                                      "status": "failed", "offset": offset})
    finally:
        ctl.close()


def of_type(events: list, kind: str, order=None) -> list:
    return [e for e in events if e["type"] == "provwatch." + kind and (order is None or e["data"]["order_id"] == order)]


def is_event(kind: str, order: str, number=None):
    return lambda e: e["type"] == "provwatch." + kind and e["data"]["order_id"] == order and \
        (number is None or e["data"].get("line_item_number") == number)


def api_requests(sim: Sim, op=None, since: int = 0) -> list:
    return [r for r in sim.requests(since) if op is None or r["op"] == op]


def log_reads(sim: Sim, since: int = 0) -> list:
    """First pages of activity-log reads (a continuation page has seekOperation=Next)."""
    return [r for r in api_requests(sim, "auditrecords", since) if "seekOperation" not in r["query"]]


def polls_of(sim: Sim, order: str, since: int = 0) -> list:
    return [r for r in api_requests(sim, "provisioningstatus", since) if r["order"] == order]


def request_index(sim: Sim) -> int:
    return sim.control("GET", "requests?since=1000000000&limit=0")["next"]


def utc_date(unix: float) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).date().isoformat()


def parse_time(s: str) -> float:
    """RFC 3339 with up to 7 fractional digits -> Unix seconds."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", s)
    check(m, f"not an RFC 3339 UTC time: {s!r}")
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + (float("0." + m.group(2)) if m.group(2) else 0.0)


def store_query(env: Env, sql: str, args=()) -> list:
    db = sqlite3.connect(f"file:{env.state}/provwatch.db?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def store_kv(env: Env, key: str):
    rows = store_query(env, "SELECT value FROM kv WHERE key = ?", (key,))
    return rows[0][0] if rows else None


def discovered_rows(env: Env) -> dict:
    """{(customer, order): (names as JSON or None, discovered usec)} of the orders discovery found."""
    return {(c, o): (json.loads(n) if n else None, d) for c, o, n, d in
            store_query(env, "SELECT customer_id, order_id, names, discovered FROM orders WHERE discovered > 0")}


def expected_line_items(o: dict) -> list:
    """order.discovered's line_items for a placed order, from the simulator's own state."""
    return [{"line_item_number": li["number"], "offer_id": li["offer_id"], "friendly_name": li["friendly_name"],
             "quantity": li["quantity"]} for li in sorted(o["line_items"], key=lambda li: li["number"])]


def check_discovered_once(events: list, placed: list, what: str) -> dict:
    """Exactly one order.discovered per placed order, none for anything else; returns them by order."""
    found = {}
    wanted = {(o["customer"], o["order"]) for o in placed}
    for e in of_type(events, "order.discovered"):
        key = (e["data"]["customer_id"], e["data"]["order_id"])
        check(key in wanted, f"{what}: discovered an order that was not placed: {key}")
        check(key not in found, f"{what}: order {key} discovered twice: {found.get(key, {}).get('id')} and {e['id']}")
        found[key] = e
    missing = wanted - set(found)
    check(not missing, f"{what}: not discovered: {sorted(missing)}")
    return found


def stop_daemon(d: Daemon) -> None:
    """In finally blocks: whatever happened, no daemon outlives its test."""
    if d is not None and d.proc.poll() is None:
        d.stop(signal.SIGKILL)


def wait_running(d: Daemon, pred, timeout: float, what: str):
    """wait_until, failing at once (with the daemon's log) when the daemon is no longer running."""
    def alive_pred():
        v = pred()
        if not v and d.proc.poll() is not None:
            raise Failure(f"daemon exited with {d.proc.returncode} while waiting for {what}; log:\n{d.log_tail()}")
        return v
    return wait_until(alive_pred, timeout, what)


# ---- the tests ----

def test_discovery_with_names():
    env = Env("disc-names")
    sim = Sim(env.dir)
    d = None
    try:
        # more than a page of older records, so that every read of the log takes two requests and the
        # placed orders are on the second page
        fillers(sim, PAGE_SIZE + 10, offset=600)
        placed = [
            place(sim, CUST_A, [{"number": 0, "olid": 0, "offer_id": BP[0], "friendly_name": BP[1], "quantity": 25},
                                {"number": 1, "olid": 1, "offer_id": DEFENDER[0], "friendly_name": DEFENDER[1],
                                 "quantity": 25}],
                  name="Fabrikam Ltd", fulfil_after=None),
            place(sim, CUST_B, [{"number": 0, "offer_id": E3[0], "friendly_name": "Microsoft 365 E3 — Grüße & <Co>",
                                 "quantity": 120}],
                  name="Northwind Träders & Sons", fulfil_after=None),
            # nothing but a quantity: the simulator's catalog names it
            place(sim, CUST_A, [{"quantity": 4}], fulfil_after=None),
        ]
        cfg = discovery_config(env, sim)
        d = Daemon(cfg)
        for o in placed:
            for li in o["line_items"]:
                d.wait_event(is_event("lineitem.added", o["order"], li["number"]), 30,
                             f"line item {li['number']} of {o['order']} added")
        found = check_discovered_once(d.all_events, placed, "first run")
        for o in placed:
            e = found[(o["customer"], o["order"])]
            data = e["data"]
            check(e["subject"] == f"customers/{o['customer']}/orders/{o['order']}", f"subject {e['subject']}")
            check(data["customer_name"] == o["customer_name"], f"customer_name {data['customer_name']!r}, "
                  f"placed as {o['customer_name']!r}")
            check(data["line_items"] == expected_line_items(o),
                  f"line_items {data['line_items']}, placed {expected_line_items(o)}")
            check(abs(parse_time(data["operation_date"]) - parse_time(o["record"]["operationDate"])) < 1,
                  f"operation_date {data['operation_date']} vs the record's {o['record']['operationDate']}")
            # the order's later events carry its names, and come after its discovery
            names = {li["number"]: li for li in o["line_items"]}
            order_events = [x for x in d.all_events if x["data"]["order_id"] == o["order"]]
            check(order_events[0]["id"] == e["id"], f"{o['order']}: the first event is {order_events[0]['type']}")
            for x in order_events[1:]:
                check(x["data"]["customer_name"] == o["customer_name"], f"{x['type']}: customer_name "
                      f"{x['data'].get('customer_name')!r}")
                if x["type"].startswith("provwatch.lineitem."):
                    li = names[x["data"]["line_item_number"]]
                    check((x["data"]["offer_id"], x["data"]["friendly_name"]) == (li["offer_id"], li["friendly_name"]),
                          f"{x['type']} of line item {li['number']}: {x['data']['offer_id']!r}, "
                          f"{x['data']['friendly_name']!r}; placed {li['offer_id']!r}, {li['friendly_name']!r}")

        # the activity log request, exactly as SPEC §8 has it, every page with the usual headers
        log = api_requests(sim, "auditrecords")
        check(log and "seekOperation" not in log[0]["query"], f"the first activity-log request: {log[:1]}")
        first = log[0]
        path, _, query = first["path"].partition("?")
        check(path == "/v1/auditrecords", f"path {path}")
        params = [p.split("=", 1) for p in query.split("&")]
        check([k for k, _ in params] == ["startDate", "size", "filter"], f"parameters {query}")
        check(first["query"]["size"] == "500", f"size {first['query']['size']}")
        check(first["query"]["filter"] == FILTER, f"filter {first['query']['filter']}")
        check(PERCENT_ENCODED.match(dict(params)["filter"]), f"the filter is not URL-encoded: {query}")
        # no cursor yet: now minus lookback (1d) minus 15 minutes
        start = first["query"]["startDate"]
        check(start in {utc_date(first["wall"] - DAY - 900), utc_date(first["wall"] - 5 - DAY - 900)},
              f"first startDate {start}, the request was made at {first['wall']}")
        for r in log:
            h = r["headers"]
            check(UUID.match(h["MS-CorrelationId"] or "") and UUID.match(h["MS-RequestId"] or ""),
                  f"support ids {h}")
            check(h["Accept"] == "application/json" and h["X-Locale"] == "en-US" and
                  (h["User-Agent"] or "").startswith("provwatch/"), f"headers {h}")
            check(r["auth"] == "valid" and r["status"] == 200 and r["result"] == "ok",
                  f"{r['path']}: {r['status']} {r['result']}")
        check(len({r["headers"]["MS-CorrelationId"] for r in log}) == len(log), "an MS-CorrelationId was reused")
        # every read is two pages: the second one asked for with links.next and its continuation header
        for a, b in zip(log, log[1:]):
            if "seekOperation" in b["query"]:
                check("seekOperation" not in a["query"], "a third page")
                check(b["path"].startswith("/v1/auditrecords?") and b["query"]["startDate"] == a["query"]["startDate"]
                      and b["query"]["seekOperation"] == "Next", f"continuation {b['path']} after {a['path']}")
                check(b["headers"]["MS-ContinuationToken"], f"continuation without its header: {b['headers']}")
        firsts = [r for r in log if "seekOperation" not in r["query"]]
        seconds = [r for r in log if "seekOperation" in r["query"]]
        check(len(seconds) >= len(firsts) - 1 and seconds, f"{len(firsts)} reads, {len(seconds)} second pages")
        check(log[1] in seconds, "the first read did not follow links.next")

        # the store keeps the names with each order, and the cursor
        rows = discovered_rows(env)
        check(set(rows) == {(o["customer"], o["order"]) for o in placed}, f"discovered rows {sorted(rows)}")
        for o in placed:
            names, _ = rows[(o["customer"], o["order"])]
            check(names and names.get("customer") == o["customer_name"], f"stored names {names}")
            check([(i["n"], i.get("offer"), i.get("name"), i.get("q")) for i in names["items"]] ==
                  [(li["line_item_number"], li["offer_id"], li["friendly_name"], li["quantity"])
                   for li in expected_line_items(o)], f"stored line item names {names['items']}")
        newest = max(parse_time(o["record"]["operationDate"]) for o in placed)
        cursor = int(store_kv(env, "discovery-cursor") or 0)
        check(abs(cursor / 1e6 - newest) < 0.001, f"cursor {cursor} vs the newest record {newest}")
        check(d.stop() == 0, "clean exit")

        # `provwatch status --json`: each order's source and names, the discovery cursor and last read
        p = run(["-c", cfg, "status", "--json"])
        check(p.returncode == 0, f"status: {p.returncode} {p.stderr}")
        st = json.loads(p.stdout)
        listed = {(o["customer_id"], o["order_id"]): o for o in st["orders"]}
        for o in placed:
            s = listed.get((o["customer"], o["order"]))
            check(s is not None, f"status does not list {o['order']}")
            check(s.get("source") == "discovery" and s.get("watched") is True,
                  f"status of a discovered order: source {s.get('source')!r} (SPEC §8: config, orders-dir or "
                  f"discovery), watched {s.get('watched')!r}; {s}")
            check(s.get("customer_name") == o["customer_name"], f"status: no customer_name in {s}")
        disc = st.get("discovery")
        check(isinstance(disc, dict) and disc.get("cursor") and disc.get("last_read") and disc.get("last_result"),
              f"status --json has no discovery cursor / last read / result: keys {sorted(st)}")
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


def test_update_order_repoll():
    env = Env("disc-update")
    sim = Sim(env.dir)
    d = None
    try:
        o = place(sim, CUST_A, [{"number": 0, "offer_id": BP[0], "friendly_name": BP[1], "quantity": 10}],
                  name="Fabrikam Ltd", fulfil_after=None)
        # polls are ten minutes apart: only the update record can make the order due again soon
        cfg = discovery_config(env, sim, poll={"interval": "10m", "settled-interval": "10m"})
        d = Daemon(cfg)
        d.wait_event(is_event("lineitem.added", o["order"], 0), 30, "the order's first poll")
        n_polls = len(polls_of(sim, o["order"]))
        check(n_polls == 1, f"{n_polls} polls before the update")
        mark = len(d.all_events)
        t0 = time.monotonic()
        upd = sim.control("POST", "auditrecords", {
            "operation": "update_order", "customer": CUST_A, "order": o["order"], "fulfil_after": None,
            "add_line_items": [{"number": 1, "offer_id": EXCHANGE[0], "friendly_name": EXCHANGE[1], "quantity": 7}]})
        check(len(upd["order"]["line_items"]) == 2, f"the simulator's order after the update: {upd['order']}")
        ev = d.wait_event(is_event("lineitem.added", o["order"], 1), 30, "the added line item", since=mark)
        took = time.monotonic() - t0
        polls = polls_of(sim, o["order"])
        check(len(polls) == 2, f"{len(polls)} polls of the order")
        check(polls[1]["mono"] - t0 < 15, f"the update made the order due after {polls[1]['mono'] - t0:.1f}s")
        # the new line item is named by the update record
        check((ev["data"]["offer_id"], ev["data"]["friendly_name"], ev["data"]["customer_name"]) ==
              (EXCHANGE[0], EXCHANGE[1], "Fabrikam Ltd"), f"names of the added line item: {ev['data']}")
        check(ev["data"]["new"] == {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 7}},
              f"new state {ev['data']['new']}")
        later = d.all_events[mark:]
        check([e["type"] for e in later] == ["provwatch.lineitem.added"],
              f"events after the update: {[(e['type'], e['data'].get('line_item_number')) for e in later]}")
        check(len(of_type(d.all_events, "order.discovered")) == 1, "the update discovered the order again")
        rows = discovered_rows(env)
        names = rows[(CUST_A, o["order"])][0]
        check([i["n"] for i in names["items"]] == [0, 1], f"stored names after the update: {names}")
        print(f"  update to poll: {took:.1f}s")
        check(d.stop() == 0, "clean exit")
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


def test_unusable_records_skipped():
    env = Env("disc-unusable")
    sim = Sim(env.dir)
    d = None
    try:
        good1 = place(sim, CUST_A, [{"quantity": 1}], name="Fabrikam Ltd", fulfil_after=None, offset=30)
        now = datetime.datetime.now(datetime.timezone.utc)
        date = (now - datetime.timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        base = {"resourceType": "order", "operationType": "create_order", "operationStatus": "succeeded",
                "operationDate": date, "customerName": "Broken Ltd"}
        unusable = {}  # how the warning names it -> the record
        raws = [
            {**base, "id": "rec-no-customer", "customizedData": [{"key": "OrderId", "value": "noCustomer1"}]},
            {**base, "id": "rec-no-order-id", "customerId": CUST_B,
             "resourceNewValue": json.dumps({"LineItems": [], "Status": "pending"})},
            {**base, "id": "rec-bad-customer", "customerId": "not a customer/../id",
             "customizedData": [{"key": "OrderId", "value": "badCustomer1"}]},
            {**base, "id": "rec-bad-date", "customerId": CUST_B, "operationDate": "yesterday",
             "customizedData": [{"key": "OrderId", "value": "badDate1"}]},
        ]
        for raw in raws:
            sim.control("POST", "auditrecords", {"raw": raw, "date": date})
            unusable[f"'{raw['id']}'"] = raw
        # no id and no usable value: named by its place on the page
        noid = {"resourceType": "Order", "operationType": "Create_Order", "customerId": "cust-noid",
                "resourceNewValue": "not json", "operationDate": "garbage"}
        sim.control("POST", "auditrecords", {"raw": noid, "date": date})
        unusable["customer 'cust-noid'"] = noid
        # a record built like Partner Center's, but its resourceNewValue is not JSON
        bad_value = sim.control("POST", "auditrecords", {"operation": "create_order", "customer": CUST_B,
                                                         "order": "brokenValue1", "resource_new_value": "{\"Id\":",
                                                         "offset": 15})["record"]
        unusable[f"'{bad_value['id']}'"] = bad_value
        # not used, and nothing to warn about: a failed operation, another operation, another resource
        failed = sim.control("POST", "auditrecords", {"operation": "create_order", "customer": CUST_B,
                                                      "order": "failedOrder1", "status": "failed", "offset": 12})
        other_op = sim.control("POST", "auditrecords", {"operation": "delete_order", "customer": CUST_B,
                                                        "order": "deletedOrder1", "offset": 11})
        other_type = sim.control("POST", "auditrecords", {"operation": "update_customer", "customer": CUST_B,
                                                          "resource_type": "customer", "offset": 10})
        good2 = place(sim, CUST_B, [{"offer_id": E3[0], "friendly_name": E3[1], "quantity": 2}],
                      name="Northwind Traders", fulfil_after=None)

        cfg = discovery_config(env, sim)
        d = Daemon(cfg)
        for o in (good1, good2):
            d.wait_event(is_event("lineitem.added", o["order"]), 30, f"{o['order']} polled")
        # three more reads of the same records: the warnings are not repeated
        reads = len(log_reads(sim))
        wait_running(d, lambda: len(log_reads(sim)) >= reads + 3, 30, "three more reads of the activity log")
        check(d.stop() == 0, "clean exit")

        found = check_discovered_once(d.all_events, [good1, good2], "unusable records")
        check(found[(CUST_A, good1["order"])]["data"]["customer_name"] == "Fabrikam Ltd", "good1 names")
        warnings = [line for line in d.log().splitlines() if "Skipping activity log record" in line]
        for label in unusable:
            mine = [w for w in warnings if label in w]
            check(len(mine) == 1, f"record {label}: {len(mine)} warnings: {mine}")
            check(mine[0].startswith("provwatch: warning: "), f"not a warning: {mine[0]}")
        check(len(warnings) == len(unusable), f"{len(warnings)} warnings for {len(unusable)} unusable records:\n"
              + "\n".join(warnings))
        for rec in (failed["record"], other_op["record"], other_type["record"]):
            check(not [w for w in warnings if rec["id"] in w], f"record {rec['id']} was warned about")
        polled = {r["order"] for r in api_requests(sim, "provisioningstatus")}
        check(polled == {good1["order"], good2["order"]}, f"polled orders {sorted(polled)}")
        # the unusable records are remembered as processed; the ignored ones need not be
        seen = {k for (k,) in store_query(env, "SELECT key FROM discovery_seen")}
        for label, rec in unusable.items():
            if "id" in rec:
                check(rec["id"] in seen, f"unusable record {label} is not marked as processed")
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


def test_restart_no_rediscovery():
    env = Env("disc-restart")
    sim = Sim(env.dir)
    d = d2 = None
    try:
        a = place(sim, CUST_A, [{"quantity": 3}], name="Fabrikam Ltd", fulfil_after=None)
        b = place(sim, CUST_B, [{"quantity": 1}, {"quantity": 2}], name="Northwind Traders", fulfil_after=1)
        # a long lookback, so that the first read (now - 3d) and the reads after a restart (the cursor) differ
        cfg = discovery_config(env, sim, discovery={"lookback": "3d"})
        d = Daemon(cfg)
        d.wait_event(is_event("lineitem.added", a["order"]), 30, "a polled")
        d.wait_event(is_event("order.completed", b["order"]), 30, "b completed")
        check(d.stop() == 0, "clean exit")
        check_discovered_once(d.all_events, [a, b], "first run")
        first_read = log_reads(sim)[0]
        check(first_read["query"]["startDate"] in {utc_date(first_read["wall"] - 3 * DAY - 900),
                                                    utc_date(first_read["wall"] - 5 - 3 * DAY - 900)},
              f"first startDate {first_read['query']['startDate']}")
        cursor = int(store_kv(env, "discovery-cursor") or 0) / 1e6
        newest = max(parse_time(o["record"]["operationDate"]) for o in (a, b))
        check(abs(cursor - newest) < 0.001, f"cursor {cursor} vs the newest record {newest}")

        # while the daemon is down: an order placed now, and one whose record shows up late, dated a few
        # minutes before the cursor (inside the 15 minutes read again)
        idx = request_index(sim)
        c = place(sim, CUST_C, [{"offer_id": E3[0], "friendly_name": E3[1], "quantity": 5}], name="Contoso",
                  fulfil_after=None)
        late_date = datetime.datetime.fromtimestamp(cursor - 300, datetime.timezone.utc)
        late = place(sim, CUST_A, [{"quantity": 2}], name="Fabrikam Ltd", fulfil_after=None,
                     date=late_date.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        d2 = Daemon(cfg)
        for o in (c, late):
            d2.wait_event(is_event("lineitem.added", o["order"]), 30, f"{o['order']} discovered after the restart")
        # the unsettled old order is polled again, and the log read twice more
        wait_running(d2, lambda: polls_of(sim, a["order"], idx), 30, "a polled after the restart")
        reads = len(log_reads(sim, idx))
        wait_running(d2, lambda: len(log_reads(sim, idx)) >= reads + 2, 30, "two more reads")
        check(d2.stop() == 0, "clean exit")

        found = check_discovered_once(d2.all_events, [c, late], "after the restart")
        check(found[(CUST_C, c["order"])]["data"]["line_items"] == expected_line_items(c), "c's line items")
        stale = [(e["type"], e["data"]["order_id"]) for e in d2.all_events
                 if e["data"]["order_id"] in (a["order"], b["order"])]
        check(not stale, f"re-announced after the restart: {stale}")
        # reading resumed at the cursor, not at now - lookback
        resumed = log_reads(sim, idx)[0]
        check(resumed["query"]["startDate"] == utc_date(cursor - 900),
              f"startDate after the restart {resumed['query']['startDate']}, cursor {cursor}")
        check(set(discovered_rows(env)) == {(o["customer"], o["order"]) for o in (a, b, c, late)},
              f"discovered rows {sorted(discovered_rows(env))}")
    finally:
        stop_daemon(d)
        stop_daemon(d2)
        sim.stop()
        env.cleanup()


def test_lookback_on_first_start():
    env = Env("disc-lookback")
    sim = Sim(env.dir)
    d = None
    try:
        now = time.time()
        # lookback chosen so that now - lookback is 12:00 UTC two days ago: the day of the first startDate
        # holds records on both sides of it
        target = (int(now) // DAY) * DAY + 12 * 3600 - 2 * DAY

        def at(unix: float) -> str:
            return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        def placed(name: str, when: float) -> dict:
            return place(sim, CUST_A, [{"quantity": 1}], name=name, fulfil_after=None, date=at(when))

        ancient = placed("ancient", now - 95 * DAY)
        far = placed("far", now - 88 * DAY)
        day_before = placed("day before", target - DAY)
        same_day_older = placed("same day, older", target - 3 * 3600)
        newer = placed("newer", target + 3600)
        recent = placed("recent", now - 60)

        # lookback = 89d on a first start: never a startDate more than 89 days back
        cfg = discovery_config(env, sim, discovery={"lookback": "89d"}, poll={"interval": "1m"})
        d = Daemon(cfg)
        want = [far, day_before, same_day_older, newer, recent]
        for o in want:
            d.wait_event(is_event("order.discovered", o["order"]), 30, f"{o['customer_name']} discovered")
        reads = len(log_reads(sim))
        wait_running(d, lambda: len(log_reads(sim)) >= reads + 2, 30, "two more reads")
        check(d.stop() == 0, "clean exit")
        check_discovered_once(d.all_events, want, "lookback 89d")
        first = log_reads(sim)[0]
        check(first["query"]["startDate"] in {utc_date(first["wall"] - 89 * DAY),
                                              utc_date(first["wall"] - 5 - 89 * DAY)},
              f"startDate with lookback 89d: {first['query']['startDate']}")
        today = datetime.date.fromisoformat(sim.control("GET", "clock")["today"])
        for r in api_requests(sim, "auditrecords"):
            back = (today - datetime.date.fromisoformat(r["query"]["startDate"])).days
            check(back <= 89 and r["status"] == 200, f"startDate {r['query']['startDate']} ({back} days back): "
                  f"{r['status']} {r['result']}")
        check("cannot be discovered any more" not in d.log(), "a gap was reported on a first start")

        # a lookback landing at 12:00 UTC: the first startDate is that day; what is older than now - lookback
        # is not discovered (SPEC §8: on the first start, orders created this far back), what is newer is
        env2 = Env("disc-lookback2")
        try:
            idx = request_index(sim)
            lookback = int(time.time() - target)
            cfg2 = discovery_config(env2, sim, discovery={"lookback": f"{lookback}s"}, poll={"interval": "1m"})
            d = Daemon(cfg2)
            for o in (newer, recent):
                d.wait_event(is_event("order.discovered", o["order"]), 30, f"{o['customer_name']} discovered")
            reads = len(log_reads(sim, idx))
            wait_running(d, lambda: len(log_reads(sim, idx)) >= reads + 2, 30, "two more reads")
            check(d.stop() == 0, "clean exit")
            first = log_reads(sim, idx)[0]
            check(first["query"]["startDate"] == utc_date(target), f"startDate {first['query']['startDate']} with "
                  f"now - lookback at {at(target)}")
            names = sorted(e["data"]["customer_name"] for e in of_type(d.all_events, "order.discovered"))
            check(names == ["newer", "recent"], f"lookback to {at(target)} discovered {names}; the orders were "
                  f"placed at: " + ", ".join(f"{o['customer_name']} {o['record']['operationDate']}"
                                            for o in (ancient, far, day_before, same_day_older, newer, recent)))
        finally:
            env2.cleanup()
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


def test_across_midnight_utc():
    env = Env("disc-midnight")
    sim = Sim(env.dir)
    d = None
    try:
        # yesterday 23:59:30 on the simulated clock: the daemon's first read (its own clock minus the
        # lookback) covers it, and the simulated today keeps that startDate within 90 days
        day1 = datetime.date.fromisoformat(utc_date(time.time() - DAY))
        day2 = day1 + datetime.timedelta(days=1)
        sim.control("POST", "clock", {"now": f"{day1}T23:59:30Z"})
        m1 = place(sim, CUST_A, [{"quantity": 1}], name="Fabrikam Ltd", fulfil_after=None)
        check(m1["record"]["operationDate"].startswith(f"{day1}T23:59:3"), f"m1 dated {m1['record']['operationDate']}")
        cfg = discovery_config(env, sim, discovery={"lookback": "1d"}, poll={"interval": "1m"})
        d = Daemon(cfg)
        e1 = d.wait_event(is_event("order.discovered", m1["order"]), 30, "m1 discovered")
        t1 = d.printed_at[e1["id"]]

        # past midnight; one more record dated just before it, written after it
        clock = sim.control("POST", "clock", {"advance": 60})
        check(clock["today"] == str(day2), f"simulated clock {clock}")
        m2 = place(sim, CUST_B, [{"quantity": 2}], name="Northwind Traders", fulfil_after=None)
        m2b = place(sim, CUST_B, [{"quantity": 3}], name="Northwind Traders", fulfil_after=None,
                    date=f"{day1}T23:59:59.9000000Z")
        for o in (m2, m2b):
            d.wait_event(is_event("order.discovered", o["order"]), 30, f"{o['order']} discovered")
        check(m2["record"]["operationDate"].startswith(f"{day2}T00:00:"), f"m2 dated {m2['record']['operationDate']}")

        # half an hour into the new day: the cursor minus 15 minutes is in it
        t_move = time.monotonic()
        sim.control("POST", "clock", {"now": f"{day2}T00:30:00Z"})
        m3 = place(sim, CUST_C, [{"quantity": 4}], name="Contoso", fulfil_after=None)
        e3 = d.wait_event(is_event("order.discovered", m3["order"]), 30, "m3 discovered")
        t3 = d.printed_at[e3["id"]]
        wait_running(d, lambda: len([r for r in log_reads(sim) if r["mono"] > t3]) >= 2, 30, "two reads after m3")
        check(d.stop() == 0, "clean exit")

        found = check_discovered_once(d.all_events, [m1, m2, m2b, m3], "across midnight")
        for o in (m1, m2, m2b, m3):
            got = found[(o["customer"], o["order"])]["data"]["operation_date"]
            check(abs(parse_time(got) - parse_time(o["record"]["operationDate"])) < 1,
                  f"operation_date {got}, the record's {o['record']['operationDate']}")
        reads = log_reads(sim)
        starts = [r["query"]["startDate"] for r in reads]
        check(starts == sorted(starts), f"startDate went backwards: {starts}")
        check(all(r["status"] == 200 for r in api_requests(sim, "auditrecords")), "a read failed")
        for r in reads:
            if t1 < r["mono"] < t_move:
                check(r["query"]["startDate"] == str(day1), f"a read with the cursor before 00:15: {r['query']}")
            if r["mono"] > t3:
                check(r["query"]["startDate"] == str(day2), f"a read with the cursor at 00:30: {r['query']}")
        cursor = int(store_kv(env, "discovery-cursor") or 0) / 1e6
        check(abs(cursor - parse_time(m3["record"]["operationDate"])) < 0.001, f"cursor {cursor}")
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


def test_allow_list():
    env = Env("disc-allow")
    sim = Sim(env.dir)
    d = None
    try:
        a1 = place(sim, CUST_A, [{"quantity": 1}], name="Fabrikam Ltd", fulfil_after=None)
        b1 = place(sim, CUST_B, [{"quantity": 1}], name="Northwind Traders", fulfil_after=None)
        c1 = place(sim, CUST_C, [{"quantity": 1}], name="Contoso", fulfil_after=None)
        a2 = place(sim, CUST_A, [{"quantity": 2}], name="Fabrikam Ltd", fulfil_after=None)
        cfg = discovery_config(env, sim, discovery={"customers": CUST_A})
        d = Daemon(cfg)
        for o in (a1, a2):
            d.wait_event(is_event("lineitem.added", o["order"]), 30, f"{o['order']} polled")
        reads = len(log_reads(sim))
        wait_running(d, lambda: len(log_reads(sim)) >= reads + 3, 30, "three more reads")
        check_discovered_once(d.all_events, [a1, a2], "customers = A")
        polled = {r["order"] for r in api_requests(sim, "provisioningstatus")}
        check(polled == {a1["order"], a2["order"]}, f"polled {sorted(polled)}")
        check(set(discovered_rows(env)) == {(CUST_A, a1["order"]), (CUST_A, a2["order"])},
              f"discovered rows {sorted(discovered_rows(env))}")

        # the others' records were not marked as processed: clearing the list finds them
        mark = len(d.all_events)
        discovery_config(env, sim, discovery={"customers": ""})
        d.send(signal.SIGHUP)
        for o in (b1, c1):
            d.wait_event(is_event("order.discovered", o["order"]), 30, f"{o['order']} discovered after the reload",
                         since=mark)
        check_discovered_once(d.all_events, [a1, a2, b1, c1], "after clearing customers")
        check(d.stop() == 0, "clean exit")
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


def test_forget_after_vs_configured():
    env = Env("disc-forget")
    scenario = {"orders": [{"customer": "c-conf", "order": "o-conf", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "status": "fulfilled", "quantities": {"fulfilled": 2}}]}]}
    sim = Sim(env.dir, scenario=scenario)
    d = None
    try:
        y = place(sim, CUST_A, [{"quantity": 2}], name="Fabrikam Ltd", fulfil_after=2)
        cfg = discovery_config(env, sim, orders=[("c-conf", "o-conf")],
                               poll={"interval": "1s", "settled-interval": "1s"}, discovery={"forget-after": "3s"})
        d = Daemon(cfg)
        d.wait_event(is_event("order.completed", "o-conf"), 30, "the configured order settled")
        done = d.wait_event(is_event("order.completed", y["order"]), 30, "the discovered order settled")
        t_settled = d.printed_at[done["id"]]
        # forget-after (3 s), then a few seconds of leeway for however often the daemon looks: from then on
        # the discovered order is not polled any more, while the configured one goes on at settled-interval
        quiet_from = t_settled + 3 + 6
        wait_running(d, lambda: len([r for r in polls_of(sim, "o-conf") if r["mono"] > quiet_from]) >= 4, 30,
                     "four polls of the configured order after the discovered one's forget-after")
        y_polls = polls_of(sim, y["order"])
        check([r for r in y_polls if t_settled < r["mono"] < t_settled + 3],
              "the settled discovered order was not polled at settled-interval before forget-after")
        late = [round(r["mono"] - t_settled, 1) for r in y_polls if r["mono"] > quiet_from]
        check(not late, f"the discovered order is still polled {len(late)} times after forget-after "
              f"(3s): at +{late} s after it settled")
        conf = [r["mono"] for r in polls_of(sim, "o-conf")]
        gaps = [b - a for a, b in zip(conf, conf[1:])]
        check(gaps and max(gaps) < 2.5, f"the configured settled order's polls are {max(gaps):.1f}s apart")
        forgotten = [line for line in d.log().splitlines() if "no longer polling it" in line]
        check(len(forgotten) == 1 and y["order"] in forgotten[0], f"forget lines: {forgotten}")
        check(d.stop() == 0, "clean exit")

        # after a restart: still forgotten (the snapshot kept), the configured order still polled
        idx = request_index(sim)
        d = Daemon(cfg)
        wait_running(d, lambda: len(polls_of(sim, "o-conf", idx)) >= 3, 30, "three polls of the configured order")
        check(not polls_of(sim, y["order"], idx), "the forgotten order is polled again after a restart")
        check(not d.all_events, f"events after the restart: {[e['type'] for e in d.all_events]}")
        check(d.stop() == 0, "clean exit")
        snap = store_query(env, "SELECT snapshot FROM orders WHERE order_id = ?", (y["order"],))
        check(snap and snap[0][0], "the forgotten order's snapshot was not kept")
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


BUDGET = 20
BUDGET_RUN = 70


class BudgetRun:
    """The budget test: a daemon whose reads (two pages each), polls and sweep want far more than
    max-requests-per-minute, watched for BUDGET_RUN seconds, which it takes to see sliding 60-second
    windows. It sends one request every three seconds, so it runs beside the other tests: started
    before them, checked after them."""

    def __init__(self):
        self.env = Env("disc-budget")
        self.sim = self.d = None
        self.error = None
        try:
            scenario = {"orders": [{"customer": "c-conf", "order": f"conf{i}", "manual": True, "line_items": [
                {"number": 0, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}}]}
                for i in range(2)]}
            self.sim = Sim(self.env.dir, "--customers", "3", scenario=scenario)
            fillers(self.sim, PAGE_SIZE + 5, offset=600)
            for _ in range(2):
                place(self.sim, CUST_A, [{"quantity": 1}], name="Fabrikam Ltd", fulfil_after=None)
            cfg = discovery_config(self.env, self.sim, orders=[("c-conf", "conf0"), ("c-conf", "conf1")],
                                   poll={"interval": "1m", "settled-interval": "1m",
                                         "max-requests-per-minute": str(BUDGET)},
                                   discovery={"interval": "10s", "sweep-interval": "10s"})
            # a 401 on a read in the middle: the refused request and its retry are two requests
            self.sim.fault(target="auditrecords", kind="status", status=401, skip=5, count=1)
            self.d = Daemon(cfg)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
            self.close()

    def close(self) -> None:
        stop_daemon(self.d)
        if self.sim is not None:
            self.sim.stop()
        self.env.cleanup()

    def check(self) -> None:
        if self.error is not None:
            raise self.error
        sim, d = self.sim, self.d
        try:
            wait_running(d, lambda: api_requests(sim), 60, "the first request")
            start = api_requests(sim)[0]["mono"]
            wait_running(d, lambda: api_requests(sim)[-1]["mono"] >= start + BUDGET_RUN, BUDGET_RUN + 60,
                         f"{BUDGET_RUN} s of requests")
            check(d.stop() == 0, "clean exit")
            reqs = api_requests(sim)
            times = sorted(r["mono"] for r in reqs)
            worst, worst_at = 0, 0.0
            for i, t in enumerate(times):
                n = sum(1 for u in times[i:] if u < t + 60)
                if n > worst:
                    worst, worst_at = n, t - start
            ops = {}
            for r in reqs:
                ops[r["op"]] = ops.get(r["op"], 0) + 1
            print(f"  {len(reqs)} requests in {times[-1] - start:.0f}s: {ops}; at most {worst} in 60 s "
                  f"(from +{worst_at:.0f}s)")
            check(worst <= BUDGET, f"{worst} Partner Center requests within 60 s from +{worst_at:.1f}s "
                  f"(budget {BUDGET}): {ops}")
            # the check counted every kind of request, under a budget the demand exceeded
            check(set(ops) == {"auditrecords", "provisioningstatus", "customers", "customer-orders"}, f"ops {ops}")
            check(any("seekOperation" in r["query"] for r in reqs), "no continuation page was requested")
            check(any(r["status"] == 401 for r in reqs), "no 401 was answered")
            check(worst >= BUDGET - 3, f"at most {worst} requests in 60 s: the demand did not use the budget")
        finally:
            self.close()


budget_run = None


def test_budget_counts_every_request():
    global budget_run
    if budget_run is None:  # not started beside the others (PROVWATCH_TEST_ONLY)
        budget_run = BudgetRun()
    run_, budget_run = budget_run, None
    run_.check()


def test_activity_log_faults():
    env = Env("disc-faults")
    sim = Sim(env.dir)
    d = None
    try:
        # every read is two pages, so that a fault can hit the second one
        fillers(sim, PAGE_SIZE + 5, offset=600)
        placed = [place(sim, CUST_A, [{"quantity": 1}], name="Fabrikam Ltd", fulfil_after=None)]
        cfg = discovery_config(env, sim, poll={"interval": "1m"})
        d = Daemon(cfg)
        d.wait_event(is_event("order.discovered", placed[0]["order"]), 30, "the first order discovered")
        phases = [
            ("HTTP 400", {"kind": "status", "status": 400, "body": {
                "code": 400, "description": "Invalid request input", "data": [], "source": "PartnerFD"}},
             8.0, "HTTP 400: Invalid request input"),
            ("HTTP 503 on the second page", {"kind": "status", "status": 503, "skip": 1}, 8.0, "HTTP 503"),
            ("HTTP 429", {"kind": "429", "retry_after": 2}, 1.8, "429"),
        ]
        problems = []
        for what, fault, min_gap, reason in phases:
            if "skip" in fault:
                # install it between two reads (a read's second page answered last), so that it skips the
                # first page of the next read and hits that read's second one
                wait_running(d, lambda: "seekOperation" in api_requests(sim, "auditrecords")[-1]["query"], 30,
                             "a read to end")
            idx = request_index(sim)
            sim.fault(target="auditrecords", count=1, **fault)
            o = place(sim, CUST_B, [{"quantity": 1}], name=what, fulfil_after=None)
            placed.append(o)
            d.wait_event(is_event("order.discovered", o["order"]), 60, f"the order placed during {what} discovered")
            log = api_requests(sim, "auditrecords", idx)
            hit = [r for r in log if r["faults"]]
            check(len(hit) == 1, f"{what}: {len(hit)} faulted requests")
            f = hit[0]
            if "skip" in fault:
                check("seekOperation" in f["query"], f"{what}: the fault hit {f['path']}")
            retry = [r for r in log if r["index"] > f["index"]]
            check(retry and "seekOperation" not in retry[0]["query"], f"{what}: the read did not start over")
            gap = retry[0]["mono"] - f["mono"]
            print(f"  {what}: tried again after {gap:.1f}s")
            check(gap >= min_gap, f"{what}: tried again after {gap:.1f}s")
            # the warning names the reason and the support handles of the failed request
            h = f["headers"]
            lines = [line for line in d.log().splitlines() if h["MS-CorrelationId"] in line]
            if not (lines and "warning" in lines[0] and reason in lines[0] and h["MS-RequestId"] in lines[0]
                    and f["ms_cv"] in lines[0]):
                problems.append(f"{what}: no warning with the reason ({reason}), MS-CorrelationId "
                                f"{h['MS-CorrelationId']}, MS-RequestId {h['MS-RequestId']} and MS-CV {f['ms_cv']}; "
                                f"log lines naming it: {lines}; warnings: "
                                f"{[x for x in d.log().splitlines() if 'warning' in x][-3:]}")
        reads = len(log_reads(sim))
        wait_running(d, lambda: len(log_reads(sim)) >= reads + 2, 30, "two more reads")
        check(d.stop() == 0, "clean exit")
        check_discovered_once(d.all_events, placed, "after the faults")
        check(set(discovered_rows(env)) == {(o["customer"], o["order"]) for o in placed}, "discovered rows")
        check(not problems, "\n".join(problems))
    finally:
        stop_daemon(d)
        sim.stop()
        env.cleanup()


KILL_ROUNDS = 8
KILL_ROUNDS_MAX = 20
KILL_BATCH = 80


def test_kill9_during_discovery_commit():
    seed = int(os.environ.get("PROVWATCH_CRASH_SEED", random.randrange(1 << 30)))
    print(f"  seed {seed} (PROVWATCH_CRASH_SEED to repeat)", flush=True)
    rng = random.Random(seed)
    env = Env("disc-kill")
    # every discovered order is polled once: no tenant limit, so that no run waits for a 429's pause
    sim = Sim(env.dir, "--tenant-limit", "0")
    receiver = WebhookReceiver(env.dir, "disc")
    proc = d = None
    try:
        hook = f"\n[webhook]\nurl = {receiver.url}\nevents = provwatch.order.discovered\n"
        cfg = discovery_config(env, sim, poll={"interval": "10m", "settled-interval": "10m"}, extra=hook)
        placed = []
        outs = []
        early_exits = []
        outcomes = {"before the commit": 0, "after the commit": 0}
        i, scale = 0, 1.0
        # at least KILL_ROUNDS kills, and on until kills have landed on both sides of a batch's commit
        while i < KILL_ROUNDS or (min(outcomes.values()) < 2 and i < KILL_ROUNDS_MAX):
            ctl = Control(sim)
            for _ in range(KILL_BATCH):
                a = ctl.post("place", {"customer": rng.choice((CUST_A, CUST_B, CUST_C)),
                                       "customer_name": rng.choice(("Fabrikam Ltd", "Northwind Traders")),
                                       "line_items": [{"quantity": rng.randint(1, 50)}], "fulfil_after": None})
                placed.append({**a["order"], "record": a["record"]})
            ctl.close()
            out, err = os.path.join(env.dir, f"run-{i}.out"), os.path.join(env.dir, f"run-{i}.err")
            outs.append(out)
            with open(out, "w") as so, open(err, "w") as se:
                proc = subprocess.Popen([provwatch_binary(), "-c", cfg, "--print-events", "run"], stdout=so,
                                        stderr=se, stdin=subprocess.DEVNULL, env={**os.environ, "PROVWATCH_DEBUG": "1"})
            # the moment: while the read is answered, or just after it, when its batch is committed
            marker = rng.choice(("/auditrecords?", "Activity log: "))

            def reached():
                if proc.poll() is not None:
                    return True
                with open(err, encoding="utf-8", errors="replace") as f:
                    return marker in f.read()

            wait_until(reached, 30, f"round {i}: {marker!r} in the log", interval=0.002)
            # the random moment; when the kills keep landing on one side of the commit (a slower build),
            # the moments move
            time.sleep(scale * rng.uniform(0, 0.01 if marker.startswith("Activity") else 0.06))
            if proc.poll() is not None:
                early_exits.append((i, proc.returncode))
            proc.kill()
            proc.wait(10)
            ok = store_query(env, "PRAGMA integrity_check")[0][0]
            check(ok == "ok", f"round {i}: integrity_check says {ok!r}")
            n_seen = store_query(env, "SELECT count(*) FROM discovery_seen")[0][0]
            outcomes["after the commit" if n_seen == len(placed) else "before the commit"] += 1
            i += 1
            if i >= KILL_ROUNDS // 2 and outcomes["after the commit"] < 2:
                scale = min(scale * 1.5, 40.0)
            elif i >= KILL_ROUNDS // 2 and outcomes["before the commit"] < 2:
                scale /= 1.5
        check(not early_exits, f"runs that ended by themselves: {early_exits}")

        # the last run goes on until it has read the log twice (its findings committed) and every order's
        # discovery reached the webhook
        idx = request_index(sim)
        d = Daemon(cfg)
        want = {o["order"] for o in placed}

        def delivered_orders():
            return {a["body"]["data"]["order_id"] for a in receiver.delivered()}

        wait_running(d, lambda: len(log_reads(sim, idx)) >= 2 and want <= delivered_orders(), 60,
                     "every discovery delivered")
        check(d.stop() == 0, "the last run stops cleanly")

        by_order = {}
        bodies = {}
        for a in receiver.delivered():
            ev = a["body"]
            check(ev["type"] == "provwatch.order.discovered", f"delivered {ev['type']}")
            by_order.setdefault(ev["data"]["order_id"], set()).add(ev["id"])
            check(bodies.setdefault(ev["id"], ev) == ev, f"event {ev['id']} delivered with different bodies")
        twice = {o: ids for o, ids in by_order.items() if len(ids) > 1}
        check(not twice, f"{len(twice)} orders discovered under two ids: {list(twice.items())[:5]}")
        check(set(by_order) == want, f"{len(want - set(by_order))} orders never discovered")
        printed = [ev for out in outs for ev in printed_events(out)] + d.all_events
        for ev in printed:
            if ev["type"] != "provwatch.order.discovered":
                continue
            check(ev["id"] in bodies, f"printed discovery {ev['id']} of {ev['data']['order_id']} was never delivered")
            check(bodies[ev["id"]] == ev, f"printed discovery {ev['id']} differs from the delivered one")
        for o in placed:
            ev = bodies[next(iter(by_order[o["order"]]))]
            check(ev["data"]["customer_name"] == o["customer_name"] and
                  ev["data"]["line_items"] == expected_line_items(o), f"names of {o['order']}: {ev['data']}")

        # the store agrees: every order discovered once, every record processed, the cursor at the newest
        rows = discovered_rows(env)
        check(set(rows) == {(o["customer"], o["order"]) for o in placed},
              f"{len(rows)} discovered rows for {len(placed)} orders")
        for o in placed:
            names = rows[(o["customer"], o["order"])][0]
            check(names and names["customer"] == o["customer_name"], f"stored names of {o['order']}: {names}")
        seen = {k for (k,) in store_query(env, "SELECT key FROM discovery_seen")}
        missing = [o["order"] for o in placed if o["record"]["id"] not in seen]
        check(not missing, f"{len(missing)} records not marked as processed")
        cursor = int(store_kv(env, "discovery-cursor") or 0) / 1e6
        newest = max(parse_time(o["record"]["operationDate"]) for o in placed)
        check(abs(cursor - newest) < 0.001, f"cursor {cursor}, newest record {newest}")
        check(store_query(env, "SELECT count(*) FROM queue")[0][0] == 0, "events still queued")
        print(f"  {i} kills ({outcomes}), {len(placed)} orders, {len(printed)} events printed, "
              f"{len(receiver.attempts())} deliveries")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stop_daemon(d)
        receiver.stop()
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    tests = [test_discovery_with_names, test_update_order_repoll, test_unusable_records_skipped,
             test_restart_no_rediscovery, test_lookback_on_first_start, test_across_midnight_utc, test_allow_list,
             test_forget_after_vs_configured, test_activity_log_faults, test_kill9_during_discovery_commit,
             test_budget_counts_every_request]
    only = [w for w in os.environ.get("PROVWATCH_TEST_ONLY", "").split(",") if w]
    if not only or any(w in test_budget_counts_every_request.__name__ for w in only):
        provwatch_binary()  # skips before anything starts when there is no binary
        budget_run = BudgetRun()
    try:
        main(tests)
    finally:
        if budget_run is not None:
            budget_run.close()
