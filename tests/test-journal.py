#!/usr/bin/env python3
"""Events and operational logs in a real systemd-journald.

Covered: every event type's entry (MESSAGE_ID, PRIORITY, the structured fields), the names of a
discovered order in CUSTOMER_NAME, OFFER_ID, FRIENDLY_NAME and MESSAGE, the auth alerts' fields,
PROVWATCH_INSTANCE on every entry of a templated instance (and on none otherwise), native log
entries with their code location, and no secret or token in any field.

The test re-executes itself in a private mount namespace (unshare -m) with tmpfs on
/run/systemd/journal and /run/log/journal, starts the real systemd-journald there, runs the daemon
with its stderr connected to a journal stream (as systemd does, with $JOURNAL_STREAM), and reads the
entries back with `journalctl --directory -o json`."""

import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

from harness import HERE, Daemon, Env, Sim, check, main, skip, wait_until

JOURNALD = "/lib/systemd/systemd-journald"
MESSAGE_IDS = {
    "provwatch.lineitem.added": "bf2330ea95c54fa49007020cb6e9d4c3",
    "provwatch.lineitem.changed": "a7f82c6270604890a88e115ceceb40be",
    "provwatch.lineitem.removed": "14f36a7dd41a4f1fadeaa7da5b2b6d5e",
    "provwatch.order.completed": "60261fa439a94750832e641382fb7cbd",
    "provwatch.order.not_found": "457a2aae1c2649c3b35b315d9f21aa04",
    "provwatch.order.fetch_failed": "9f6401e29ab34fa58a166f2524d21044",
    "provwatch.order.recovered": "f75a4c18c8bc4bdfb7a63e572c4941a0",
    "provwatch.order.discovered": "1b9a567f1b054a309e6973d14f08cb02",
    "provwatch.order.stalled": "a01feaffc91f4f0bae59061c924aa064",
    "provwatch.auth.failed": "72cf64fa0c5d4857ade3893b87143305",
    "provwatch.auth.recovered": "1e7e721cd05349ccbbb1bcb900514e8a",
}
PRIORITY = {"provwatch.order.not_found": "4", "provwatch.order.fetch_failed": "4",
            "provwatch.order.recovered": "6", "provwatch.order.stalled": "4", "provwatch.auth.failed": "3",
            "provwatch.auth.recovered": "6"}
ACCESS_TOKEN = re.compile(r"at-\d+-[0-9a-f]{16}")
ROTATED_REFRESH_TOKEN = re.compile(r"rt-\d+-[0-9a-f]{16}")

SCENARIO = {"orders": [
    {"customer": "c1", "order": "o1", "manual": True, "line_items": [
        {"number": 0, "olid": 3, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 5}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 3, "prefulfillmentpending": 2}},
            {"status": "fulfilled", "quantities": {"fulfilled": 5}}]},
        {"number": 1, "steps": [{"status": "fulfilled", "quantities": {"fulfilled": 1}}]}]},
]}


def enter_namespace() -> None:
    if os.environ.get("PROVWATCH_JOURNAL_NS") == "1":
        return
    if os.geteuid() != 0:
        skip("needs root for a private mount namespace with its own journald")
    if not os.access(JOURNALD, os.X_OK) or not shutil.which("unshare") or not shutil.which("journalctl"):
        skip("systemd-journald, journalctl or unshare is not installed")
    script = ("mkdir -p /run/systemd/journal /run/log/journal && "
              "mount -t tmpfs tmpfs /run/systemd/journal && mount -t tmpfs tmpfs /run/log/journal && "
              'exec "$0" "$@"')
    env = dict(os.environ, PROVWATCH_JOURNAL_NS="1")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, sys.executable,
                        os.path.abspath(__file__)], env=env, timeout=600)
    sys.exit(r.returncode)


