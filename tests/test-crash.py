#!/usr/bin/env python3
"""Crash safety and a broken state directory.

kill -9: `provwatch run` is killed at random moments (at least 50 times) while a thread keeps
changing the simulator's orders, and a webhook receiver records every delivery. Across the whole
sequence: the store always opens and passes PRAGMA integrity_check; every change reaches the
webhook (after the last restart runs until the store matches the simulator and the queue is
empty); the line-item events delivered to the webhook form, per line item, one unbroken chain
old -> new through states the simulator really had, in its order (intermediate states may be
skipped), ending at the final state: no change lost, none invented, none re-announced under a new
id (a re-announcement would break the chain). Printed events (stdout is not durable: a kill between
commit and print loses the line) must each be one of the delivered events, with the same id and body.

State directory: full (a 2 MiB tmpfs filled up, then freed): the poll counts as failed, the error is
logged once, the old snapshot stays, polling goes on, and the change that waited is reported once
when space returns. Read-only (bind-mounted read-only over itself mid-run): provwatch keeps the
files it has open, which stay writable through those descriptors, so it goes on saving and
reporting; a restart while the directory is read-only fails at once with a clear message (exit 1),
and the next start after it is writable again reports the change that waited, once. The state
tests run in a private mount namespace (the script re-executes itself under unshare -m) and need
root; without root they are skipped with the reason printed."""

import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from harness import (Daemon, Env, Failure, Sim, WebhookReceiver, check, main, printed_events, provwatch_binary,
                     wait_until)

ITERATIONS = 50
ORDERS = [f"o{i}" for i in range(1, 9)]
LINE_ITEMS = (0, 1)
NS_ENV = "PROVWATCH_CRASH_NS"


