#!/usr/bin/env python3
"""Scale: one daemon watching --orders orders (default 100,000, from an orders-dir *.list file),
against a baseline of --baseline orders (default 10,000) measured in the same run. A private nginx
on loopback serves every order's answer; the state store is filled by a real `provwatch once`.

For each size:
  - once, first run      fills the store (every line item is an added event)
  - once, steady state   CPU and wall time per poll with the store full, nothing changing
  - start-up             exec → READY=1 on a NOTIFY_SOCKET, with the store holding every snapshot
                         (target < 2 s at 100,000)
  - peak RSS             VmHWM of the daemon after start-up, reloads and some polling
                         (target < 100 MB at 100,000)
  - reload               SIGHUP with a configuration that adds or removes one order: RELOADING=1 →
                         READY=1 as received (target < 0.5 s at 100,000)
And, with bench/commit-bench (the store alone, as the manager's flush uses it): time and CPU to
commit one poll result in batches of 64 (a busy loop iteration) and of 1 (the rate-limited daemon),
with 1,000, 10,000 and 100,000 orders in the store — the cost must not grow with the orders that
are not being committed.

Ratios are against the baseline size (and 10,000 rows for the commit bench).

    bench/scale.py [--orders 100000] [--baseline 10000] [--reps 3] [--keep]
"""

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median  # noqa: E402

START_TARGET_S = 2.0
RSS_TARGET_MB = 100.0
RELOAD_TARGET_S = 0.5


