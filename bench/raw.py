#!/usr/bin/env python3
"""Raw polling speed: how long provwatch takes to poll N orders with no rate limit, against curl
and a Node.js fetch poller fetching the same URLs at the same concurrency, all from a private
nginx on loopback serving pre-generated provisioningstatus answers (one file per order, sizes
and shapes varying by order).

    (a) provwatch once      concurrency 64, max-requests-per-minute = 0; it also parses, diffs,
                            commits to SQLite and prints events (stdout to /dev/null).
                            "first run": empty state, every line item is an added event;
                            "second run": the same answers again, nothing changes (steady state).
    (b) curl --parallel --parallel-max 64, bodies to /dev/null (curl's cheapest output), sending the
        request provwatch sends (its headers, compressed answers accepted) — the baseline; and once
        more with a minimal request (Authorization and Accept only), shown for comparison
    (c) node bench/node-poller.mjs, global fetch, 64 workers, JSON.parse of every body

Each is run --reps times, interleaved (so a neighbour's load hits all alike); medians are
reported, as ratios against curl and Node measured in this same run:
  - wall time (exec to exit)                         target: provwatch ≤ 1.2 × curl, ≤ 0.5 × Node
  - CPU seconds (user+sys, wait4) per 10,000 polls
  - peak RSS (ru_maxrss)
The targets are judged on provwatch's steady state (second run); the first run is shown too.

    bench/raw.py [--orders 20000] [--concurrency 64] [--reps 5] [--keep]
"""

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import Measured, median  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
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
        # the request provwatch sends (its headers, gzip/deflate/br accepted); and a minimal one
        same = [f"Authorization: Bearer {benchlib.TOKEN}", "Accept: application/json",
                "MS-CorrelationId: 3f2b7c1e-8d4a-4e6b-9c1d-2a5e7f9b0c3d",
                "MS-RequestId: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "X-Locale: en-US", "User-Agent: provwatch/0.2.0"]
        for name, headers, extra in (("curl.conf", same, "compressed\n"),
                                     ("curl-minimal.conf", same[:2], "")):
            with open(os.path.join(wd, name), "w", encoding="utf-8") as f:
                f.write(f"silent\nfail\nparallel\nparallel-max = {a.concurrency}\n{extra}")
                f.writelines(f'header = "{h}"\n' for h in headers)
                f.writelines(f'url = "{u}"\n' for u in urls)
        odir = os.path.join(wd, "orders.d")
        os.mkdir(odir)
        benchlib.orders_list(os.path.join(odir, "bench.list"), orders)
        state = os.path.join(wd, "state")
        cfg = benchlib.provwatch_config(os.path.join(wd, "provwatch.conf"), nginx.url, state, odir,
                                        {"concurrency": str(a.concurrency), "max-requests-per-minute": "0"},
                                        token_endpoint=nginx.url + "/t/oauth2/token")
        log = open(os.path.join(wd, "provwatch.log"), "w", encoding="utf-8")

        def run_curl(conf: str = "curl.conf") -> Measured:
            return benchlib.measure("curl", [curl, "-s", "--no-progress-meter", "-K", os.path.join(wd, conf)])

        def run_node() -> Measured:
            return benchlib.measure("node", [node, os.path.join(benchlib.HERE, "node-poller.mjs"),
                                             os.path.join(wd, "urls"), str(a.concurrency), benchlib.TOKEN],
                                    stderr=subprocess.DEVNULL)

        def run_provwatch(name: str) -> Measured:
            return benchlib.measure(name, [provwatch, "-c", cfg, "once"], stderr=log)

        # warm-up, not measured: page cache, nginx's open-file cache, the binaries
        for m in (run_curl(), run_node()):
            if m.status != 0:
                sys.exit(f"{m.name} failed (exit {m.status}) during the warm-up")

        results: dict[str, list[Measured]] = {k: [] for k in ("first", "second", "curl", "curl_min", "node")}
        for rep in range(a.reps):
            shutil.rmtree(state, ignore_errors=True)

            def pair() -> None:
                results["first"].append(run_provwatch("provwatch first run"))
                results["second"].append(run_provwatch("provwatch second run"))

            def curls() -> None:
                results["curl"].append(run_curl())
                results["curl_min"].append(run_curl("curl-minimal.conf"))

            steps = [pair, curls, lambda: results["node"].append(run_node())]
            for step in steps[rep % 3:] + steps[:rep % 3]:
                step()
            for k, v in results.items():
                if v[-1].status != 0:
                    sys.exit(f"{v[-1].name} failed (exit {v[-1].status}); see {wd} (kept)")
            if rep == 0:
                db = sqlite3.connect(os.path.join(state, "provwatch.db"))
                n = db.execute("SELECT count(*) FROM orders WHERE snapshot IS NOT NULL AND last_error IS NULL").fetchone()[0]
                db.close()
                if n != a.orders:
                    sys.exit(f"provwatch saved {n} good snapshots, expected {a.orders}")
            print(f"rep {rep + 1}: " + "  ".join(f"{k} {v[-1].wall:.2f}s" for k, v in results.items()),
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
    per10k = 10000 / a.orders
    cw, cc, cr = med["curl"]
    nw, nc, nr = med["node"]
    print()
    print(f"{a.orders} orders, {size / a.orders:.0f} bytes per answer on average, concurrency {a.concurrency}, "
          f"medians of {a.reps} runs, nginx with 1 worker on loopback")
    print(f"{'':22} {'wall s':>7} {'÷curl':>6} {'÷node':>6} {'CPU s/10k':>9} {'÷curl':>6} {'÷node':>6} "
          f"{'RSS MiB':>8} {'÷curl':>6} {'÷node':>6}")
    for k, label in (("second", "provwatch steady"), ("first", "provwatch first run"), ("curl", "curl --parallel"),
                     ("curl_min", "curl, minimal request"), ("node", "node fetch")):
        w, c, r = med[k]
        print(f"{label:22} {w:7.2f} {w / cw:6.2f} {w / nw:6.2f} {c * per10k:9.3f} {c / cc:6.2f} {c / nc:6.2f} "
              f"{r / 1024:8.1f} {r / cr:6.2f} {r / nr:6.2f}")
    sw = med["second"][0]
    fw = med["first"][0]
    ok = sw <= 1.2 * cw and sw <= 0.5 * nw
    print()
    print(f"steady state: wall ÷ curl = {sw / cw:.2f} (target ≤ 1.20), wall ÷ node = {sw / nw:.2f} (target ≤ 0.50)")
    print(f"first run:    wall ÷ curl = {fw / cw:.2f}, wall ÷ node = {fw / nw:.2f}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
