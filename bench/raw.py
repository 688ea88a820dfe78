#!/usr/bin/env python3
"""Raw polling speed: how long provwatch takes to poll N orders with no rate limit, against curl
and a Node.js fetch poller fetching the same URLs at the same concurrency, all from a private
nginx on loopback serving pre-generated provisioningstatus answers (one file per order, sizes
and shapes varying by order).

    (a) provwatch once      concurrency 64, max-requests-per-minute = 0; it also parses, diffs,
                            commits to SQLite and prints events (stdout to /dev/null).
                            "first run": empty state, every line item is an added event;
                            "steady": the same answers again, nothing changes (a second `once`).
    (b) plain curl — the baseline: exactly `curl --parallel --parallel-max 64 -H 'Authorization:
        Bearer x'`, the URLs from a config file of `url = "…"` lines (20,000 do not fit on a
        command line), bodies and progress meter to /dev/null; nothing else
    (c) curl sending provwatch's request: its six headers, compressed answers accepted, --fail,
        --silent (a second row, for comparison)
    (d) node bench/node-poller.mjs, global fetch, 64 workers, JSON.parse of every body

Everything is warmed up once (page cache, nginx, the binaries), then each is run --reps times,
interleaved, in an order that rotates from one round to the next (so a neighbour's load hits all
alike); medians are reported as ratios against plain curl, with the other baselines as extra
columns:
  - wall time (exec to exit)       targets: steady ≤ 1.10 × plain curl, first run ≤ 1.30 ×
  - CPU seconds (user+sys, wait4)  target: steady ≤ 1.10 × plain curl
  - peak RSS (GNU time's %M)       target: steady and first run ≤ 1.25 × plain curl

    bench/raw.py [--orders 20000] [--concurrency 64] [--reps 5] [--keep] [--compare BINARY]...
    bench/raw.py --syscalls        # system calls per request (perf trace -s), one run of each, and
                                   # how often the server slept (untraced runs)
    bench/raw.py --serve           # prepares everything, prints the commands, serves until Ctrl-C
"""

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import Measured, median  # noqa: E402


PLAIN_TOKEN = "x"
SYSCALLS = ("sendto", "recvfrom", "poll", "epoll_wait", "epoll_ctl", "ioctl", "rt_sigaction", "pread64", "pwrite64",
            "fdatasync", "newfstatat", "write", "read", "getpid")