def pending(q):
    return {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": q}}


def partial(done, q):
    return {"status": "prefulfillmentpending", "quantities": {"fulfilled": done, "prefulfillmentpending": q - done}}


def fulfilled(q):
    return {"status": "fulfilled", "quantities": {"fulfilled": q}}


def random_state(rng):
    q = rng.randint(2, 6)
    return rng.choice([pending(q), partial(rng.randint(1, q - 1), q), fulfilled(q)])


def state_key(st):
    """A comparable line-item state: (status, sorted quantities)."""
    return st["status"], tuple(sorted(st["quantities"].items()))


class Mutator:
    """Keeps changing random line items of the simulator's orders until stopped."""

    def __init__(self, sim: Sim, rng: random.Random, states: dict):
        self.sim, self.rng, self.states = sim, rng, states
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.wait(self.rng.uniform(0.02, 0.12)):
                o = self.rng.choice(ORDERS)
                for n in LINE_ITEMS:
                    if self.rng.random() < 0.6:
                        self.states[o][n] = random_state(self.rng)
                self.sim.control("POST", "set", {"customer": "c1", "order": o, "line_items": [
                    {"number": n, "olid": n, **self.states[o][n]} for n in LINE_ITEMS]})
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        if self.error:
            raise Failure(f"the mutator failed: {self.error}")


def integrity(state_dir: str) -> str:
    db = sqlite3.connect(f"file:{state_dir}/provwatch.db?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def store_query(state_dir: str, sql: str):
    db = sqlite3.connect(f"file:{state_dir}/provwatch.db?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def stored_states(state_dir: str) -> dict:
    """{(order, line item): state key} from the snapshots in the store."""
    out = {}
    for order, snap in store_query(state_dir, "SELECT order_id, snapshot FROM orders WHERE snapshot IS NOT NULL"):
        for li in json.loads(snap)["items"]:
            out[(order, li["n"])] = (li["status"], tuple(sorted(li["q"].items())))
    return out


def test_kill9_at_random_moments():
    seed = int(os.environ.get("PROVWATCH_CRASH_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (PROVWATCH_CRASH_SEED to repeat)", flush=True)
    rng = random.Random(seed)
    env = Env("crash")
    states = {o: {n: pending(rng.randint(2, 6)) for n in LINE_ITEMS} for o in ORDERS}
    initial = {o: {n: dict(states[o][n]) for n in LINE_ITEMS} for o in ORDERS}
    scenario = {"orders": [{"customer": "c1", "order": o, "manual": True, "line_items": [
        {"number": n, "olid": n, **states[o][n]} for n in LINE_ITEMS]} for o in ORDERS]}
    sim = Sim(env.dir, scenario=scenario)
    receiver = WebhookReceiver(env.dir, "crash")
    mutator = None
    proc = None
    try:
        hook = f"\n[webhook]\nurl = {receiver.url}\n"
        cfg = env.config(sim, [("c1", o) for o in ORDERS], extra=hook,
                         poll={"interval": "200ms", "settled-interval": "200ms", "failure-threshold": "1000"})
        mutator = Mutator(sim, rng, states)
        outs = []
        early_exits = []
        for i in range(ITERATIONS):
            out = os.path.join(env.dir, f"run-{i}.out")
            outs.append(out)
            with open(out, "w") as so, open(os.path.join(env.dir, f"run-{i}.err"), "w") as se:
                proc = subprocess.Popen([provwatch_binary(), "-c", cfg, "--print-events", "run"], stdout=so,
                                        stderr=se, stdin=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.2, 1.5))  # the random moment of the crash is the point here
            if proc.poll() is not None:
                early_exits.append((i, proc.returncode))
            proc.kill()
            proc.wait(10)
            ok = integrity(env.state)
            check(ok == "ok", f"iteration {i}: integrity_check says {ok!r}")
        check(not early_exits, f"runs that ended by themselves: {early_exits}")
        mutator.stop()
        final = {(o, n): state_key(states[o][n]) for o in ORDERS for n in LINE_ITEMS}

        # the last run goes on until the store matches the simulator and every event is delivered
        d = Daemon(cfg)
        try:
            wait_until(lambda: stored_states(env.state) == final, 30, "the store to catch up with the simulator",
                       interval=0.1)
            wait_until(lambda: store_query(env.state, "SELECT count(*) FROM queue")[0][0] == 0, 30,
                       "the webhook queue to drain", interval=0.1)
            check(d.stop() == 0, "the last run stops cleanly")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        check(integrity(env.state) == "ok", "integrity at the end")

        changes = sim.control("GET", "changes?limit=1000000")
        check(changes["dropped"] == 0, "the simulator kept every change")
        truth = {(o, n): [state_key(initial[o][n])] for o in ORDERS for n in LINE_ITEMS}
        for c in changes["changes"]:
            if c["kind"] == "changed":
                truth[(c["order"], c["number"])].append((c["status"], tuple(sorted(c["quantities"].items()))))
        check(all(truth[k][-1] == final[k] for k in truth), "the simulator's record ends at its final state")

        delivered = {}
        order_seen = []
        for a in receiver.attempts():
            check(not a["problems"], f"delivery problems: {a['problems']}")
            ev = a["body"]
            if ev["id"] in delivered:
                check(delivered[ev["id"]] == ev, f"event {ev['id']} was delivered with different bodies")
                continue
            delivered[ev["id"]] = ev
            order_seen.append(ev)
        problems = []
        chains = {k: [] for k in truth}
        for ev in order_seen:
            if ev["type"] in ("provwatch.lineitem.added", "provwatch.lineitem.changed", "provwatch.lineitem.removed"):
                chains[(ev["data"]["order_id"], ev["data"]["line_item_number"])].append(ev)
        for key, chain in chains.items():
            if not chain:
                problems.append(f"{key}: no event at all")
                continue
            if chain[0]["type"] != "provwatch.lineitem.added" or chain[0]["data"]["old"] is not None:
                problems.append(f"{key}: the first event is {chain[0]['type']}")
            states_seen = [state_key(chain[0]["data"]["new"])]
            for prev, ev in zip(chain, chain[1:]):
                if ev["type"] != "provwatch.lineitem.changed":
                    problems.append(f"{key}: {ev['type']} after the first event")
                    continue
                if ev["data"]["old"] != prev["data"]["new"]:
                    problems.append(f"{key}: event {ev['id']} starts from {ev['data']['old']}, but the previous "
                                    f"event {prev['id']} ended at {prev['data']['new']} (lost or re-announced)")
                states_seen.append(state_key(ev["data"]["new"]))
            # the reported states are the simulator's, in its order (a subsequence), ending at the last
            it = iter(truth[key])
            if not all(any(s == t for t in it) for s in states_seen):
                problems.append(f"{key}: reported states {states_seen} are not a subsequence of the simulator's "
                                f"{truth[key]} (an invented or reordered change)")
            if states_seen[-1] != final[key]:
                problems.append(f"{key}: last reported {states_seen[-1]}, the simulator ended at {final[key]} "
                                "(a change was lost)")
        printed = [ev for out in outs for ev in printed_events(out)]
        for ev in printed:
            if ev["id"] not in delivered:
                problems.append(f"printed event {ev['id']} ({ev['type']}) never reached the webhook")
            elif delivered[ev["id"]] != ev:
                problems.append(f"printed event {ev['id']} differs from the delivered one")
        check(not problems, f"{len(problems)} problems (seed {seed}):\n" + "\n".join(problems[:30]))
        n_changes = sum(len(v) - 1 for v in truth.values())
        n_events = sum(len(v) for v in chains.values())
        check(n_changes > 100 and n_events > len(truth) * 3,
              f"too little happened: {n_changes} changes, {n_events} events")
        print(f"  {ITERATIONS} kills, {n_changes} simulator changes, {n_events} line-item events delivered, "
              f"{len(printed)} printed", flush=True)
    finally:
        if mutator:
            mutator.stopping.set()
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        receiver.stop()
        sim.stop()
        env.cleanup()


# ---- the state directory --------------------------------------------------------------------

SCENARIO = {"orders": [
    {"customer": "c1", "order": o, "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 3}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 1, "prefulfillmentpending": 2}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 2, "prefulfillmentpending": 1}},
            {"status": "fulfilled", "quantities": {"fulfilled": 3}}]}]}
    for o in ("o1", "o2")]}


