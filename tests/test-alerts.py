#!/usr/bin/env python3
"""Operator alerts and notifications for people (SPEC §3 support handles, §9, §10), end to end: the
real daemon against the simulator (tests/pcsim.py) and real receivers (tests/webhook_receiver.py).

Covered: the token endpoint refusing the refresh token (invalid_grant, the Entra body of
fixtures/token-error-refresh-expired.json) then the operator's fix (one auth.failed, one
auth.recovered, token retries at a growing backoff, no Partner Center request without a token,
`status` saying so), a restart while failing (no second auth.failed, the recovery still said), a
wrong client secret (invalid_client), transient failures alerting only at failure-threshold; no
secret or token anywhere in what provwatch writes or stores; order.stalled once per stall, re-armed
by a change, its clock and flag surviving restarts, never for a completed order; the three webhook
formats side by side (same ids, signatures over the body sent, content types, the Teams card and the
Slack message carrying the journal's summary, retries with the same body, order kept); the support
handles of failed polls in the log line and in order.fetch_failed."""

import base64
import json
import os
import re
import secrets
import signal
import sqlite3
import time

from harness import (HERE, Daemon, Env, Failure, Sim, WebhookReceiver, check, closed_port, main, run, wait_until)

FIXTURES = os.path.join(HERE, "fixtures")
ACCESS_TOKEN = re.compile(r"at-\d+-[0-9a-f]{16}")
ROTATED_REFRESH_TOKEN = re.compile(r"rt-\d+-[0-9a-f]{16}")
AUTH_FAILED = "provwatch.auth.failed"
AUTH_RECOVERED = "provwatch.auth.recovered"
STALLED = "provwatch.order.stalled"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def fixture(name: str) -> dict:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