class Setup:
    def __init__(self, wd: str, nginx: benchlib.Nginx, orders: list, extra: tuple, reps: int):
        self.n = len(orders)
        self.dir = os.path.join(wd, f"n{self.n}")
        os.makedirs(os.path.join(self.dir, "orders.d"))
        benchlib.orders_list(os.path.join(self.dir, "orders.d", "bench.list"), orders)
        self.state = os.path.join(self.dir, "state")
        self.extra = extra
        self.reps = reps
        token = nginx.url + "/t/oauth2/token"
        odir = os.path.join(self.dir, "orders.d")
        self.once_cfg = benchlib.provwatch_config(
            os.path.join(self.dir, "once.conf"), nginx.url, self.state, odir,
            {"concurrency": "64", "max-requests-per-minute": "0"}, token_endpoint=token)
        run_poll = {"interval": "2m", "settled-interval": "6h", "max-requests-per-minute": "300",
                    "concurrency": "8"}
        self.run_cfg = benchlib.provwatch_config(os.path.join(self.dir, "run.conf"), nginx.url, self.state, odir,
                                                 run_poll, token_endpoint=token)
        with open(self.run_cfg, encoding="utf-8") as f:
            self.run_text = f.read()
        self.log = open(os.path.join(self.dir, "provwatch.log"), "w", encoding="utf-8")
        self.results: dict = {}

    def once(self, name: str) -> benchlib.Measured:
        m = benchlib.measure(name, [benchlib.provwatch_binary(), "-c", self.once_cfg, "once"], stderr=self.log,
                             timeout=900)
        if m.status != 0:
            sys.exit(f"provwatch once ({self.n} orders) failed with {m.status}; see {self.dir}/provwatch.log")
        return m

    def fill(self) -> None:
        m = self.once("first")
        db = sqlite3.connect(os.path.join(self.state, "provwatch.db"))
        good = db.execute("SELECT count(*) FROM orders WHERE snapshot IS NOT NULL AND last_error IS NULL").fetchone()[0]
        db.close()
        if good != self.n:
            sys.exit(f"the store holds {good} good snapshots, expected {self.n}")
        self.results["first"] = m

    def steady(self) -> None:
        self.results.setdefault("steady", []).append(self.once("steady"))

    def write_run_config(self, with_extra: bool) -> None:
        text = self.run_text.replace("[orders]\n", f"[orders]\norder = {self.extra[0]} {self.extra[1]}\n"
                                     if with_extra else "[orders]\n")
        tmp = self.run_cfg + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.run_cfg)

    def daemon(self) -> None:
        """One start: exec → READY=1, then reloads that add/remove one order, then a little polling."""
        self.write_run_config(False)
        listener = benchlib.NotifyListener(self.dir)
        env = dict(os.environ, NOTIFY_SOCKET=listener.path)
        env.pop("WATCHDOG_USEC", None)
        t0 = time.monotonic()
        p = subprocess.Popen([benchlib.provwatch_binary(), "-c", self.run_cfg, "run"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        try:
            i, t_ready = listener.wait("READY", "1", 0, 60)
            self.results.setdefault("start", []).append(t_ready - t0)
            self.results.setdefault("rss_ready", []).append(benchlib.proc_status_kib(p.pid, "VmHWM"))
            time.sleep(1)
            for k in range(3):
                self.write_run_config(k % 2 == 0)
                start = listener.count()
                t_hup = time.monotonic()
                p.send_signal(signal.SIGHUP)
                j, t_reloading = listener.wait("RELOADING", "1", start, 30)
                _, t_done = listener.wait("READY", "1", j, 30)
                self.results.setdefault("reload", []).append(t_done - t_reloading)
                self.results.setdefault("reload_hup", []).append(t_done - t_hup)
                time.sleep(0.5)
            time.sleep(5)  # polling at the configured budget, status updates
            if p.poll() is not None:
                sys.exit(f"the daemon ({self.n} orders) exited with {p.returncode}; see {self.dir}/provwatch.log")
            self.results.setdefault("rss_peak", []).append(benchlib.proc_status_kib(p.pid, "VmHWM"))
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            listener.close()
            os.unlink(listener.path)
        if p.returncode != 0:
            sys.exit(f"the daemon ({self.n} orders) stopped with {p.returncode}")


def commit_bench(wd: str, rows: int, batch: int, rounds: int, reps: int) -> dict:
    binary = os.path.join(benchlib.SOURCE_ROOT, "build", "bench", "commit-bench")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} is missing: ninja -C build")
    out = []
    for _ in range(reps):
        d = os.path.join(wd, f"commit-{rows}-{batch}")
        shutil.rmtree(d, ignore_errors=True)
        p = subprocess.run([binary, d, str(rows), str(batch), str(rounds)], capture_output=True, text=True,
                           timeout=600)
        if p.returncode != 0:
            sys.exit(f"commit-bench failed: {p.stderr}")
        out.append(json.loads(p.stdout))
        shutil.rmtree(d, ignore_errors=True)
    return {k: median([o[k] for o in out]) for k in ("wall_usec_per_result", "cpu_usec_per_result")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=100000)
    ap.add_argument("--baseline", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    benchlib.provwatch_binary()

    wd = benchlib.workdir("scale")
    nginx = None
    try:
        t = time.monotonic()
        every = benchlib.order_ids(a.orders + 1)
        www = os.path.join(wd, "www")
        benchlib.write_answers(www, every)
        print(f"{a.orders + 1} answers written in {time.monotonic() - t:.0f} s", flush=True)
        nginx = benchlib.Nginx(wd, www)
        extra = every[-1]
        small = Setup(wd, nginx, every[:a.baseline], extra, a.reps)
        big = Setup(wd, nginx, every[:a.orders], extra, a.reps)
        for s in (small, big):
            s.fill()
            print(f"{s.n}: store filled by once in {s.results['first'].wall:.1f} s", flush=True)
        for rep in range(a.reps):
            for s in (small, big):
                s.steady()
                s.daemon()
            print(f"rep {rep + 1}: start-up {small.results['start'][-1]:.2f} s / {big.results['start'][-1]:.2f} s, "
                  f"reload {max(small.results['reload'][-3:]):.3f} s / {max(big.results['reload'][-3:]):.3f} s",
                  flush=True)
        commits = {}
        for rows in (1000, 10000, 100000):
            commits[(rows, 64)] = commit_bench(wd, rows, 64, 300, a.reps)
            commits[(rows, 1)] = commit_bench(wd, rows, 1, 3000, a.reps)
    finally:
        if nginx:
            nginx.stop()
        if a.keep:
            print(f"work directory kept: {wd}")
        else:
            shutil.rmtree(wd, ignore_errors=True)

    def row(label: str, f, unit: str, fmt: str = "{:.3f}", target: str = "") -> None:
        vs, vb = f(small), f(big)
        print(f"{label:34} {fmt.format(vs):>10} {fmt.format(vb):>10} {unit:6} {vb / vs if vs else 0:7.2f}  {target}")

    print()
    print(f"{'':34} {a.baseline:>10} {a.orders:>10} {'':6} {'ratio':>7}")
    row("once first run: wall per poll", lambda s: s.results["first"].wall / s.n * 1e6, "µs", "{:.1f}")
    row("once steady: wall per poll", lambda s: median([m.wall for m in s.results["steady"]]) / s.n * 1e6, "µs",
        "{:.1f}")
    row("once steady: CPU per poll", lambda s: median([m.cpu for m in s.results["steady"]]) / s.n * 1e6, "µs",
        "{:.1f}")
    row("once steady: peak RSS", lambda s: median([m.maxrss_kib for m in s.results["steady"]]) / 1024, "MiB",
        "{:.1f}")
    row("daemon start-up (exec → READY)", lambda s: median(s.results["start"]), "s", "{:.3f}",
        f"target < {START_TARGET_S} s")
    row("daemon reload (RELOADING → READY)", lambda s: median(s.results["reload"]), "s", "{:.3f}",
        f"target < {RELOAD_TARGET_S} s")
    row("daemon reload, worst", lambda s: max(s.results["reload"]), "s", "{:.3f}")
    row("daemon SIGHUP → READY", lambda s: median(s.results["reload_hup"]), "s", "{:.3f}")
    row("daemon peak RSS at READY", lambda s: median(s.results["rss_ready"]) / 1024, "MiB", "{:.1f}")
    row("daemon peak RSS (VmHWM)", lambda s: max(s.results["rss_peak"]) / 1024, "MiB", "{:.1f}",
        f"target < {RSS_TARGET_MB:.0f} MB")
    print()
    print(f"{'commit one poll result (store only)':34} {'1,000':>10} {'10,000':>10} {'100,000':>10}  "
          f"{'100k÷10k':>8} {'100k÷1k':>8}")
    for batch in (64, 1):
        for key, label in (("wall_usec_per_result", "wall"), ("cpu_usec_per_result", "CPU")):
            v = [commits[(r, batch)][key] for r in (1000, 10000, 100000)]
            print(f"{f'  batches of {batch}, {label} µs':34} {v[0]:10.1f} {v[1]:10.1f} {v[2]:10.1f}  "
                  f"{v[2] / v[1]:8.2f} {v[2] / v[0]:8.2f}")

    start = median(big.results["start"])
    rss_mb = max(big.results["rss_peak"]) * 1024 / 1e6
    reload = max(big.results["reload"])
    print()
    print(f"start-up {start:.3f} s (target < {START_TARGET_S}), peak RSS {rss_mb:.1f} MB (target < {RSS_TARGET_MB:.0f}), "
          f"worst reload {reload:.3f} s (target < {RELOAD_TARGET_S})")
    ok = start < START_TARGET_S and rss_mb < RSS_TARGET_MB and reload < RELOAD_TARGET_S
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