def sh(*cmd: str) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: {p.stderr}")


def snapshot_column(state_dir: str) -> dict:
    return dict(store_query(state_dir, "SELECT order_id, snapshot FROM orders"))


def added_o2(e):
    return e["type"] == "provwatch.lineitem.added" and e["data"]["order_id"] == "o2"


def changed_o1(e):
    return e["type"] == "provwatch.lineitem.changed" and e["data"]["order_id"] == "o1"


def test_state_directory_full():
    env = Env("crash-full")
    sim = Sim(env.dir, scenario=SCENARIO)
    os.mkdir(env.state)
    sh("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", env.state)
    fill = os.path.join(env.state, "fill")
    try:
        cfg = env.config(sim, [("c1", "o1"), ("c1", "o2")], poll={"interval": "1s", "failure-threshold": "100"})
        d = Daemon(cfg)
        try:
            d.wait_event(added_o2, 20, "both orders added")
            before = snapshot_column(env.state)
            with open(fill, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError as e:
                    check(e.errno == errno.ENOSPC, f"filling the disk: {e}")
            n0 = len(d.all_events)
            idx = sim.control("GET", "requests?since=0")["next"]
            sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
            message = (f"Cannot save poll results in {env.state}/provwatch.db: database or disk is full. "
                       "Polls count as failed until this is fixed; nothing is lost.")
            wait_until(lambda: message in d.log(), 20, "the failed commit logged")
            # polling goes on (at backoff: 10 s, 20 s, 40 s ± 20 %, and o1 may have failed once already
            # before idx): o1 is fetched twice more while the disk is still full
            wait_until(lambda: len([r for r in sim.requests(idx) if r["order"] == "o1" and r["status"] == 200]) >= 2,
                       75, "o1 polled again while the disk is full")
            check(d.proc.poll() is None, "the daemon is still running")
            check(len(d.all_events) == n0, f"events while nothing could be saved: {d.all_events[n0:]}")
            check(snapshot_column(env.state) == before, "the old snapshots stay")
            check(d.log().count("Cannot save poll results") == 1, "the error is logged once, not per poll")
            os.unlink(fill)
            # the next try comes at the backoff after the failures so far: up to three (one before idx),
            # so up to 40 s + 20 %
            ev = d.wait_event(changed_o1, 60, "the change once space returns", n0)
            check(ev["data"]["old"]["quantities"] == {"prefulfillmentpending": 3}, str(ev["data"]))
            check("Saving poll results works again." in d.log(), d.log_tail())
            mark = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: any(r["order"] == "o1" and r["status"] == 200 for r in sim.requests(mark)), 20,
                       "o1 polled once more")
            check(d.stop() == 0, "clean exit")
            check([e["type"] for e in d.all_events[n0:]] == ["provwatch.lineitem.changed"],
                  f"events after recovery: {[e['type'] for e in d.all_events[n0:]]}")
            check(integrity(env.state) == "ok", "integrity")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        sim.stop()
        subprocess.run(["umount", env.state], capture_output=True, timeout=30)
        env.cleanup()