def distinctive(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def manual_order(customer: str, order: str, *steps: tuple) -> dict:
    """A manual scenario order with one line item going through the given (status, quantities) steps."""
    return {"customer": customer, "order": order, "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [{"status": s, "quantities": q} for s, q in steps]}]}


PENDING_THEN_FULFILLED = (("prefulfillmentpending", {"prefulfillmentpending": 2}),
                          ("prefulfillmentpending", {"fulfilled": 1, "prefulfillmentpending": 1}),
                          ("fulfilled", {"fulfilled": 2}))


def of_type(type_: str, order: str = None):
    return lambda e: e["type"] == type_ and (order is None or e["data"].get("order_id") == order)


def events_of(d: Daemon, type_: str, order: str = None) -> list:
    return [e for e in list(d.all_events) if of_type(type_, order)(e)]


def advance(sim: Sim, customer: str, order: str) -> None:
    sim.control("POST", "advance", {"customer": customer, "order": order})


def next_index(sim: Sim) -> int:
    """The index the simulator gives its next recorded request (every kind)."""
    return sim.control("GET", "stats")["requests"]


def polls(sim: Sim, order: str, since: int = 0) -> list:
    return [r for r in sim.requests(since) if r["op"] == "provisioningstatus" and r["order"] == order]


def wait_polls(sim: Sim, d: Daemon, order: str, since: int, n: int, timeout: float, what: str) -> list:
    """Waits for n answered polls of the order recorded at or after index since, by the daemon d."""
    def enough():
        if d.proc.poll() is not None:
            raise Failure(f"daemon exited with {d.proc.returncode} while waiting for {what}; log:\n{d.log_tail()}")
        p = [r for r in polls(sim, order, since) if r["status"]]
        return p if len(p) >= n else None
    return wait_until(enough, timeout, what, interval=0.1)


def status_text(cfg: str) -> str:
    p = run(["-c", cfg, "status"], timeout=30)
    check(p.returncode == 0, f"status exited {p.returncode}: {p.stderr}")
    return p.stdout


def status_json(cfg: str) -> dict:
    p = run(["-c", cfg, "status", "--json"], timeout=30)
    check(p.returncode == 0, f"status --json exited {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)



def kill(d: Daemon) -> None:
    if d is not None and d.proc.poll() is None:
        d.stop(signal.SIGKILL)


def check_one_auth_episode(d: Daemon, failed: int, recovered: int) -> None:
    types = [e["type"] for e in d.all_events if e["type"].startswith("provwatch.auth.")]
    check(types.count(AUTH_FAILED) == failed and types.count(AUTH_RECOVERED) == recovered,
          f"auth events: {types}, expected {failed} failed and {recovered} recovered")


def store_dump(state_dir: str) -> str:
    """Every row of the state store as text, but for the stored refresh token (meant to be there)."""
    db = sqlite3.connect(f"file:{os.path.join(state_dir, 'provwatch.db')}?mode=ro", uri=True)
    try:
        out = []
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in db.execute(f'SELECT * FROM "{table}"'):
                if table == "kv" and row[0] == "refresh-token":
                    continue
                out.append(f"{table}: " + " | ".join(str(v) for v in row))
        return "\n".join(out)
    finally:
        db.close()


def find_secrets(outputs: dict, values: dict) -> list:
    """Where any of the values, or anything shaped like a token the simulator issues, appears."""
    found = []
    for where, text in outputs.items():
        for name, value in values.items():
            if value and value in text:
                found.append(f"{name} in {where}")
        for pattern, name in ((ACCESS_TOKEN, "access token"), (ROTATED_REFRESH_TOKEN, "rotated refresh token")):
            for m in pattern.finditer(text):
                found.append(f"{name} {m.group(0)[:8]}… in {where}")
    return found


# ---- auth.failed and auth.recovered ----


def test_invalid_grant_then_recovery():
    """The refresh token dies while the daemon runs; the operator puts a new one in place and reloads."""
    env = Env("alerts-grant")
    client_secret, initial_rt, webhook_secret = (distinctive("client-secret"), distinctive("initial-rt"),
                                                 "whsec_" + base64.b64encode(os.urandom(24)).decode())
    env.write("client-secret", client_secret + "\n", 0o600)
    env.write("refresh-token", initial_rt + "\n", 0o600)
    whsec_file = env.write("webhook-secret", webhook_secret + "\n", 0o600)
    body = fixture("token-error-refresh-expired.json")
    sim = Sim(env.dir, "--client-secret", client_secret, "--refresh-token", initial_rt,
              scenario={"orders": [manual_order("c1", "o1", *PENDING_THEN_FULFILLED)]})
    receiver = WebhookReceiver(env.dir, "grant", secret=webhook_secret)
    d = None
    try:
        sim.control("POST", "config", {"invalid_grant_body": body})
        hooks = (f"\n[webhook live]\nurl = {receiver.url}\nsecret-file = {whsec_file}\n"
                 # a dead endpoint that gives up at once: every event also becomes a dead letter
                 f"\n[webhook dead]\nurl = http://127.0.0.1:{closed_port()}/hook\nsecret-file = {whsec_file}\n"
                 "retry-for = 1s\n")
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s"}, extra=hooks)
        d = Daemon(cfg)
        d.wait_event(of_type("provwatch.lineitem.added", "o1"), 20, "o1 polled")
        check("Access token: ok" in status_text(cfg), "status says the token is ok before the trouble")

        # The refresh token expires for good; the access token in hand goes too (a 401 makes the
        # daemon redeem the refresh token).
        sim.control("POST", "refresh-token", {"refresh_token": None})
        start = next_index(sim)
        sim.control("POST", "tokens/expire")
        failed = d.wait_event(of_type(AUTH_FAILED), 20, "auth.failed")
        check(failed["subject"] == "tenants/tenant1", f"subject {failed['subject']}")
        data = failed["data"]
        check(data["grant"] == "refresh_token" and data["http_status"] == 400 and data["error"] == "invalid_grant"
              and data["error_codes"] == [700082], f"auth.failed data {data}")
        check(data["description"] == body["error_description"][:300], f"description {data['description']!r}")
        action = data["action"].lower()
        check("refresh token" in action and "consent" in action, f"action {data['action']!r}")
        check(set(data) == {"grant", "http_status", "error", "error_codes", "description", "action"},
              f"auth.failed data keys {sorted(data)}")

        # Token retries at a growing backoff (2 s, 4 s, ... ±20 %, capped at 5 min, which is not waited
        # for here), and not one Partner Center request meanwhile.
        def refused():
            return [r for r in sim.requests(start, kind="token") if r["result"] == "invalid_grant"]
        tries = wait_until(lambda: (lambda t: t if len(t) >= 3 else None)(refused()), 30,
                           "three refused token requests", interval=0.1)
        gaps = [b["mono"] - a["mono"] for a, b in zip(tries, tries[1:3])]
        check(gaps[0] >= 1.0 and gaps[1] > gaps[0] * 1.3,
              f"token retries do not back off: gaps {[round(g, 2) for g in gaps]}")

        text, doc = status_text(cfg), status_json(cfg)
        check(re.search(r"Access token: failing since .*invalid_grant", text), f"status while failing:\n{text}")
        check(doc["token"]["state"] == "failing" and doc["token"]["error"] == "invalid_grant"
              and doc["token"]["since"], f"status --json token while failing: {doc['token']}")

        # The operator obtains a new refresh token by consent, puts it in place and reloads.
        new_rt = distinctive("consented-rt")
        sim.control("POST", "refresh-token", {"refresh_token": new_rt})
        env.write("refresh-token", new_rt + "\n", 0o600)
        n = len(d.all_events)
        d.send(signal.SIGHUP)
        recovered = d.wait_event(of_type(AUTH_RECOVERED), 20, "auth.recovered", since=n)
        check(recovered["subject"] == "tenants/tenant1" and recovered["data"]["grant"] == "refresh_token",
              f"auth.recovered {recovered}")
        # polling resumes
        n = len(d.all_events)
        advance(sim, "c1", "o1")
        d.wait_event(of_type("provwatch.lineitem.changed", "o1"), 20, "o1 polled again after the recovery", since=n)
        check_one_auth_episode(d, 1, 1)

        toks = sim.requests(start, kind="token")
        first_refused = next(r for r in toks if r["result"] == "invalid_grant")
        redeemed = next(r for r in toks if r["result"] == "ok" and r["index"] > first_refused["index"])
        check(redeemed["token"]["refresh_token"] == "valid", f"the new refresh token was redeemed: {redeemed['token']}")
        during = [r for r in sim.requests(start) if r["kind"] == "api"
                  and first_refused["index"] < r["index"] < redeemed["index"]]
        check(not during, f"{len(during)} Partner Center requests without a token: "
              f"{[(r['op'], r['status'], r['auth']) for r in during]}")
        check(d.printed_at[failed["id"]] < redeemed["mono"], "auth.failed came before the recovery")

        text, doc = status_text(cfg), status_json(cfg)
        check("Access token: ok" in text and "Access token: failing" not in text, f"status after the fix:\n{text}")
        check(doc["token"] == {"state": "ok", "since": None, "error": None, "description": None},
              f"status --json token after the fix: {doc['token']}")

        ids = {e["id"] for e in d.all_events}
        receiver.wait_delivered(ids, 20, "every event at the live webhook")
        wait_until(lambda: next(w for w in status_json(cfg)["webhooks"] if w["name"] == "dead")["dead_letters"]
                   >= len(ids), 20, "every event dead-lettered at the dead webhook", interval=0.2)
        check(d.stop() == 0, "clean exit")

        # Nothing secret in anything provwatch wrote, sent or stored.
        outputs = {"stdout": "\n".join(json.dumps(e) for e in d.all_events), "stderr": d.log(),
                   "state store": store_dump(env.state), "status": text, "status --json": json.dumps(doc),
                   "webhook bodies": "\n".join(json.dumps(a) for a in receiver.attempts())}
        check("auth.failed" in outputs["state store"] and "dead_letters" in outputs["state store"],
              "the store holds the alert and dead letters")
        found = find_secrets(outputs, {"client secret": client_secret, "initial refresh token": initial_rt,
                                       "new refresh token": new_rt, "webhook secret": webhook_secret,
                                       "webhook key": webhook_secret[len("whsec_"):]})
        check(not found, "secrets in the output:\n" + "\n".join(found))
        check(all(a["signature_ok"] for a in receiver.attempts()), "deliveries are signed")
    finally:
        kill(d)
        receiver.stop()
        sim.stop()
        env.cleanup()


def test_restart_while_failing():
    """Failing from the first start; a restart says nothing new; the recovery after it is said. The
    description is cut at 300 characters (code points, not bytes)."""
    env = Env("alerts-restart")
    long_description = ("AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth "
                        "token is needed. Die Anmeldung ist abgelaufen – bitte erneut zustimmen. ") * 4
    body = {"error": "invalid_grant", "error_description": long_description, "error_codes": [50173, 700082]}
    sim = Sim(env.dir, scenario={"orders": [manual_order("c1", "o1", *PENDING_THEN_FULFILLED)]})
    d1 = d2 = None
    try:
        sim.control("POST", "config", {"invalid_grant_body": body})
        sim.control("POST", "refresh-token", {"refresh_token": None})
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s"})
        d1 = Daemon(cfg)
        failed = d1.wait_event(of_type(AUTH_FAILED), 20, "auth.failed")
        data = failed["data"]
        check(len(long_description) > 300 and data["description"] == long_description[:300],
              f"description: {len(data['description'])} characters: {data['description']!r}")
        check(data["error_codes"] == [50173, 700082], f"error_codes {data['error_codes']}")
        since = status_json(cfg)["token"]["since"]
        check(since, "status --json: failing since")
        check(d1.stop() == 0, "clean exit")

        start = next_index(sim)
        d2 = Daemon(cfg)
        # two refused requests of the new process: the first one's outcome has been acted upon
        wait_until(lambda: len([r for r in sim.requests(start, kind="token") if r["result"] == "invalid_grant"]) >= 2,
                   20, "the restarted daemon retrying the token endpoint", interval=0.1)
        check(not events_of(d2, AUTH_FAILED), "a second auth.failed after the restart")
        doc = status_json(cfg)
        check(doc["token"]["state"] == "failing" and doc["token"]["since"] == since,
              f"after the restart: {doc['token']}, since {since} before")

        new_rt = distinctive("consented-rt")
        sim.control("POST", "refresh-token", {"refresh_token": new_rt})
        env.write("refresh-token", new_rt + "\n", 0o600)
        d2.send(signal.SIGHUP)
        d2.wait_event(of_type(AUTH_RECOVERED), 20, "auth.recovered after the restart")
        d2.wait_event(of_type("provwatch.lineitem.added", "o1"), 20, "o1 polled after the recovery")
        check_one_auth_episode(d2, 0, 1)
        check(not [r for r in sim.requests(0) if r["kind"] == "api" and r["auth"] != "valid"],
              "a Partner Center request without a valid token")
        check(status_json(cfg)["token"]["state"] == "ok", "status after the recovery")
        check(d2.stop() == 0, "clean exit")
    finally:
        kill(d1)
        kill(d2)
        sim.stop()
        env.cleanup()


def test_invalid_client():
    """client_credentials with a wrong secret: invalid_client at once. The right secret and a reload
    bring the token back, at once rather than at the end of the retry backoff."""
    env = Env("alerts-client")
    right, wrong = distinctive("client-secret"), distinctive("wrong-secret")
    env.write("client-secret", wrong + "\n", 0o600)
    sim = Sim(env.dir, "--client-secret", right,
              scenario={"orders": [manual_order("c1", "o1", *PENDING_THEN_FULFILLED)]})
    d = None
    try:
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s"},
                         pc={"auth": "client-credentials", "refresh-token-file": None})
        start = next_index(sim)
        d = Daemon(cfg)
        failed = d.wait_event(of_type(AUTH_FAILED), 20, "auth.failed")
        data = failed["data"]
        check(failed["subject"] == "tenants/tenant1", f"subject {failed['subject']}")
        check(data["grant"] == "client_credentials" and data["http_status"] == 401 and data["error"] == "invalid_client"
              and data["error_codes"] == [7000215] and data["description"].startswith("AADSTS7000215"),
              f"auth.failed data {data}")
        check("secret" in data["action"].lower(), f"action {data['action']!r}")
        # let the backoff grow (2 s, 4 s, then 8 s to wait), then fix the secret and reload
        wait_until(lambda: len([r for r in sim.requests(start, kind="token") if r["result"] == "invalid_client"]) >= 3,
                   20, "three refused token requests", interval=0.1)
        env.write("client-secret", right + "\n", 0o600)
        reloaded = time.monotonic()
        d.send(signal.SIGHUP)
        recovered = d.wait_event(of_type(AUTH_RECOVERED), 20, "auth.recovered")
        latency = d.printed_at[recovered["id"]] - reloaded
        check(recovered["data"]["grant"] == "client_credentials", f"auth.recovered {recovered['data']}")
        d.wait_event(of_type("provwatch.lineitem.added", "o1"), 20, "o1 polled")
        check_one_auth_episode(d, 1, 1)
        check(not [r for r in sim.requests(0) if r["kind"] == "api" and r["auth"] != "valid"],
              "a Partner Center request without a valid token")
        check(d.stop() == 0, "clean exit")
        outputs = {"stdout": "\n".join(json.dumps(e) for e in d.all_events), "stderr": d.log()}
        found = find_secrets(outputs, {"client secret": right, "wrong client secret": wrong})
        check(not found, "secrets in the output:\n" + "\n".join(found))
        # last, so that what is above is checked in any case
        check(latency < 3, f"the corrected client secret was used {latency:.1f}s after the reload: the token "
              "retry backoff was waited out instead of trying again at once, as a new refresh token does")
    finally:
        kill(d)
        sim.stop()
        env.cleanup()


def test_transient_failures_alert_at_threshold():
    """A token endpoint that fails now and then (reset, 503): auth.failed only after
    failure-threshold failures in a row; the next token brings auth.recovered."""
    env = Env("alerts-transient")
    sim = Sim(env.dir, scenario={"orders": [manual_order("c1", "o1", *PENDING_THEN_FULFILLED)]})
    d = None
    try:
        sim.fault(target="token", kind="reset", count=1)
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s", "failure-threshold": "2"})
        d = Daemon(cfg)
        d.wait_event(of_type("provwatch.lineitem.added", "o1"), 20, "o1 polled after one failed token request")
        toks = sim.requests(0, kind="token")
        check([r["status"] for r in toks[:2]] == [0, 200], f"token requests {[r['status'] for r in toks]}")
        check(not events_of(d, AUTH_FAILED), "auth.failed after a single failure (threshold 2)")

        # two failures in a row: the alert comes with the second
        sim.fault(target="token", kind="status", status=503, count=2)
        start = next_index(sim)
        sim.control("POST", "tokens/expire")
        failed = d.wait_event(of_type(AUTH_FAILED), 20, "auth.failed")
        recovered = d.wait_event(of_type(AUTH_RECOVERED), 20, "auth.recovered")
        toks = sim.requests(start, kind="token")
        check([r["status"] for r in toks[:3]] == [503, 503, 200], f"token requests {[r['status'] for r in toks]}")
        check(d.printed_at[failed["id"]] > toks[1]["mono"], "auth.failed before the second failure")
        check(d.printed_at[recovered["id"]] > toks[2]["mono"], "auth.recovered before the token")
        data = failed["data"]
        check(data["grant"] == "refresh_token" and data["http_status"] == 503 and data["error"] and
              data["action"], f"auth.failed data {data}")
        check_one_auth_episode(d, 1, 1)
        n = len(d.all_events)
        advance(sim, "c1", "o1")
        d.wait_event(of_type("provwatch.lineitem.changed", "o1"), 20, "o1 polled after the recovery", since=n)
        check(d.stop() == 0, "clean exit")
    finally:
        kill(d)
        sim.stop()
        env.cleanup()


# ---- order.stalled ----


STALL_POLL = {"interval": "1s", "settled-interval": "1s", "stall-after": "3s"}
# a completed order, polled every second all along: it never stalls
DONE_ORDER = {"customer": "c9", "order": "done", "manual": True, "line_items": [
    {"number": 0, "olid": 0, "status": "fulfilled", "quantities": {"fulfilled": 1}}]}


def stall_line_items(offer_ids=(None, None, None), names=(None, None, None)) -> list:
    """Line item 0 changes at each advance and is fulfilled at the third; 1 is fulfilled from the
    start; 2 stays the same until the third advance."""
    return [
        {"number": 0, "olid": 0, "offer_id": offer_ids[0], "friendly_name": names[0], "quantity": 5, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 5}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 1, "prefulfillmentpending": 4}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 3, "prefulfillmentpending": 2}},
            {"status": "fulfilled", "quantities": {"fulfilled": 5}}]},
        {"number": 1, "olid": 1, "offer_id": offer_ids[1], "friendly_name": names[1], "quantity": 1,
         "status": "fulfilled", "quantities": {"fulfilled": 1}},
        {"number": 2, "olid": 2, "offer_id": offer_ids[2], "friendly_name": names[2], "quantity": 2, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 2}},
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 2}},
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 2}},
            {"status": "fulfilled", "quantities": {"fulfilled": 2}}]}]


