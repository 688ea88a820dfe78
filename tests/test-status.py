#!/usr/bin/env python3
"""`provwatch status [--json]` after `provwatch once` against the simulator: the exact state of
every order (settled, pending, failing, not found, never polled, no longer watched), webhook
queues, reading while the daemon runs, working without the secrets, and never printing one."""

import datetime
import json
import os
import re
import shutil
import sqlite3
import time

from harness import Daemon, Env, Sim, check, closed_port, main, run, run_once

SCENARIO = {"orders": [
    {"customer": "c1", "order": "o1", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "status": "fulfilled", "quantities": {"fulfilled": 2}, "offer_id": None, "friendly_name": None}]},
    {"customer": "c1", "order": "o2", "manual": True, "line_items": [
        {"number": 0, "olid": 3, "status": "prefulfillmentpending",
         "quantities": {"fulfilled": 1, "prefulfillmentpending": 2}, "offer_id": None, "friendly_name": None},
        {"number": 1, "status": "prefulfillmentpending", "qpi": "empty"}]},
    {"customer": "c2", "order": "o3", "manual": True, "line_items": [
        {"number": 0, "status": "fulfilled", "quantities": {"fulfilled": 1}, "offer_id": None, "friendly_name": None}]},
    {"customer": "c3", "order": "o5", "manual": True, "line_items": [
        {"number": 0, "status": "fulfilled", "quantities": {"fulfilled": 4}, "offer_id": None, "friendly_name": None}]},
    {"customer": "c2", "order": "o6", "manual": True, "line_items": [
        {"number": 0, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}, "offer_id": None, "friendly_name": None}]},
]}
POLLED = [("c1", "o1"), ("c1", "o2"), ("c2", "o3"), ("c2", "o4"), ("c3", "o5")]
# o5 is dropped from the configuration after the poll; o6 is added (never polled)
WATCHED = [("c1", "o1"), ("c1", "o2"), ("c2", "o3"), ("c2", "o4"), ("c2", "o6")]
WEBHOOK_TOKEN = "Bearer hook-token-must-not-leak"
WEBHOOK_SECRET = "whsec_c3RhdHVzLXRlc3Qtd2ViaG9vay1zZWNyZXQ="
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")



def webhook_section(name: str, env: Env) -> str:
    secret = env.write(f"webhook-{name}-secret", WEBHOOK_SECRET + "\n", 0o600)
    return (f"\n[webhook {name}]\nurl = http://127.0.0.1:{closed_port()}/hook\nonce-timeout = 1s\n"
            f"header = Authorization: {WEBHOOK_TOKEN}\nsecret-file = {secret}\n")


def config(env: Env, sim: Sim, orders, webhook: str) -> str:
    return env.config(sim, orders, poll={"failure-threshold": "1", "not-found-grace": "0"},
                      extra=webhook_section(webhook, env))


def status(cfg: str, *args: str, env=None) -> tuple:
    p = run(["-c", cfg, "status", *args], timeout=30, env=env)
    return p.returncode, p.stdout, p.stderr


def status_json(cfg: str, env=None) -> dict:
    rc, out, err = status(cfg, "--json", env=env)
    check(rc == 0, f"status --json exit {rc}: {err}")
    check(out.count("\n") == 1 and out.endswith("\n"), f"one JSON line: {out!r}")
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        raise AssertionError(f"status --json is not JSON: {e}: {out[:500]!r}")


def parse_time(s: str) -> float:
    check(RFC3339.match(s or ""), f"not RFC 3339 UTC: {s!r}")
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