def perf_trace_summary(cmd: list[str], out: str) -> dict[str, tuple[int, int]]:
    """(calls, errors) by system call of cmd and its children, from `perf trace -s`."""
    perf = benchlib.need("perf", "apt-get install linux-perf")
    subprocess.run([perf, "trace", "-s", "-o", out, "--"] + cmd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    calls: dict[str, tuple[int, int]] = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
                c, e = calls.get(parts[0], (0, 0))
                calls[parts[0]] = (c + int(parts[1]), e + int(parts[2]))
    return calls


def server_sleeps(nginx_pid: int) -> int:
    """Voluntary context switches of nginx's workers so far: how often the server went to sleep
    (and had to be woken by the next request)."""
    total = 0
    with open(f"/proc/{nginx_pid}/task/{nginx_pid}/children", encoding="utf-8") as f:
        workers = [int(w) for w in f.read().split()]
    for w in workers:
        with open(f"/proc/{w}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--syscalls", action="store_true", help="system calls per request instead of timings")
    ap.add_argument("--serve", action="store_true", help="prepare, print the commands, serve until Ctrl-C")
    ap.add_argument("--compare", action="append", default=[], metavar="BINARY",
                    help="another provwatch measured in the same rounds (first run and steady), e.g. an older build")
    a = ap.parse_args()

    provwatch = benchlib.provwatch_binary()
    curl = benchlib.need("curl", "apt-get install curl")
    node = benchlib.need("node", "run tools/setup --bench (Debian package nodejs)")

    wd = benchlib.workdir("raw")
    nginx = None
    try:
        orders = benchlib.order_ids(a.orders)
        www = os.path.join(wd, "www")
        size = benchlib.write_answers(www, orders)
        nginx = benchlib.Nginx(wd, www)
        urls = [f"{nginx.url}/v1/customers/{c}/orders/{o}/provisioningstatus" for c, o in orders]
        with open(os.path.join(wd, "urls"), "w", encoding="utf-8") as f:
            f.write("\n".join(urls) + "\n")
        with open(os.path.join(wd, "urls.conf"), "w", encoding="utf-8") as f:
            f.writelines(f'url = "{u}"\n' for u in urls)
        # the request provwatch sends: its headers, gzip/deflate/br accepted
        same = [f"Authorization: Bearer {benchlib.TOKEN}", "Accept: application/json",
                "MS-CorrelationId: 3f2b7c1e-8d4a-4e6b-9c1d-2a5e7f9b0c3d",
                "MS-RequestId: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "X-Locale: en-US", "User-Agent: provwatch/0.2.0"]
        with open(os.path.join(wd, "curl-full.conf"), "w", encoding="utf-8") as f:
            f.write(f"silent\nfail\nparallel\nparallel-max = {a.concurrency}\ncompressed\n")
            f.writelines(f'header = "{h}"\n' for h in same)
        odir = os.path.join(wd, "orders.d")
        os.mkdir(odir)
        benchlib.orders_list(os.path.join(odir, "bench.list"), orders)
        state = os.path.join(wd, "state")
        cfg = benchlib.provwatch_config(os.path.join(wd, "provwatch.conf"), nginx.url, state, odir,
                                        {"concurrency": str(a.concurrency), "max-requests-per-minute": "0"},
                                        token_endpoint=nginx.url + "/t/oauth2/token")
        log = open(os.path.join(wd, "provwatch.log"), "w", encoding="utf-8")

        plain_cmd = [curl, "--parallel", "--parallel-max", str(a.concurrency), "-H",
                     f"Authorization: Bearer {PLAIN_TOKEN}", "-K", os.path.join(wd, "urls.conf")]
        full_cmd = [curl, "-s", "--no-progress-meter", "-K", os.path.join(wd, "curl-full.conf"), "-K",
                    os.path.join(wd, "urls.conf")]
        node_cmd = [node, os.path.join(benchlib.HERE, "node-poller.mjs"), os.path.join(wd, "urls"),
                    str(a.concurrency), benchlib.TOKEN]
        pw_cmd = [provwatch, "-c", cfg, "once"]

        if a.serve:
            print(f"work directory {wd}; nginx at {nginx.url}")
            print(f"plain curl:       {' '.join(plain_cmd[:5])} '{plain_cmd[5]}' {' '.join(plain_cmd[6:])} >/dev/null 2>&1")
            print(f"provwatch steady: {' '.join(pw_cmd)} >/dev/null   (after one run)")
            print(f"first run:        rm -rf {state} && {' '.join(pw_cmd)} >/dev/null")
            print("Ctrl-C (or SIGTERM) stops nginx and removes the work directory (with --keep: keeps it).",
                  flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill PID cleans up as well
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
            return

        def run_plain() -> Measured:
            return benchlib.measure("plain curl", plain_cmd, stderr=subprocess.DEVNULL)

        def run_full() -> Measured:
            return benchlib.measure("curl, provwatch's request", full_cmd)

        def run_node() -> Measured:
            return benchlib.measure("node", node_cmd, stderr=subprocess.DEVNULL)

        def run_provwatch(name: str) -> Measured:
            return benchlib.measure(name, pw_cmd, stderr=log)

        others = []  # (label, binary, config, state)
        for i, other in enumerate(a.compare):
            ostate = os.path.join(wd, f"state-compare-{i}")
            ocfg = benchlib.provwatch_config(os.path.join(wd, f"provwatch-compare-{i}.conf"), nginx.url, ostate, odir,
                                             {"concurrency": str(a.concurrency), "max-requests-per-minute": "0"},
                                             token_endpoint=nginx.url + "/t/oauth2/token")
            others.append((os.path.basename(other), other, ocfg, ostate))

        if a.syscalls:
            n = a.orders
            shutil.rmtree(state, ignore_errors=True)
            rows = {"provwatch, first run": perf_trace_summary(pw_cmd, os.path.join(wd, "trace-first"))}
            rows["provwatch, steady"] = perf_trace_summary(pw_cmd, os.path.join(wd, "trace-steady"))
            rows["plain curl"] = perf_trace_summary(plain_cmd, os.path.join(wd, "trace-curl"))
            # the server's sleeps, in runs of their own: tracing would slow the client and change them
            sleeps = {}
            shutil.rmtree(state, ignore_errors=True)
            for label, cmd in (("provwatch, first run", pw_cmd), ("provwatch, steady", pw_cmd),
                               ("plain curl", plain_cmd)):
                before = server_sleeps(nginx.proc.pid)
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                sleeps[label] = server_sleeps(nginx.proc.pid) - before
            print(f"system calls per request ({n} requests; errors in brackets), perf trace -s")
            print(f"{'':14}" + "".join(f"{k:>22}" for k in rows))
            names = list(SYSCALLS) + sorted({s for r in rows.values() for s in r} - set(SYSCALLS))
            for sc in names + ["total"]:
                cells = []
                for r in rows.values():
                    c, e = (sum(x[0] for x in r.values()), sum(x[1] for x in r.values())) if sc == "total" \
                        else r.get(sc, (0, 0))
                    cells.append(f"{c / n:.3f}" + (f" ({e / n:.3f})" if e else ""))
                if sc == "total" or max(r.get(sc, (0, 0))[0] for r in rows.values()) >= n / 100:
                    print(f"{sc:14}" + "".join(f"{x:>22}" for x in cells))
            print(f"{'server sleeps':14}" + "".join(f"{sleeps[k] / n:>22.3f}" for k in rows)
                  + "   (nginx's voluntary context switches per request, untraced runs)")
            return

        # warm-up, not measured: page cache, nginx's open-file cache, the binaries
        shutil.rmtree(state, ignore_errors=True)
        for m in (run_plain(), run_full(), run_node(), run_provwatch("provwatch warm-up")):
            if m.status != 0:
                sys.exit(f"{m.name} failed (exit {m.status}) during the warm-up")

        keys = ["first", "second", "plain", "full", "node"]
        for label, _, _, _ in others:
            keys += [f"{label} first", f"{label} second"]
        results: dict[str, list[Measured]] = {k: [] for k in keys}

        def other_pair(label: str, binary: str, ocfg: str, ostate: str):
            def run() -> None:
                shutil.rmtree(ostate, ignore_errors=True)
                for k in ("first", "second"):
                    results[f"{label} {k}"].append(benchlib.measure(f"{label} {k}", [binary, "-c", ocfg, "once"],
                                                                    stderr=log))
            return run

        for rep in range(a.reps):
            shutil.rmtree(state, ignore_errors=True)

            def pair() -> None:
                results["first"].append(run_provwatch("provwatch first run"))
                results["second"].append(run_provwatch("provwatch steady"))

            steps = [pair, lambda: results["plain"].append(run_plain()),
                     lambda: results["full"].append(run_full()), lambda: results["node"].append(run_node())]
            steps += [other_pair(*o) for o in others]
            k = rep % len(steps)
            for step in steps[k:] + steps[:k]:
                step()
            for v in results.values():
                if v[-1].status != 0:
                    a.keep = True
                    sys.exit(f"{v[-1].name} failed (exit {v[-1].status}); see {wd} (kept)")
            if rep == 0:
                db = sqlite3.connect(os.path.join(state, "provwatch.db"))
                n = db.execute("SELECT count(*) FROM orders WHERE snapshot IS NOT NULL AND last_error IS NULL").fetchone()[0]
                db.close()
                if n != a.orders:
                    sys.exit(f"provwatch saved {n} good snapshots, expected {a.orders}")
            print(f"round {rep + 1}: " + "  ".join(f"{k} {v[-1].wall:.2f}s" for k, v in results.items()),
                  flush=True)
    finally:
        if nginx:
            nginx.stop()
        if not a.keep:
            shutil.rmtree(wd, ignore_errors=True)
        else:
            print(f"work directory kept: {wd}")

    med = {k: (median([m.wall for m in v]), median([m.cpu for m in v]), median([m.maxrss_kib for m in v]))
           for k, v in results.items()}
    load = os.getloadavg()[0]
    print()
    print(f"{a.orders} orders, {size / a.orders:.0f} bytes per answer on average, concurrency {a.concurrency}, "
          f"medians of {a.reps} interleaved rounds, nginx with 1 worker on loopback, load average {load:.2f}")
    cols = (("plain", "plain"), ("full", "full"), ("node", "node"))
    head = f"{'':26} {'wall s':>7}" + "".join(f" {'÷' + c:>6}" for _, c in cols)
    head += f" {'CPU s':>6}" + "".join(f" {'÷' + c:>6}" for _, c in cols)
    head += f" {'RSS MiB':>8}" + "".join(f" {'÷' + c:>6}" for _, c in cols)
    print(head)
    rows = [("second", "provwatch, steady"), ("first", "provwatch, first run"),
            ("plain", "plain curl (baseline)"), ("full", "curl, provwatch's request"), ("node", "Node.js fetch")]
    for label, _, _, _ in others:
        rows += [(f"{label} second", f"{label[:17]}, steady"), (f"{label} first", f"{label[:17]}, first")]
    for k, label in rows:
        line = f"{label:26}"
        for i, width in ((0, 7), (1, 6), (2, 8)):
            v = med[k][i] / 1024 if i == 2 else med[k][i]
            line += f" {v:{width}.{1 if i == 2 else 2}f}" + "".join(f" {med[k][i] / med[b][i]:6.2f}" for b, _ in cols)
        print(line)
    pw, pc, pr = med["plain"]
    sw, sc, sr = med["second"]
    fw, fc, fr = med["first"]
    checks = [("steady wall ÷ plain curl", sw / pw, 1.10), ("steady CPU ÷ plain curl", sc / pc, 1.10),
              ("first run wall ÷ plain curl", fw / pw, 1.30), ("steady peak RSS ÷ plain curl", sr / pr, 1.25),
              ("first run peak RSS ÷ plain curl", fr / pr, 1.25)]
    print()
    for name, v, target in checks:
        print(f"{name:32} {v:5.2f}  (target ≤ {target:.2f}) {'ok' if v <= target else 'NOT MET'}")
    ok = all(v <= t for _, v, t in checks)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