def stalled_items(ev: dict) -> list:
    return [(i["line_item_number"], i["status"], i["quantities"], i["offer_id"], i["friendly_name"])
            for i in ev["data"]["line_items"]]


def test_stall_and_rearm_across_restarts():
    """order.stalled once per stall; its clock and flag in the store: a restart neither repeats it nor
    restarts the clock; a change re-arms it; a completed order never stalls."""
    env = Env("alerts-stall")
    sim = Sim(env.dir, scenario={"orders": [DONE_ORDER, {"customer": "c1", "order": "o1", "manual": True,
                                                         "line_items": stall_line_items()}]})
    d = None
    try:
        cfg = env.config(sim, [("c9", "done"), ("c1", "o1")], poll=STALL_POLL)
        d = Daemon(cfg)
        added = d.wait_event(of_type("provwatch.lineitem.added", "o1"), 20, "o1 polled")
        first = d.wait_event(of_type(STALLED, "o1"), 20, "the first order.stalled")
        waited = d.printed_at[first["id"]] - d.printed_at[added["id"]]
        check(2.5 <= waited <= 5, f"order.stalled {waited:.1f}s after the first poll (stall-after 3s)")
        check(first["subject"] == "customers/c1/orders/o1", f"subject {first['subject']}")
        data = first["data"]
        check(data["since"] == added["time"], f"since {data['since']}, first good poll {added['time']}")
        check({k: data[k] for k in ("customer_id", "order_id", "customer_name")}
              == {"customer_id": "c1", "order_id": "o1", "customer_name": None}, f"order.stalled data {data}")
        check(stalled_items(first) == [(0, "prefulfillmentpending", {"prefulfillmentpending": 5}, None, None),
                                       (2, "prefulfillmentpending", {"prefulfillmentpending": 2}, None, None)],
              f"line_items {data['line_items']}")
        # still unchanged: no second one
        wait_polls(sim, d, "o1", next_index(sim), 3, 20, "three more polls")
        check(len(events_of(d, STALLED, "o1")) == 1, "a second order.stalled without a change")
        check(d.stop() == 0, "clean exit")

        # a restart: the flag is in the store
        d = Daemon(cfg)
        wait_polls(sim, d, "o1", next_index(sim), 3, 20, "three polls after the restart")
        check(not events_of(d, STALLED), f"order.stalled again after a restart: {events_of(d, STALLED)}")

        # a change re-arms it
        advance(sim, "c1", "o1")
        changed = d.wait_event(of_type("provwatch.lineitem.changed", "o1"), 20, "the change")
        second = d.wait_event(of_type(STALLED, "o1"), 20, "the second order.stalled")
        waited = d.printed_at[second["id"]] - d.printed_at[changed["id"]]
        check(2.5 <= waited <= 5, f"order.stalled {waited:.1f}s after the change (stall-after 3s)")
        check(second["data"]["since"] == changed["time"] and second["data"]["since"] > data["since"],
              f"since {second['data']['since']}, change at {changed['time']}, first since {data['since']}")
        check(stalled_items(second)[0][2] == {"fulfilled": 1, "prefulfillmentpending": 4}, f"{second['data']}")

        # a change, then a restart before stall-after has passed: the clock keeps running
        n = len(d.all_events)
        advance(sim, "c1", "o1")
        changed = d.wait_event(of_type("provwatch.lineitem.changed", "o1"), 20, "the next change", since=n)
        changed_at = d.printed_at[changed["id"]]
        wait_polls(sim, d, "o1", next_index(sim), 2, 20, "two polls after the change")
        check(len(events_of(d, STALLED)) == 1, "order.stalled before stall-after")
        check(time.monotonic() - changed_at < 3, "the restart comes before stall-after has passed")
        check(d.stop() == 0, "clean exit")
        d = Daemon(cfg)
        third = d.wait_event(of_type(STALLED, "o1"), 20, "order.stalled after the restart")
        waited = d.printed_at[third["id"]] - changed_at
        check(third["data"]["since"] == changed["time"], f"since {third['data']['since']}, change at {changed['time']}")
        # a clock restarted by the restart (2 s after the change) would fire 5 s or more after the change
        check(2.5 <= waited <= 4.7, f"order.stalled {waited:.1f}s after the change across a restart (stall-after 3s)")

        # completed: never stalls
        n = len(d.all_events)
        advance(sim, "c1", "o1")
        d.wait_event(of_type("provwatch.order.completed", "o1"), 20, "o1 completed", since=n)
        wait_polls(sim, d, "o1", next_index(sim), 4, 20, "four polls after completion")
        check(len(events_of(d, STALLED)) == 1, f"order.stalled of a completed order: {events_of(d, STALLED)[1:]}")
        check(len(polls(sim, "done")) >= 8, f"the completed order 'done' was polled {len(polls(sim, 'done'))} times")
        check(d.stop() == 0, "clean exit")
    finally:
        kill(d)
        sim.stop()
        env.cleanup()