class Polled:
    """An environment where `once` polled POLLED (o3 failing, o4 not found), then the configuration
    changed to WATCHED with the webhook renamed from "old" to "new"."""

    def __init__(self, name: str):
        self.env = Env(name)
        self.sim = Sim(self.env.dir, scenario=SCENARIO)
        self.sim.fault(kind="status", status=503, order="o3")
        self.start = time.time()
        cfg = config(self.env, self.sim, POLLED, "old")
        rc, self.events, err = run_once(cfg)
        self.end = time.time()
        check(rc == 1, f"once with a failing order and an unreachable webhook exits 1, got {rc}: {err}")
        types = sorted(e["type"].removeprefix("provwatch.") for e in self.events)
        check(types == sorted(["lineitem.added"] * 4 + ["order.completed"] * 2 + ["order.fetch_failed",
                                                                                    "order.not_found"]),
              f"events of the first poll: {types}")
        self.cfg = config(self.env, self.sim, WATCHED, "new")

    def secrets(self) -> list[str]:
        values = ["test-secret", "initial-refresh-token", WEBHOOK_SECRET, WEBHOOK_TOKEN, "hook-token-must-not-leak"]
        db = sqlite3.connect(f"file:{self.env.state}/provwatch.db?mode=ro", uri=True)
        try:
            values += [v for (v,) in db.execute("SELECT value FROM kv WHERE key = 'refresh-token'")]
        finally:
            db.close()
        check(any(v.startswith("rt-") for v in values), f"the rotated refresh token is in the store: {values}")
        return values

    def close(self) -> None:
        self.sim.stop()
        self.env.cleanup()


def by_order(doc: dict) -> dict:
    return {(o["customer_id"], o["order_id"]): o for o in doc["orders"]}


def check_polled_json(doc: dict, t: Polled) -> None:
    check(set(doc) == {"orders", "webhooks", "discovery", "token"}, f"top-level keys {sorted(doc)}")
    check(doc["token"] == {"state": "ok", "since": None, "error": None, "description": None}, f"token {doc['token']}")
    check(doc["discovery"] == {"enabled": False, "cursor": None, "last_read": None, "last_result": None,
                               "last_records": 0, "discovered_orders": 0}, f"discovery {doc['discovery']}")
    keys = {"customer_id", "customer_name", "order_id", "watched", "source", "state", "last_poll", "last_success",
            "next_poll", "consecutive_failures", "last_error", "last_http_status", "line_items"}
    for o in doc["orders"]:
        check(set(o) == keys, f"keys of {o}")
        check(o["customer_name"] is None, f"names of {o}")
        check(o["source"] == ("config" if o["watched"] else None), f"source of {o}")
    # watched orders in configuration order, then the others
    check([(o["customer_id"], o["order_id"]) for o in doc["orders"]] == WATCHED + [("c3", "o5")],
          f"order list {[(o['customer_id'], o['order_id']) for o in doc['orders']]}")
    o = by_order(doc)

    for key in POLLED:
        check(t.start - 1 <= parse_time(o[key]["last_poll"]) <= t.end + 1, f"last_poll of {key}: {o[key]}")

    o1 = o[("c1", "o1")]
    check(o1["watched"] is True and o1["state"] == "settled", f"o1 {o1}")
    check(o1["consecutive_failures"] == 0 and o1["last_error"] is None and o1["last_http_status"] == 200, f"o1 {o1}")
    check(o1["last_success"] == o1["last_poll"], f"o1 {o1}")
    check(o1["line_items"] == [{"line_item_number": 0, "order_line_item_id": 0, "status": "fulfilled",
                                "quantities": {"fulfilled": 2}, "offer_id": None, "friendly_name": None}], f"o1 line items {o1['line_items']}")

    o2 = o[("c1", "o2")]
    check(o2["state"] == "pending" and o2["consecutive_failures"] == 0 and o2["last_error"] is None, f"o2 {o2}")
    check(o2["line_items"] == [
        {"line_item_number": 0, "order_line_item_id": 3, "status": "prefulfillmentpending",
         "quantities": {"fulfilled": 1, "prefulfillmentpending": 2}, "offer_id": None, "friendly_name": None},
        {"line_item_number": 1, "order_line_item_id": None, "status": "prefulfillmentpending", "quantities": {}, "offer_id": None, "friendly_name": None},
    ], f"o2 line items {o2['line_items']}")

    o3 = o[("c2", "o3")]
    check(o3["state"] == "failing" and o3["consecutive_failures"] == 1, f"o3 {o3}")
    check(o3["last_http_status"] == 503 and "503" in (o3["last_error"] or ""), f"o3 {o3}")
    check(o3["last_success"] is None and o3["line_items"] == [], f"o3 {o3}")

    o4 = o[("c2", "o4")]
    check(o4["state"] == "not_found" and o4["last_http_status"] == 404, f"o4 {o4}")
    check("20000" in (o4["last_error"] or "") and o4["line_items"] == [], f"o4 {o4}")

    o6 = o[("c2", "o6")]
    check(o6 == {"customer_id": "c2", "customer_name": None, "order_id": "o6", "watched": True, "source": "config",
                 "state": "never_polled",
                 "last_poll": None, "last_success": None, "next_poll": None, "consecutive_failures": 0,
                 "last_error": None, "last_http_status": None, "line_items": []}, f"o6 {o6}")

    o5 = o[("c3", "o5")]
    check(o5["watched"] is False and o5["state"] == "settled", f"o5 {o5}")
    check(o5["line_items"] == [{"line_item_number": 0, "order_line_item_id": None, "status": "fulfilled",
                                "quantities": {"fulfilled": 4}, "offer_id": None, "friendly_name": None}], f"o5 {o5}")

    queued = len(t.events)
    check(doc["webhooks"] == [{"name": "new", "configured": True, "queue_depth": 0, "dead_letters": 0},
                              {"name": "old", "configured": False, "queue_depth": queued, "dead_letters": 0}],
          f"webhooks {doc['webhooks']} (expected {queued} queued for 'old')")