class Journald:
    def __init__(self):
        # a journald of an earlier test leaves its sockets behind: wait for this one's
        for path in ("/run/systemd/journal/socket", "/run/systemd/journal/stdout"):
            if os.path.exists(path):
                os.unlink(path)
        self.proc = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists("/run/systemd/journal/socket")
                   and os.path.exists("/run/systemd/journal/stdout"), 10, "journald sockets")
        wait_until(lambda: glob.glob("/run/log/journal/*/system.journal"), 10, "the journal file")
        self.dir = os.path.dirname(glob.glob("/run/log/journal/*/system.journal")[0])

    def entries(self, *matches: str) -> list[dict]:
        p = subprocess.run(["journalctl", "--directory", self.dir, "-o", "json", "--no-pager", *matches],
                           capture_output=True, text=True, timeout=30)
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def stream(self, identifier: str) -> socket.socket:
        """A journal stdout stream, as systemd connects a service's stderr."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("/run/systemd/journal/stdout")
        s.sendall(f"{identifier}\n\n6\n1\n0\n0\n0\n".encode())
        s.shutdown(socket.SHUT_RD)
        return s

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def test_events_and_logs_reach_the_journal():
    journald = Journald()
    env = Env("journal")
    sim = Sim(env.dir, scenario=SCENARIO)
    stream = journald.stream("provwatch")
    try:
        cfg = env.config(sim, [("c1", "o1"), ("c1", "gone")], poll={"interval": "1s", "not-found-grace": "0"})
        env.write("provwatch.conf", open(cfg).read().replace("enabled = no", "enabled = yes"))
        st = os.fstat(stream.fileno())
        d = Daemon(cfg, stderr=stream.fileno(), env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        try:
            d.wait_event(lambda e: e["type"] == "provwatch.order.not_found", 20, "not_found")
            sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed", 20, "partial")
            sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
            d.wait_event(lambda e: e["type"] == "provwatch.order.completed", 20, "completed")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)

        printed = {e["id"]: e for e in d.all_events}
        def enough():
            es = journald.entries("SYSLOG_IDENTIFIER=provwatch", f"_PID={d.proc.pid}")
            return es if sum(1 for e in es if "EVENT_ID" in e) >= len(printed) else None
        entries = wait_until(enough, 10, "the entries")
        by_id = {e["EVENT_ID"]: e for e in entries if "EVENT_ID" in e}
        check(set(by_id) == set(printed), f"journal has {len(by_id)} events, stdout {len(printed)}")
        for eid, ev in printed.items():
            j = by_id[eid]
            t = ev["type"]
            check(j["EVENT_TYPE"] == t, f"EVENT_TYPE {j['EVENT_TYPE']}")
            check(j["MESSAGE_ID"] == MESSAGE_IDS[t], f"MESSAGE_ID of {t}: {j['MESSAGE_ID']}")
            check(j["PRIORITY"] == PRIORITY.get(t, "5"), f"PRIORITY of {t}: {j['PRIORITY']}")
            check(j["CUSTOMER_ID"] == ev["data"]["customer_id"] and j["ORDER_ID"] == ev["data"]["order_id"], str(j))
            check(j["SYSLOG_IDENTIFIER"] == "provwatch", "identifier")
            check("\n" not in j["MESSAGE"], "one-line MESSAGE")

        changed = next(j for j in by_id.values() if j["EVENT_TYPE"] == "provwatch.lineitem.changed"
                       and j["NEW_STATUS"] == "fulfilled")
        check(changed["MESSAGE"] == "Order o1 (customer c1) line item 0: prefulfillmentpending \u2192 fulfilled "
              "(fulfilled 5)", changed["MESSAGE"])
        check(changed["LINE_ITEM_NUMBER"] == "0" and changed["ORDER_LINE_ITEM_ID"] == "3", str(changed))
        check(changed["OLD_STATUS"] == "prefulfillmentpending", str(changed))
        check(changed["OLD_QUANTITIES"] == "fulfilled=3 prefulfillmentpending=2", changed["OLD_QUANTITIES"])
        check(changed["NEW_QUANTITIES"] == "fulfilled=5", changed["NEW_QUANTITIES"])
        added1 = next(j for j in by_id.values() if j["EVENT_TYPE"] == "provwatch.lineitem.added"
                      and j["LINE_ITEM_NUMBER"] == "1")
        check("ORDER_LINE_ITEM_ID" not in added1 and "OLD_STATUS" not in added1, "absent fields are left out")

        # queries an administrator would run
        q = journald.entries("ORDER_ID=o1", "MESSAGE_ID=" + MESSAGE_IDS["provwatch.order.completed"])
        check(len(q) == 1, f"ORDER_ID + MESSAGE_ID filter: {len(q)}")

        # operational logs: native entries with the code location, never stdout
        logs = [e for e in entries if "EVENT_ID" not in e]
        check(any("Watching 2 orders" in e["MESSAGE"] for e in logs), "start-up log line")
        check(not [e for e in entries if "PROVWATCH_INSTANCE" in e], "PROVWATCH_INSTANCE without an instance")
        located = [e for e in logs if e.get("CODE_FILE") and e.get("CODE_LINE")]
        check(located, "operational logs carry CODE_FILE/CODE_LINE")
        check(all(e.get("SYSLOG_IDENTIFIER") == "provwatch" for e in located), "identifier on logs")
    finally:
        stream.close()
        sim.stop()
        env.cleanup()
        journald.stop()


NAMED_ORDER = {
    "customer": "cust-fab", "customer_name": "Fabrikam Ltd", "order": "ordNames", "manual": True,
    "line_items": [
        {"number": 0, "olid": 0, "offer_id": "CFQ7TTC0LH18:0001", "friendly_name": "Microsoft 365 Business Basic",
         "quantity": 5, "steps": [
             {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 5}},
             {"status": "prefulfillmentpending", "quantities": {"fulfilled": 3, "prefulfillmentpending": 2}},
             {"status": "fulfilled", "quantities": {"fulfilled": 5}}]},
        {"number": 1, "olid": 1, "offer_id": "CFQ7TTC0LH19:0001", "friendly_name": "Teams Phone Standard",
         "quantity": 1, "status": "fulfilled", "quantities": {"fulfilled": 1}}]}
NAMES = {"0": ("CFQ7TTC0LH18:0001", "Microsoft 365 Business Basic"), "1": ("CFQ7TTC0LH19:0001", "Teams Phone Standard")}


def of_type(type_: str):
    return lambda e: e["type"] == type_


def test_names_instance_and_alerts():
    """A templated instance (PROVWATCH_INSTANCE=contoso) with discovery: order.discovered, the names,
    order.stalled, auth.failed and auth.recovered in the journal; no secret in any entry."""
    journald = Journald()
    env = Env("journal-names")
    client_secret, initial_rt = f"client-secret-{secrets.token_hex(12)}", f"initial-rt-{secrets.token_hex(12)}"
    new_rt = f"consented-rt-{secrets.token_hex(12)}"
    env.write("client-secret", client_secret + "\n", 0o600)
    env.write("refresh-token", initial_rt + "\n", 0o600)
    with open(os.path.join(HERE, "fixtures", "token-error-refresh-expired.json"), encoding="utf-8") as f:
        invalid_grant = json.load(f)
    sim = Sim(env.dir, "--client-secret", client_secret, "--refresh-token", initial_rt)
    stream = journald.stream("provwatch")
    d = None
    try:
        sim.control("POST", "config", {"invalid_grant_body": invalid_grant})
        sim.control("POST", "place", NAMED_ORDER)
        cfg = env.config(sim, [], poll={"interval": "1s", "stall-after": "2s"},
                         extra="\n[discovery]\nenabled = yes\ninterval = 1s\n")
        env.write("provwatch.conf", open(cfg).read().replace("enabled = no", "enabled = yes"))
        st = os.fstat(stream.fileno())
        d = Daemon(cfg, stderr=stream.fileno(),
                   env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "PROVWATCH_INSTANCE": "contoso"})
        d.wait_event(of_type("provwatch.order.stalled"), 20, "order.stalled")
        n = len(d.all_events)
        sim.control("POST", "advance", {"customer": "cust-fab", "order": "ordNames"})
        d.wait_event(of_type("provwatch.lineitem.changed"), 20, "the partial fulfilment", since=n)
        # the refresh token dies, then a new one is put in place
        sim.control("POST", "refresh-token", {"refresh_token": None})
        sim.control("POST", "tokens/expire")
        d.wait_event(of_type("provwatch.auth.failed"), 20, "auth.failed")
        sim.control("POST", "refresh-token", {"refresh_token": new_rt})
        env.write("refresh-token", new_rt + "\n", 0o600)
        d.send(signal.SIGHUP)
        d.wait_event(of_type("provwatch.auth.recovered"), 20, "auth.recovered")
        n = len(d.all_events)
        sim.control("POST", "advance", {"customer": "cust-fab", "order": "ordNames"})
        d.wait_event(of_type("provwatch.order.completed"), 20, "order.completed", since=n)
        check(d.stop() == 0, "clean exit")

        printed = {e["id"]: e for e in d.all_events}
        def enough():
            es = journald.entries(f"_PID={d.proc.pid}")
            return es if sum(1 for e in es if "EVENT_ID" in e) >= len(printed) else None
        entries = wait_until(enough, 10, "the entries")
        by_id = {e["EVENT_ID"]: e for e in entries if "EVENT_ID" in e}
        check(set(by_id) == set(printed), f"journal has {len(by_id)} events, stdout {len(printed)}")
        types = {ev["type"] for ev in printed.values()}
        check(types >= set(MESSAGE_IDS) - {"provwatch.lineitem.removed", "provwatch.order.not_found",
                                           "provwatch.order.fetch_failed", "provwatch.order.recovered"},
              f"event types {sorted(types)}")

        # every entry of the instance, events and logs, says which instance it is
        logs = [e for e in entries if "EVENT_ID" not in e]
        check(any("Discovered order 'ordNames'" in e["MESSAGE"] for e in logs), "the discovery log line")
        check(any("invalid_grant" in e["MESSAGE"] for e in logs), "the invalid_grant log line")
        missing = [e["MESSAGE"] for e in entries if e.get("PROVWATCH_INSTANCE") != "contoso"]
        check(not missing, f"entries without PROVWATCH_INSTANCE=contoso: {missing}")

        for eid, ev in printed.items():
            j, t, data = by_id[eid], ev["type"], ev["data"]
            check(j["EVENT_TYPE"] == t, f"EVENT_TYPE {j['EVENT_TYPE']}")
            check(j["MESSAGE_ID"] == MESSAGE_IDS[t], f"MESSAGE_ID of {t}: {j['MESSAGE_ID']}")
            check(j["PRIORITY"] == PRIORITY.get(t, "5"), f"PRIORITY of {t}: {j['PRIORITY']}")
            check("\n" not in j["MESSAGE"], "one-line MESSAGE")
            if t.startswith("provwatch.auth."):
                check("CUSTOMER_ID" not in j and "ORDER_ID" not in j, f"{t}: order fields {j}")
                check(j["TENANT_ID"] == "tenant1" and j["GRANT"] == "refresh_token", f"{t}: {j}")
                check("tenant1" in j["MESSAGE"], f"{t}: MESSAGE {j['MESSAGE']!r}")
                if t == "provwatch.auth.failed":
                    check(j["AUTH_ERROR"] == "invalid_grant" and j["AUTH_ERROR_DESCRIPTION"] == data["description"],
                          f"auth.failed: {j}")
                    check("invalid_grant" in j["MESSAGE"] and data["action"] in j["MESSAGE"],
                          f"auth.failed: MESSAGE {j['MESSAGE']!r}")
                continue
            check(j["CUSTOMER_ID"] == "cust-fab" and j["ORDER_ID"] == "ordNames", f"{t}: {j}")
            check(j["CUSTOMER_NAME"] == "Fabrikam Ltd", f"{t}: CUSTOMER_NAME {j.get('CUSTOMER_NAME')}")
            check(j["MESSAGE"].startswith("Order ordNames (Fabrikam Ltd) "), f"{t}: MESSAGE {j['MESSAGE']!r}")
            if t.startswith("provwatch.lineitem."):
                offer, name = NAMES[j["LINE_ITEM_NUMBER"]]
                check(j["OFFER_ID"] == offer and j["FRIENDLY_NAME"] == name, f"{t}: {j}")
            else:
                check("OFFER_ID" not in j and "FRIENDLY_NAME" not in j, f"{t}: line-item names on {j}")

        def entry(t, pred=lambda j: True):
            return next(j for j in by_id.values() if j["EVENT_TYPE"] == t and pred(j))
        check(entry("provwatch.lineitem.changed", lambda j: j["NEW_STATUS"] == "prefulfillmentpending")["MESSAGE"]
              == "Order ordNames (Fabrikam Ltd) line item 0 Microsoft 365 Business Basic: prefulfillmentpending "
              "\u2192 prefulfillmentpending (fulfilled 3, prefulfillmentpending 2)", "MESSAGE of the change")
        check(entry("provwatch.lineitem.added", lambda j: j["LINE_ITEM_NUMBER"] == "1")["MESSAGE"]
              == "Order ordNames (Fabrikam Ltd) line item 1 Teams Phone Standard added: fulfilled (fulfilled 1)",
              "MESSAGE of line item 1 added")
        check(entry("provwatch.order.discovered")["MESSAGE"] == "Order ordNames (Fabrikam Ltd) discovered: 2 line "
              "items (Microsoft 365 Business Basic \u00d7 5, Teams Phone Standard \u00d7 1)", "MESSAGE of discovered")
        stalled = next(ev for ev in printed.values() if ev["type"] == "provwatch.order.stalled")
        check(by_id[stalled["id"]]["MESSAGE"] == f"Order ordNames (Fabrikam Ltd) has not changed since "
              f"{stalled['data']['since']}: line item 0 Microsoft 365 Business Basic prefulfillmentpending",
              f"MESSAGE of stalled: {by_id[stalled['id']]['MESSAGE']!r}")
        check(entry("provwatch.order.completed")["MESSAGE"] == "Order ordNames (Fabrikam Ltd) completed: 2 line items "
              "fulfilled", "MESSAGE of completed")
        q = journald.entries("PROVWATCH_INSTANCE=contoso", "MESSAGE_ID=" + MESSAGE_IDS["provwatch.auth.failed"])
        check(len(q) == 1, f"PROVWATCH_INSTANCE + MESSAGE_ID filter: {len(q)}")
        dump = os.environ.get("PROVWATCH_JOURNAL_DUMP")
        if dump:  # the alerts as journalctl shows them, for the documentation
            with open(dump, "w", encoding="utf-8") as f:
                for t in ("provwatch.auth.failed", "provwatch.auth.recovered", "provwatch.order.stalled"):
                    p = subprocess.run(["journalctl", "--directory", journald.dir, "--no-pager", "-o", "short-iso",
                                        "MESSAGE_ID=" + MESSAGE_IDS[t]], capture_output=True, text=True, timeout=30)
                    f.write(p.stdout)

        # nothing secret in any field of any entry
        text = "\n".join(json.dumps(e) for e in journald.entries())
        found = [name for name, v in (("client secret", client_secret), ("initial refresh token", initial_rt),
                                      ("new refresh token", new_rt)) if v in text]
        found += [m.group(0)[:8] + "…" for p in (ACCESS_TOKEN, ROTATED_REFRESH_TOKEN) for m in p.finditer(text)]
        check(not found, f"secrets in the journal: {found}")
    finally:
        if d and d.proc.poll() is None:
            d.stop(signal.SIGKILL)
        stream.close()
        sim.stop()
        env.cleanup()
        journald.stop()


if __name__ == "__main__":
    os.environ.pop("PROVWATCH_INSTANCE", None)  # the first test runs without an instance
    enter_namespace()
    main([test_events_and_logs_reach_the_journal, test_names_instance_and_alerts])