def test_stalled_discovered_order_with_names():
    """A discovered order (placed in the simulator, found in the activity log) has its names in
    order.stalled; after a restart it goes on being watched without a second order.stalled."""
    env = Env("alerts-stall-names")
    sim = Sim(env.dir)
    d = None
    try:
        sim.control("POST", "place", {
            "customer": "cust-fab", "customer_name": "Fabrikam Ltd", "order": "ordStall", "manual": True,
            "line_items": stall_line_items(("CFQ7TTC0LH18:0001", "CFQ7TTC0LH19:0001", "CFQ7TTC0LDPB:0001"),
                                           ("Microsoft 365 Business Basic", "Teams Phone Standard",
                                            "Microsoft 365 E3"))})
        cfg = env.config(sim, [], poll=STALL_POLL, extra="\n[discovery]\nenabled = yes\ninterval = 1s\n")
        d = Daemon(cfg)
        added = d.wait_event(of_type("provwatch.lineitem.added", "ordStall"), 20, "ordStall polled")
        first = d.wait_event(of_type(STALLED, "ordStall"), 20, "order.stalled")
        data = first["data"]
        check(data["since"] == added["time"], f"since {data['since']}, first good poll {added['time']}")
        check({k: data[k] for k in ("customer_id", "order_id", "customer_name")}
              == {"customer_id": "cust-fab", "order_id": "ordStall", "customer_name": "Fabrikam Ltd"},
              f"order.stalled data {data}")
        check(stalled_items(first) == [
            (0, "prefulfillmentpending", {"prefulfillmentpending": 5}, "CFQ7TTC0LH18:0001",
             "Microsoft 365 Business Basic"),
            (2, "prefulfillmentpending", {"prefulfillmentpending": 2}, "CFQ7TTC0LDPB:0001", "Microsoft 365 E3")],
            f"line_items {data['line_items']}")
        check(d.stop() == 0, "clean exit")

        d = Daemon(cfg)
        wait_polls(sim, d, "ordStall", next_index(sim), 3, 20, "three polls after the restart")
        check(not events_of(d, STALLED), f"order.stalled again after a restart: {events_of(d, STALLED)}")
        n = len(d.all_events)
        advance(sim, "cust-fab", "ordStall")
        changed = d.wait_event(of_type("provwatch.lineitem.changed", "ordStall"), 20, "the change", since=n)
        check(changed["data"]["customer_name"] == "Fabrikam Ltd"
              and changed["data"]["friendly_name"] == "Microsoft 365 Business Basic",
              f"names after the restart: {changed['data']}")
        check(d.stop() == 0, "clean exit")
    finally:
        kill(d)
        sim.stop()
        env.cleanup()