def row(out: str, order: str) -> str:
    m = re.search(rf"^  {order} +(\S.*)$", out, re.M)
    check(m, f"no table row for {order} in:\n{out}")
    return m.group(1)


def block(out: str, order: str) -> str:
    """The row of order and its detail lines."""
    m = re.search(rf"^  {order} .*\n((?:      .*\n)*)", out, re.M)
    check(m, f"no block for {order} in:\n{out}")
    return m.group(1)


def check_polled_human(out: str, t: Polled) -> None:
    lines = out.splitlines()
    check(all(len(line) <= 100 for line in lines), "lines fit in 100 columns:\n" + out)
    check(lines[0] == f"State store {t.env.state}/provwatch.db", f"first line {lines[0]!r}")
    check("5 watched orders: 1 pending, 1 settled, 1 failing, 1 not found, 1 never polled." in out, out)
    check(re.search(r"^CUSTOMER / ORDER +STATE +LAST POLL +NEXT POLL +FAILS +SOURCE$", out, re.M), out)
    # polled under a minute ago: "(250ms ago)", "(12s ago)"
    ago = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+m?s ago\)"
    # next polls: settled-interval (6h), interval (2m), backoff after one failure (10 s ± 20 %)
    check(re.fullmatch(rf"settled +{ago} +in (5h 59m( \d+s)?|6h) +0 +config", row(out, "o1")), f"o1 row {row(out, 'o1')!r}")
    check(re.fullmatch(rf"pending +{ago} +in (1m( \d+s)?|2m) +0 +config", row(out, "o2")), f"o2 row {row(out, 'o2')!r}")
    check(re.fullmatch(rf"failing +{ago} +in \d+s +1 +config", row(out, "o3")), f"o3 row {row(out, 'o3')!r}")
    check(re.fullmatch(rf"not found +{ago} +in (1m( \d+s)?|2m) +0 +config", row(out, "o4")), f"o4 row {row(out, 'o4')!r}")
    check(re.fullmatch(r"never polled +- +- +0 +config", row(out, "o6")), f"o6 row {row(out, 'o6')!r}")
    # columns are aligned: every row's state starts where the header's does
    col = out.index("STATE") - out.rindex("\n", 0, out.index("STATE")) - 1
    for o in ("o1", "o2", "o3", "o4", "o6"):
        line = next(x for x in lines if x.startswith(f"  {o} "))
        check(line[col - 1] == " " and line[col] != " ", f"column of {o}: {line!r}")
    check(block(out, "o1") == "      line item 0: fulfilled (fulfilled=2)\n", block(out, "o1"))
    check(block(out, "o2") == "      line item 0: prefulfillmentpending (fulfilled=1 prefulfillmentpending=2)\n"
          "      line item 1: prefulfillmentpending\n", block(out, "o2"))
    check(re.fullmatch(r"      last error: HTTP 503.*\n      last good poll: never\n", block(out, "o3")),
          block(out, "o3"))
    check(block(out, "o4").startswith("      last error: not found (20000)\n"), block(out, "o4"))
    check(block(out, "o6") == "", block(out, "o6"))
    check(re.search(r"^c1\n  o1 .*\n(?:      .*\n)*  o2 .*\n(?:      .*\n)*c2\n  o3 ", out, re.M),
          "orders grouped under their customer:\n" + out)
    check("\n1 order in the state store is no longer watched" in out, out)
    check(not re.search(r"^  o5 ", out, re.M), "an unwatched order has no row")
    check(re.search(r"^WEBHOOK +QUEUED +DEAD LETTERS$", out, re.M), out)
    check(re.search(r"^new +0 +0$", out, re.M), out)
    check(re.search(rf"^old +{len(t.events)} +0 +\(no longer configured\)$", out, re.M), out)


