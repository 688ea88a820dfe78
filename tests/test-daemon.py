#!/usr/bin/env python3
"""`provwatch run` against the simulator: sd_notify through a real NOTIFY_SOCKET (READY, STATUS,
WATCHDOG, RELOADING/MONOTONIC_USEC, STOPPING), reload adding and removing orders, a broken reload,
orders-dir changes without reload, 429 with Retry-After, token expiry mid-run, SIGTERM during
in-flight requests, and a reload or an orders-dir change handled together with answers not yet
committed (never two polls of one order at once, no change announced twice)."""

import os
import signal
import socket
import sqlite3
import threading
import time

from harness import Daemon, Env, Failure, Sim, check, describe_request, main, overlapping_requests, wait_until

SCENARIO = {"orders": [
    {"customer": "c1", "order": f"o{i}", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 2}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 1, "prefulfillmentpending": 1}},
            {"status": "fulfilled", "quantities": {"fulfilled": 2}}]}]}
    for i in range(1, 7)]}


class NotifyListener:
    """A NOTIFY_SOCKET like systemd's: datagrams of KEY=VALUE lines."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = {}
            for line in data.decode().split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def find(self, pred, start: int = 0):
        with self.lock:
            for i, (t, m) in enumerate(self.messages[start:], start):
                if pred(m):
                    return i, t, m
        return None

    def wait(self, pred, timeout: float, what: str, start: int = 0):
        return wait_until(lambda: self.find(pred, start), timeout, what)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def close(self) -> None:
        self.running = False
        self.sock.close()


def is_added(order):
    return lambda e: e["type"] == "provwatch.lineitem.added" and e["data"]["order_id"] == order


def test_notify_reload_and_stop():
    env = Env("daemon-notify")
    sim = Sim(env.dir, scenario=SCENARIO)
    notify = NotifyListener(env.dir)
    try:
        cfg = env.config(sim, [("c1", "o1"), ("c1", "o2")], poll={"interval": "1s"})
        d = Daemon(cfg, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"})
        try:
            i_ready, t_ready, _ = notify.wait(lambda m: m.get("READY") == "1", 20, "READY=1")
            check(notify.find(lambda m: "STATUS" in m and "watching 2 orders" in m["STATUS"]),
                  f"STATUS summary: {notify.messages}")
            d.wait_event(is_added("o1"), 20, "o1 added")
            d.wait_event(is_added("o2"), 20, "o2 added")

            # watchdog at half of WatchdogSec (1 s): several pings in a couple of seconds
            n = notify.count()
            wait_until(lambda: sum(1 for _, m in notify.messages[n:] if m.get("WATCHDOG") == "1") >= 4, 4,
                       "4 watchdog pings within 4 s")
            pings = [t for t, m in notify.messages[n:] if m.get("WATCHDOG") == "1"]
            gaps = [b - a for a, b in zip(pings, pings[1:])]
            check(all(0.3 < g < 0.8 for g in gaps), f"watchdog gaps {gaps}")

            # reload: o1 removed, o3 added
            env.config(sim, [("c1", "o2"), ("c1", "o3")], poll={"interval": "1s"})
            n = notify.count()
            before = time.monotonic_ns() // 1000
            d.send(signal.SIGHUP)
            i_rel, _, m_rel = notify.wait(lambda m: m.get("RELOADING") == "1", 10, "RELOADING=1", n)
            usec = int(m_rel.get("MONOTONIC_USEC", "0"))
            check(before <= usec <= time.monotonic_ns() // 1000, f"MONOTONIC_USEC {usec} vs {before}")
            notify.wait(lambda m: m.get("READY") == "1", 10, "READY=1 after reload", i_rel + 1)
            d.wait_event(is_added("o3"), 20, "o3 added after reload")
            req_index = sim.control("GET", "requests?since=0")["next"]
            # o2 and o3 are polled every second; o1 no more
            wait_until(lambda: sum(1 for r in sim.requests(req_index) if r["order"] == "o3") >= 3, 15,
                       "o3 polled three more times")
            check(not [r for r in sim.requests(req_index) if r["order"] == "o1"], "o1 still polled after reload")
            check(not any(e["data"]["order_id"] == "o2" and e["type"] == "provwatch.lineitem.added"
                          for e in d.all_events[2:]), "o2 was re-announced after reload")

            # an invalid configuration is refused, the old one stays
            env.write("provwatch.conf", open(cfg).read().replace("interval = 1s", "interval = 5 parsecs"))
            n = notify.count()
            d.send(signal.SIGHUP)
            i_rel, _, _ = notify.wait(lambda m: m.get("RELOADING") == "1", 10, "RELOADING=1 (broken)", n)
            notify.wait(lambda m: m.get("READY") == "1", 10, "READY=1 after a refused reload", i_rel + 1)
            wait_until(lambda: "5 parsecs" in d.log() and "keeping the one in force" in d.log(), 5,
                       "the refused reload logged")
            sim.control("POST", "advance", {"customer": "c1", "order": "o3"})
            ev = d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed" and e["data"]["order_id"] == "o3",
                              20, "o3 changed under the old configuration")
            check(ev["data"]["new"]["quantities"] == {"fulfilled": 1, "prefulfillmentpending": 1}, str(ev["data"]))

            n = notify.count()
            rc = d.stop(signal.SIGTERM, 10)
            check(rc == 0, f"exit status {rc}")
            check(notify.find(lambda m: m.get("STOPPING") == "1", n), "STOPPING=1")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        notify.close()
        sim.stop()
        env.cleanup()


def test_orders_dir_is_watched():
    env = Env("daemon-ordersdir")
    sim = Sim(env.dir, scenario=SCENARIO)
    odir = os.path.join(env.dir, "orders.d")
    os.mkdir(odir)
    try:
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s"})
        env.write("provwatch.conf", open(cfg).read().replace("orders-dir =", f"orders-dir = {odir}"))
        d = Daemon(cfg)
        try:
            d.wait_event(is_added("o1"), 20, "o1 added")
            t0 = time.monotonic()
            with open(os.path.join(odir, "new.list.tmp"), "w") as f:
                f.write("# two more\nc1 o4\n\nc1 o5  # trailing comment\n")
            os.rename(os.path.join(odir, "new.list.tmp"), os.path.join(odir, "new.list"))
            d.wait_event(is_added("o4"), 5, "o4 added from orders-dir")
            d.wait_event(is_added("o5"), 5, "o5 added from orders-dir")
            # the order is polled right away; its event needs one request round trip
            check(time.monotonic() - t0 < 3, f"took {time.monotonic() - t0:.1f}s")
            # a file that is not *.list is ignored
            with open(os.path.join(odir, "notes.txt"), "w") as f:
                f.write("c1 o6\n")
            # removal stops polling o4/o5
            os.unlink(os.path.join(odir, "new.list"))
            d.wait_log("2 removed", 5, "orders removed after the file went")
            idx = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: sum(1 for r in sim.requests(idx) if r["order"] == "o1") >= 2, 10, "o1 polled on")
            stray = [r["order"] for r in sim.requests(idx) if r["order"] in ("o4", "o5", "o6")]
            check(not stray, f"removed or ignored orders still polled: {stray}")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        sim.stop()
        env.cleanup()


def test_429_pauses_every_request():
    env = Env("daemon-429")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        orders = [("c1", f"o{i}") for i in range(1, 7)]
        cfg = env.config(sim, orders, poll={"interval": "1s", "concurrency": "2"})
        d = Daemon(cfg)
        try:
            for _, o in orders:
                d.wait_event(is_added(o), 20, f"{o} added")
            sim.fault(kind="429", retry_after=3, count=1)

            def throttled():
                return next((r for r in sim.requests() if r["status"] == 429), None)

            r429 = wait_until(throttled, 10, "a 429 answer")
            wait_until(lambda: any(r["mono"] > r429["mono"] + 3.5 for r in sim.requests(r429["index"] + 1)), 15,
                       "requests after Retry-After")
            later = [r for r in sim.requests(r429["index"] + 1) if r["status"] != 0]
            # requests already in flight when the 429 arrived may land within a few ms of it
            early = [r for r in later if r429["mono"] + 0.2 < r["mono"] < r429["mono"] + 3.0]
            check(not early, f"{len(early)} requests inside Retry-After: {[round(r['mono'] - r429['mono'], 2) for r in early]}")
            d.wait_log("429", 5, "the 429 logged")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        sim.stop()
        env.cleanup()


def test_token_expiry_mid_run():
    env = Env("daemon-token")
    sim = Sim(env.dir, "--strict-rotation", scenario=SCENARIO)
    try:
        cfg = env.config(sim, [("c1", "o1"), ("c1", "o2")], poll={"interval": "1s", "failure-threshold": "1"})
        d = Daemon(cfg)
        try:
            d.wait_event(is_added("o2"), 20, "o2 added")
            tokens_before = len(sim.requests(kind="token"))
            sim.control("POST", "tokens/expire")
            idx = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: any(r["status"] == 401 for r in sim.requests(idx)), 10, "a 401")
            wait_until(lambda: len(sim.requests(kind="token")) > tokens_before, 10, "a new token request")
            sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed", 20, "polling goes on with the new token")
            bad = [e["type"] for e in d.all_events if e["type"].startswith("provwatch.order.")]
            check(not bad, f"token expiry produced {bad}")
            toks = sim.requests(kind="token")
            check(all(t["token"]["refresh_token"] == "valid" for t in toks), "rotated refresh token used")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        sim.stop()
        env.cleanup()


def test_token_renewed_ahead_of_expiry():
    env = Env("daemon-renew")
    sim = Sim(env.dir, "--strict-rotation", "--token-ttl", "4", scenario=SCENARIO)
    try:
        cfg = env.config(sim, [("c1", "o1"), ("c1", "o2")], poll={"interval": "500ms"})
        d = Daemon(cfg)
        try:
            d.wait_event(is_added("o2"), 20, "o2 added")
            wait_until(lambda: len(sim.requests(kind="token")) >= 5, 20, "five token acquisitions")
            api = sim.requests()
            check(all(r["status"] == 200 for r in api), f"answers {sorted({r['status'] for r in api})}: "
                  "an access token was used after it expired")
            t = sorted(r["mono"] for r in api if r["order"] == "o1")
            gaps = [b - a for a, b in zip(t, t[1:])]
            check(t and max(gaps) < 1.5, f"polling stalled during renewal: longest gap {max(gaps):.2f}s")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        sim.stop()
        env.cleanup()


def test_sigterm_with_requests_in_flight():
    env = Env("daemon-sigterm")
    sim = Sim(env.dir, scenario=SCENARIO)
    try:
        orders = [("c1", f"o{i}") for i in range(1, 7)]
        cfg = env.config(sim, orders, poll={"interval": "1s"})
        d = Daemon(cfg, env={"PROVWATCH_DEBUG": "1"})
        try:
            for _, o in orders:
                d.wait_event(is_added(o), 20, f"{o} added")
            sim.fault(kind="slow", delay=20)
            # the simulator records a request only when it answers; the daemon's debug log says when
            # it sent one, and every request sent from now on hangs for 20 s
            mark = len(d.log())
            wait_until(lambda: ": GET " in d.log()[mark:], 10, "a request in flight")
            t0 = time.monotonic()
            rc = d.stop(signal.SIGTERM, 10)
            took = time.monotonic() - t0
            check(rc == 0, f"exit status {rc}")
            check(took < 5, f"stopping took {took:.1f}s")
            db = sqlite3.connect(os.path.join(env.state, "provwatch.db"))
            n = db.execute("SELECT count(*) FROM orders WHERE snapshot IS NOT NULL").fetchone()[0]
            check(n == 6, f"{n} snapshots committed")
            check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity")
            db.close()
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        sim.stop()
        env.cleanup()


# ---- a reload or an orders-dir change racing finished polls ----------------------------------

RACE_ORDERS = [f"r{i}" for i in range(1, 5)]
RACE_ROUNDS = 3
RACE_STEPS = 8  # fulfilled 0, 1, ... of 7, then fulfilled


def race_scenario() -> dict:
    steps = [{"status": "prefulfillmentpending",
              "quantities": {"fulfilled": k, "prefulfillmentpending": RACE_STEPS - 1 - k} if k else
              {"prefulfillmentpending": RACE_STEPS - 1}} for k in range(RACE_STEPS - 1)]
    steps.append({"status": "fulfilled", "quantities": {"fulfilled": RACE_STEPS - 1}})
    orders = [{"customer": "c1", "order": o, "manual": True, "line_items": [{"number": 0, "olid": 0, "steps": steps}]}
              for o in RACE_ORDERS]
    # toggled in and out of orders-dir; time-driven, so /_control/advance leaves it alone
    orders.append({"customer": "c1", "order": "x1", "line_items": [{"number": 0, "status": "fulfilled",
                                                                    "quantities": {"fulfilled": 1}}]})
    return {"orders": orders}


def check_race(sim: Sim, d: Daemon, rounds: int) -> None:
    """Every simulator change announced exactly once, by one chain of events per order, and never two
    requests of one order in flight at the simulator."""
    problems = []
    reqs = sim.requests()
    t0 = reqs[0]["mono"] if reqs else 0.0
    bad = overlapping_requests(reqs)
    if bad:
        problems.append(f"{len(bad)} times two polls of one order were in flight at once, e.g. " +
                        "; ".join(f"{describe_request(a, t0)} and {describe_request(b, t0)}" for a, b in bad[:4]))
    changes = [c for c in sim.control("GET", "changes")["changes"] if c["order"] in RACE_ORDERS]
    check(len(changes) == rounds * len(RACE_ORDERS), f"{len(changes)} simulator changes")
    for o in RACE_ORDERS:
        evs = [e for e in d.all_events if e["data"]["order_id"] == o and e["type"].startswith("provwatch.lineitem.")]
        types = [e["type"].rsplit(".", 1)[1] for e in evs]
        # a state is the fulfilled quantity: 0, 1, ...
        truth = [(c["old_quantities"].get("fulfilled", 0), c["quantities"].get("fulfilled", 0))
                 for c in changes if c["order"] == o]
        seen = [(e["data"]["old"]["quantities"].get("fulfilled", 0), e["data"]["new"]["quantities"].get("fulfilled", 0))
                for e in evs[1:]]
        if types != ["added"] + ["changed"] * rounds or seen != truth:
            problems.append(f"{o}: simulator changes {truth}; events " + ", ".join(
                [f"added {evs[0]['id']}"] + [f"changed {e['id']} {a}->{b}" for e, (a, b) in zip(evs[1:], seen)]))
    if len({e["id"] for e in d.all_events}) != len(d.all_events):
        problems.append("an event id was printed twice")
    check(not problems, "\n".join(problems))


def race_finished_polls(trigger: str) -> None:
    """Polls every 2 s, answers 3 s late. The daemon is stopped (SIGSTOP) while its polls are in
    flight; once the simulator has answered all of them, it moves every order on and the daemon is
    told to reload (SIGHUP) or an orders-dir file is added or removed, then the daemon is continued
    (SIGCONT): it finds the answers and the reload (or the change) at once, and the reload is handled
    before the answers are committed. An order whose result waits to be committed must not be polled
    again meanwhile, else two polls of it may finish together and both announce the same change.
    (An orders-dir change takes effect a moment after it is noticed, so it meets uncommitted answers
    less easily than a reload; the rule is the same.)"""
    env = Env(f"daemon-race-{trigger}")
    sim = Sim(env.dir, scenario=race_scenario())
    odir = os.path.join(env.dir, "orders.d")
    os.mkdir(odir)
    d = None
    try:
        cfg = env.config(sim, [("c1", o) for o in RACE_ORDERS], pc={"timeout": "15s"},
                         poll={"interval": "2s", "settled-interval": "2s", "failure-threshold": "100"})
        env.write("provwatch.conf", open(cfg).read().replace("orders-dir =", f"orders-dir = {odir}"))
        sim.fault(kind="slow", delay=3)
        d = Daemon(cfg)
        for o in RACE_ORDERS:
            d.wait_event(is_added(o), 20, f"{o} added")
        resumed = time.monotonic() - 1.0  # the first answers came a moment ago
        for rnd in range(RACE_ROUNDS):
            # the order's next regular poll (interval 2 s after the last commit) is in flight
            def next_polls_in_flight() -> bool:
                recent = [r for r in sim.requests() if r["mono"] > resumed + 1.5 and r["done_mono"] is None]
                return {r["order"] for r in recent} >= set(RACE_ORDERS)

            wait_until(next_polls_in_flight, 20, f"round {rnd}: the next poll of every order in flight")
            d.send(signal.SIGSTOP)
            try:
                wait_until(lambda: all(r["done_mono"] is not None for r in sim.requests()), 10,
                           f"round {rnd}: every answer written while the daemon is stopped")
                time.sleep(0.2)  # deliberate: the answers' last bytes reach the stopped daemon's sockets
                sim.control("POST", "advance", {})
                if trigger == "reload":
                    d.send(signal.SIGHUP)
                else:
                    path = os.path.join(odir, "extra.list")
                    if rnd % 2 == 0:
                        with open(path + ".tmp", "w") as f:
                            f.write("c1 x1\n")
                        os.rename(path + ".tmp", path)
                    else:
                        os.unlink(path)
            finally:
                d.send(signal.SIGCONT)
            resumed = time.monotonic()
            if trigger == "reload":
                wait_until(lambda: d.log().count("Reloading configuration") == rnd + 1, 10,
                           f"round {rnd}: the reload logged")
            else:
                wait_until(lambda: d.log().count("Watching 5 orders (1 added, 0 removed)." if rnd % 2 == 0 else
                                                 "Watching 4 orders (0 added, 1 removed).") >= rnd // 2 + 1, 10,
                           f"round {rnd}: the orders-dir change applied")
        # the last state, then one more poll of every order after it
        for o in RACE_ORDERS:
            d.wait_event(lambda e, o=o: e["data"]["order_id"] == o and e["type"] == "provwatch.lineitem.changed"
                         and e["data"]["new"]["quantities"].get("fulfilled") == RACE_ROUNDS, 20,
                         f"{o}'s last change")
        mark = sim.control("GET", "requests")["next"]
        wait_until(lambda: {r["order"] for r in sim.requests(mark) if r["done_mono"] is not None}
                   >= set(RACE_ORDERS), 20, "one more poll of every order")
        check(d.stop() == 0, "clean exit")
        check_race(sim, d, RACE_ROUNDS)
    finally:
        if d is not None and d.proc.poll() is None:
            d.send(signal.SIGCONT)
            d.stop(signal.SIGKILL)
        sim.stop()
        env.cleanup()


def test_reload_racing_finished_polls():
    race_finished_polls("reload")


def test_orders_dir_change_racing_finished_polls():
    race_finished_polls("orders-dir")


if __name__ == "__main__":
    main([test_notify_reload_and_stop, test_orders_dir_is_watched, test_429_pauses_every_request,
          test_token_expiry_mid_run, test_token_renewed_ahead_of_expiry, test_sigterm_with_requests_in_flight,
          test_reload_racing_finished_polls, test_orders_dir_change_racing_finished_polls])