def test_state_directory_read_only():
    env = Env("crash-ro")
    sim = Sim(env.dir, scenario=SCENARIO)
    os.mkdir(env.state)
    mounted = False
    try:
        cfg = env.config(sim, [("c1", "o1"), ("c1", "o2")], poll={"interval": "1s"})
        d = Daemon(cfg)
        try:
            d.wait_event(added_o2, 20, "both orders added")
            sh("mount", "--bind", env.state, env.state)
            mounted = True
            sh("mount", "-o", "remount,bind,ro", env.state)
            check(not os.access(env.state, os.W_OK) or _cannot_create(env.state), "the directory is read-only")
            # the files provwatch holds open were opened before the mount: they stay writable, so the
            # change is saved and reported as usual
            n0 = len(d.all_events)
            sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
            d.wait_event(changed_o1, 20, "o1 changed with the directory read-only", n0)
            wait_until(lambda: '"fulfilled":1' in (snapshot_column(env.state).get("o1") or ""), 10,
                       "the new snapshot saved")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        # a start while it is read-only fails at once, clearly, with nothing on stdout
        sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
        p = subprocess.run([provwatch_binary(), "-c", cfg, "--print-events", "run"], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        check(p.returncode == 1, f"start on a read-only state directory: exit {p.returncode}")
        check(f"Cannot open the state store in '{env.state}': Read-only file system" in p.stderr, p.stderr)
        check(p.stdout == "", f"stdout: {p.stdout!r}")
        sh("umount", env.state)
        mounted = False
        # writable again: the change that waited is reported, once
        d = Daemon(cfg)
        try:
            ev = d.wait_event(changed_o1, 20, "the change after the directory is writable again")
            check(ev["data"]["old"]["quantities"] == {"fulfilled": 1, "prefulfillmentpending": 2}, str(ev["data"]))
            mark = sim.control("GET", "requests?since=0")["next"]
            wait_until(lambda: any(r["order"] == "o1" and r["status"] == 200 for r in sim.requests(mark)), 20,
                       "o1 polled once more")
            check(d.stop() == 0, "clean exit")
            check([e["type"] for e in d.all_events] == ["provwatch.lineitem.changed"],
                  f"events: {[e['type'] for e in d.all_events]}")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        if mounted:
            subprocess.run(["umount", env.state], capture_output=True, timeout=30)
        sim.stop()
        env.cleanup()


def _cannot_create(directory: str) -> bool:
    try:
        with open(os.path.join(directory, "probe"), "w"):
            pass
    except OSError as e:
        return e.errno == errno.EROFS
    os.unlink(os.path.join(directory, "probe"))
    return False


def in_namespace() -> bool:
    """Re-executes this script in a private mount namespace when root; True when inside one."""
    if os.environ.get(NS_ENV) == "1":
        return True
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, os.path.abspath(__file__)],
                       env=dict(os.environ, **{NS_ENV: "1"}), timeout=900)
    sys.exit(r.returncode)


if __name__ == "__main__":
    tests = [test_kill9_at_random_moments]
    if in_namespace():
        tests += [test_state_directory_full, test_state_directory_read_only]
    else:
        print("SKIP: test_state_directory_full, test_state_directory_read_only: they need root (mounts in a "
              "private mount namespace via unshare -m)", flush=True)
    main(tests)