def check_no_secret(t: Polled, *texts: str) -> None:
    for s in t.secrets():
        for text in texts:
            check(s not in text, f"a secret ({s[:4]}…) appears in the output")


def test_states_and_queues():
    t = Polled("status")
    try:
        rc, out, err = status(t.cfg)
        check(rc == 0, f"status exit {rc}: {err}")
        check(err == "", f"nothing on stderr: {err!r}")
        check_polled_human(out, t)
        doc = status_json(t.cfg)
        check_polled_json(doc, t)
        check_no_secret(t, out, err, json.dumps(doc))
        # reading changed nothing: the daemon's next `once` sees the same queue
        check(status_json(t.cfg) == doc, "a second status reads the same")
    finally:
        t.close()


def test_without_secrets():
    """As an admin outside the unit: no credentials, secret files missing or unreadable."""
    t = Polled("status-nosecrets")
    try:
        expected_out = status(t.cfg)[1]
        expected_doc = status_json(t.cfg)
        creds = os.path.join(t.env.dir, "creds")
        os.makedirs(os.path.join(creds, "client-secret"))  # unreadable as a file, even for root
        os.makedirs(os.path.join(creds, "webhook-new-secret"))
        for name in ("client-secret", "refresh-token", "webhook-new-secret"):
            os.rename(os.path.join(t.env.dir, name), os.path.join(t.env.dir, name + ".away"))
        env = {"CREDENTIALS_DIRECTORY": creds}
        p = run(["-c", t.cfg, "check-config"], env=env)
        check(p.returncode == 78, f"check-config still validates the secrets: exit {p.returncode}")
        check("client-secret" in p.stderr, p.stderr)
        rc, out, err = status(t.cfg, env=env)
        check(rc == 0, f"status without secrets: exit {rc}: {err}")
        # the relative times may have moved on by a second
        # the clock moves between the two runs: "(800ms ago)" / "(1s ago)", "in 2m" / "in 1m 59s"
        norm = lambda s: re.sub(r" +", " ", re.sub(r" in \d+[a-z]+( \d+[a-z]+)* ", " in T ",  # noqa: E731
                                                   re.sub(r"\(\d+m?s ago\)", "(Ns ago)", s)))
        check(norm(out) == norm(expected_out), f"same output without secrets:\n{out}\n---\n{expected_out}")
        check(status_json(t.cfg, env=env) == expected_doc, "same JSON without secrets")
        check_no_secret(t, out, err)
    finally:
        t.close()