# ---- the three formats ----


def quantities_text(q: dict) -> str:
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(q.items())) + ")" if q else ""


def summary(ev: dict) -> str:
    """The journal MESSAGE of an event (SPEC §6, §8, §9), written from the CloudEvent alone."""
    d, t = ev["data"], ev["type"]
    who = f"({d['customer_name']})" if d.get("customer_name") else f"(customer {d['customer_id']})"
    order = f"Order {d['order_id']} {who}"

    def item(number, name):
        return f"line item {number}" + (f" {name}" if name else "")

    name = d.get("friendly_name") or d.get("offer_id")
    if t == "provwatch.lineitem.added":
        return f"{order} {item(d['line_item_number'], name)} added: {d['new']['status']}" + \
            quantities_text(d["new"]["quantities"])
    if t == "provwatch.lineitem.changed":
        return f"{order} {item(d['line_item_number'], name)}: {d['old']['status']} \u2192 {d['new']['status']}" + \
            quantities_text(d["new"]["quantities"])
    if t == "provwatch.order.completed":
        statuses = sorted(i["status"] for i in d["line_items"])
        n = len(statuses)
        text = f"{order} completed: {n} line item{'' if n == 1 else 's'}"
        if len(set(statuses)) == 1:
            return text + f" {statuses[0]}"
        return text + " (" + ", ".join(f"{s} {statuses.count(s)}" for s in sorted(set(statuses))) + ")"
    if t == "provwatch.order.discovered":
        items = d["line_items"]
        return f"{order} discovered: {len(items)} line item{'' if len(items) == 1 else 's'} (" + ", ".join(
            (i["friendly_name"] or i["offer_id"] or f"line item {i['line_item_number']}")
            + (f" \u00d7 {i['quantity']}" if i["quantity"] is not None else "") for i in items) + ")"
    raise Failure(f"no summary for {t}")


