#!/usr/bin/env python3
"""Events and operational logs in a real systemd-journald.

The test re-executes itself in a private mount namespace (unshare -m) with tmpfs on
/run/systemd/journal and /run/log/journal, starts the real systemd-journald there, runs the daemon
with its stderr connected to a journal stream (as systemd does, with $JOURNAL_STREAM), and reads the
entries back with `journalctl --directory -o json`."""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from harness import Daemon, Env, Sim, check, main, skip, wait_until

JOURNALD = "/lib/systemd/systemd-journald"
MESSAGE_IDS = {
    "provwatch.lineitem.added": "bf2330ea95c54fa49007020cb6e9d4c3",
    "provwatch.lineitem.changed": "a7f82c6270604890a88e115ceceb40be",
    "provwatch.lineitem.removed": "14f36a7dd41a4f1fadeaa7da5b2b6d5e",
    "provwatch.order.completed": "60261fa439a94750832e641382fb7cbd",
    "provwatch.order.not_found": "457a2aae1c2649c3b35b315d9f21aa04",
    "provwatch.order.fetch_failed": "9f6401e29ab34fa58a166f2524d21044",
    "provwatch.order.recovered": "f75a4c18c8bc4bdfb7a63e572c4941a0",
}
PRIORITY = {"provwatch.order.not_found": "4", "provwatch.order.fetch_failed": "4",
            "provwatch.order.recovered": "6"}

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
        located = [e for e in logs if e.get("CODE_FILE") and e.get("CODE_LINE")]
        check(located, "operational logs carry CODE_FILE/CODE_LINE")
        check(all(e.get("SYSLOG_IDENTIFIER") == "provwatch" for e in located), "identifier on logs")
    finally:
        stream.close()
        sim.stop()
        env.cleanup()
        journald.stop()


if __name__ == "__main__":
    enter_namespace()
    main([test_events_and_logs_reach_the_journal])