def test_while_the_daemon_runs():
    t = Polled("status-daemon")
    daemon = None
    try:
        daemon = Daemon(t.cfg)
        # o6 was never polled: the daemon polls it at once
        daemon.wait_event(lambda e: e["subject"] == "customers/c2/orders/o6/lineitems/0", 30, "o6's first event")
        # the event is printed once committed
        o6 = by_order(status_json(t.cfg))[("c2", "o6")]
        check(o6["state"] == "pending" and o6["line_items"] == [
            {"line_item_number": 0, "order_line_item_id": None, "status": "prefulfillmentpending",
             "quantities": {"prefulfillmentpending": 1}, "offer_id": None, "friendly_name": None}], f"o6 after the daemon polled it: {o6}")
        # a next poll is shown only when it is known and after the last one (never a stale "due")
        check(o6["next_poll"] is None or parse_time(o6["next_poll"]) > parse_time(o6["last_poll"]), f"o6 {o6}")
        check(not re.match(r"\S+ +\S+ +\(\d+m?s ago\) +due ", row(status(t.cfg)[1], "o6")), "o6 is not due")
        for _ in range(10):
            check(daemon.proc.poll() is None, "the daemon is running")
            doc = status_json(t.cfg)
            o = by_order(doc)
            check(o[("c1", "o1")]["state"] == "settled" and o[("c2", "o3")]["state"] == "failing",
                  f"states while the daemon runs: {doc}")
            rc, out, err = status(t.cfg)
            check(rc == 0 and "5 watched orders" in out, f"status while the daemon runs: {rc} {err}")
        check_no_secret(t, out, err, json.dumps(doc))
        check(daemon.stop() == 0, f"the daemon exits 0 after status runs; log:\n{daemon.log_tail()}")
        daemon = None
        log = open(t.cfg + ".stderr", encoding="utf-8").read()
        check("database is locked" not in log and "read-only" not in log, f"the daemon was disturbed:\n{log}")
    finally:
        if daemon:
            daemon.stop()
        t.close()


def test_no_state_store():
    env = Env("status-empty")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = config(env, sim, [("c1", "o1"), ("c2", "o3")], "w")
        rc, out, err = status(cfg)
        check(rc == 0, f"never run: exit {rc}: {err}")
        check(out.startswith(f"Nothing has been polled yet: there is no state store in {env.state}.\n"), out)
        check("2 watched orders: 2 never polled." in out, out)
        check(re.fullmatch(r"never polled +- +- +0 +config", row(out, "o1")), out)
        doc = status_json(cfg)
        check([o["state"] for o in doc["orders"]] == ["never_polled"] * 2, str(doc))
        check(all(o["watched"] and o["last_poll"] is None for o in doc["orders"]), str(doc))
        check(doc["webhooks"] == [{"name": "w", "configured": True, "queue_depth": 0, "dead_letters": 0}],
              str(doc))
        check(not os.path.exists(env.state), "status must not create the state directory")
    finally:
        sim.stop()
        env.cleanup()


def test_unreadable_store():
    env = Env("status-bad")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        cfg = config(env, sim, [("c1", "o1")], "w")
        os.makedirs(env.state)
        db = os.path.join(env.state, "provwatch.db")
        with open(db, "wb") as f:
            f.write(b"this is not a database, " * 200)
        for args in ([], ["--json"]):
            rc, out, err = status(cfg, *args)
            check(rc == 1, f"corrupt store: exit {rc}")
            check(env.state in err, f"the message names the path: {err!r}")
            check(out == "", f"nothing on stdout: {out!r}")
        # a state directory that is a file
        shutil.rmtree(env.state)
        with open(env.state, "w") as f:
            f.write("x")
        rc, out, err = status(cfg)
        check(rc == 1 and env.state in err, f"state directory is a file: exit {rc}: {err!r}")
    finally:
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main([test_states_and_queues, test_without_secrets, test_while_the_daemon_runs, test_no_state_store,
          test_unreadable_store])