def slack_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header(attempt: dict, name: str) -> str:
    return {k.lower(): v for k, v in attempt["headers"].items()}.get(name.lower())


def test_three_formats_side_by_side():
    env = Env("alerts-formats")
    whsec = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    whsec_file = env.write("webhook-secret", whsec + "\n", 0o600)
    sim = Sim(env.dir)
    receivers = {f: WebhookReceiver(env.dir, f, secret=whsec) for f in ("cloudevents", "teams", "slack")}
    d = None
    try:
        name = "Northwind Traders & Co"  # "&" is escaped for Slack only
        sim.control("POST", "place", {
            "customer": "cust-nw", "customer_name": name, "order": "ordFmt", "manual": True,
            "line_items": [{"number": 0, "olid": 0, "offer_id": "CFQ7TTC0LDPB:0001",
                            "friendly_name": "Microsoft 365 E3", "quantity": 3, "steps": [
                                {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 3}},
                                {"status": "prefulfillmentpending",
                                 "quantities": {"fulfilled": 2, "prefulfillmentpending": 1}},
                                {"status": "fulfilled", "quantities": {"fulfilled": 3}}]}]})
        hooks = "".join(f"\n[webhook {f}]\nurl = {r.url}\nformat = {f}\nsecret-file = {whsec_file}\n"
                        for f, r in receivers.items())
        cfg = env.config(sim, [], poll={"interval": "1s"},
                         extra=hooks + "\n[discovery]\nenabled = yes\ninterval = 1s\n")
        teams = receivers["teams"]
        # the first Teams attempt is answered 500 (retried after about 5 s), the second 503 with
        # Retry-After: 1, the third is taken; everything of the order waits behind it
        teams.control(mode="status", status=500, count=1)
        d = Daemon(cfg)
        d.wait_event(of_type("provwatch.lineitem.added", "ordFmt"), 20, "ordFmt polled")
        wait_until(lambda: teams.attempts(), 20, "the first Teams attempt")
        teams.control(mode="status", status=503, retry_after=1, count=1)
        advance(sim, "cust-nw", "ordFmt")
        d.wait_event(of_type("provwatch.lineitem.changed", "ordFmt"), 20, "the partial fulfilment")
        advance(sim, "cust-nw", "ordFmt")
        d.wait_event(of_type("provwatch.order.completed", "ordFmt"), 20, "ordFmt completed")
        events = list(d.all_events)
        check([e["type"] for e in events] == ["provwatch.order.discovered", "provwatch.lineitem.added",
                                              "provwatch.lineitem.changed", "provwatch.lineitem.changed",
                                              "provwatch.order.completed"], f"events {[e['type'] for e in events]}")
        ids = [e["id"] for e in events]
        for f, r in receivers.items():
            r.wait_delivered(ids, 30, f"every event at the {f} receiver")
        # a failing endpoint holds up no other webhook
        first_taken = {f: next(a["mono"] for a in r.delivered() if a["id"] == ids[0]) for f, r in receivers.items()}
        check(first_taken["cloudevents"] < first_taken["teams"] - 3 and first_taken["slack"] < first_taken["teams"] - 3,
              f"the other formats waited for Teams: {first_taken}")
        check(d.stop() == 0, "clean exit")

        printed = {e["id"]: e for e in events}
        for f, r in receivers.items():
            attempts = r.attempts()
            check(sorted(a["id"] for a in r.delivered()) == sorted(ids), f"{f}: each event delivered once")
            check([a["id"] for a in r.delivered()] == ids, f"{f}: delivered out of order")
            for a in attempts:
                check(a["signature_ok"] is True, f"{f}: the signature does not verify over the body sent")
                ts = header(a, "webhook-timestamp")
                check(ts.isdigit() and abs(int(ts) - a["received"]) <= 5, f"{f}: webhook-timestamp {ts}")
                check(header(a, "webhook-signature").startswith("v1,"), f"{f}: webhook-signature")
                want = "application/cloudevents+json" if f == "cloudevents" else "application/json"
                check(header(a, "Content-Type") == want, f"{f}: Content-Type {header(a, 'Content-Type')}")
                ev = printed[a["id"]]
                body = a["body"]
                if f == "cloudevents":
                    check(body == ev, f"cloudevents: body differs from the event: {body}")
                    continue
                text = summary(ev)
                if f == "teams":
                    check(set(body) == {"type", "attachments"} and body["type"] == "message"
                          and len(body["attachments"]) == 1, f"teams: body {body}")
                    att = body["attachments"][0]
                    check(att["contentType"] == "application/vnd.microsoft.card.adaptive" and att["contentUrl"] is None
                          and "contentUrl" in att, f"teams: attachment {att}")
                    card = att["content"]
                    check(card["type"] == "AdaptiveCard" and card["version"] == "1.4"
                          and card["$schema"] == ADAPTIVE_CARD_SCHEMA, f"teams: card {card}")
                    check(card["body"][0]["type"] == "TextBlock" and card["body"][0]["text"] == text,
                          f"teams: summary {card['body'][0]!r}, expected {text!r}")
                    check(card["body"][1]["type"] == "FactSet", f"teams: {card['body'][1]}")
                    facts = {x["title"]: x["value"] for x in card["body"][1]["facts"]}
                    check(facts.get("Order") == "ordFmt" and facts.get("Event") == ev["type"]
                          and facts.get("Time") == ev["time"] and facts.get("Customer") == f"{name} (cust-nw)",
                          f"teams: facts {facts}")
                else:
                    check(set(body) == {"text", "blocks"} and body["text"] == slack_escape(text),
                          f"slack: text {body.get('text')!r}, expected {slack_escape(text)!r}")
                    check(body["blocks"][0] == {"type": "section",
                                                "text": {"type": "mrkdwn", "text": slack_escape(text)}},
                          f"slack: first block {body['blocks'][0]}")
                    fields = [x["text"] for b in body["blocks"] for x in b.get("fields", [])]
                    check(f"*Order*\nordFmt" in fields and f"*Event*\n{ev['type']}" in fields
                          and f"*Customer*\n{slack_escape(name)} (cust-nw)" in fields, f"slack: fields {fields}")

        # the retries: same id, same body, signed anew
        tries = [a for a in teams.attempts() if a["id"] == ids[0]]
        check([a["answered"] for a in tries] == [500, 503, 204], f"teams attempts of the first event: "
              f"{[a['answered'] for a in tries]}")
        check(all(a["body"] == tries[0]["body"] for a in tries), "teams: a retry sent another body")
        check(tries[1]["mono"] - tries[0]["mono"] >= 3.5, "teams: the retry after a 500 came too early")
        check(0.8 <= tries[2]["mono"] - tries[1]["mono"] <= 3, "teams: Retry-After 1 was not honoured")
        check(all(len(r.attempts()) == len(ids) for f, r in receivers.items() if f != "teams"),
              "the other formats got each event once")
    finally:
        kill(d)
        for r in receivers.values():
            r.stop()
        sim.stop()
        env.cleanup()


# ---- support handles ----


def test_support_handles_of_failed_polls():
    env = Env("alerts-handles")
    sim = Sim(env.dir, scenario={"orders": [manual_order("c1", "o1", *PENDING_THEN_FULFILLED)]})
    d = None
    try:
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s", "failure-threshold": "2"})
        d = Daemon(cfg)
        d.wait_event(of_type("provwatch.lineitem.added", "o1"), 20, "o1 polled")
        start = next_index(sim)
        sim.fault(kind="status", status=503, order="o1")
        ev = d.wait_event(of_type("provwatch.order.fetch_failed", "o1"), 40, "order.fetch_failed")
        failed = [r for r in polls(sim, "o1", start) if r["faults"] and r["mono"] < d.printed_at[ev["id"]]]
        check([r["status"] for r in failed] == [503, 503],
              f"polls before fetch_failed: {[r['status'] for r in failed]}")
        last = failed[-1]
        data = ev["data"]
        for r in failed:
            check(r["ms_cv"] and re.fullmatch(r"[A-Za-z0-9+/]{22}\.\d+", r["ms_cv"]), f"MS-CV {r['ms_cv']}")
        check(data["http_status"] == 503 and data["correlation_id"] == last["headers"]["MS-CorrelationId"]
              and data["request_id"] == last["headers"]["MS-RequestId"] and data["ms_cv"] == last["ms_cv"],
              f"fetch_failed data {data}, last request {last['headers']} MS-CV {last['ms_cv']}")
        check(failed[0]["headers"]["MS-CorrelationId"] != last["headers"]["MS-CorrelationId"]
              and failed[0]["ms_cv"] != last["ms_cv"], "the two failed polls have their own handles")
        # each failed poll's log line names the handles of its request and answer
        log = d.log().splitlines()
        for r in failed:
            want = ("Poll of order 'o1' (customer 'c1') failed: HTTP 503",
                    f"(MS-CorrelationId {r['headers']['MS-CorrelationId']}, "
                    f"MS-RequestId {r['headers']['MS-RequestId']}, MS-CV {r['ms_cv']})")
            lines = [line for line in log if want[0] in line and line.endswith(want[1])]
            check(len(lines) == 1, f"no log line with {want[1]}: {[x for x in log if 'Poll of order' in x]}")
        check(d.stop() == 0, "clean exit")
    finally:
        kill(d)
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main([test_invalid_grant_then_recovery, test_restart_while_failing, test_invalid_client,
          test_transient_failures_alert_at_threshold, test_stall_and_rearm_across_restarts,
          test_stalled_discovered_order_with_names, test_three_formats_side_by_side,
          test_support_handles_of_failed_polls])
