#!/usr/bin/env python3
"""The Prometheus textfile of SPEC §6 written by `provwatch run`: strictly valid text exposition
format on every read (so never seen half written), replaced atomically, and counting what really
happened (orders by state, polls, HTTP answers, events, webhook deliveries, token refreshes)."""

import collections
import math
import os
import re
import time

from harness import Daemon, Env, Failure, Sim, check, closed_port, main, wait_until

SCENARIO = {"orders": [
    {"customer": "c1", "order": "settled", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "status": "fulfilled", "quantities": {"fulfilled": 2}}]},
    {"customer": "c1", "order": "pending", "manual": True, "line_items": [
        {"number": 0, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 3}},
        {"number": 1, "status": "fulfilled", "quantities": {"fulfilled": 1}}]},
    {"customer": "c2", "order": "failing", "manual": True, "line_items": [
        {"number": 0, "status": "fulfilled", "quantities": {"fulfilled": 1}}]},
]}
ORDERS = [("c1", "settled"), ("c1", "pending"), ("c2", "failing"), ("c2", "missing")]

FAMILIES = {
    "provwatch_orders": "gauge",
    "provwatch_polls_total": "counter",
    "provwatch_http_requests_total": "counter",
    "provwatch_poll_duration_seconds": "histogram",
    "provwatch_events_total": "counter",
    "provwatch_webhook_queue_depth": "gauge",
    "provwatch_webhook_deliveries_total": "counter",
    "provwatch_rate_limited_total": "counter",
    "provwatch_token_refreshes_total": "counter",
    "provwatch_discovery_requests_total": "counter",
    "provwatch_discovered_orders_total": "counter",
}
EVENT_TYPES = ["provwatch.lineitem.added", "provwatch.lineitem.changed", "provwatch.lineitem.removed",
               "provwatch.order.completed", "provwatch.order.not_found", "provwatch.order.fetch_failed",
               "provwatch.order.recovered", "provwatch.order.discovered", "provwatch.order.stalled",
               "provwatch.auth.failed", "provwatch.auth.recovered"]

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"[+-]?(?:Inf|NaN|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
SAMPLE = re.compile(rf"^({METRIC_NAME})(?:\{{((?:{LABEL_NAME}={LABEL_VALUE}(?:,{LABEL_NAME}={LABEL_VALUE})*,?)?)\}})?"
                    rf" ({VALUE})(?: (-?\d+))?$")
LABEL = re.compile(rf"({LABEL_NAME})=({LABEL_VALUE})")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v[1:-1])


def parse_value(s: str) -> float:
    return float(s.replace("Inf", "inf").replace("NaN", "nan"))


def parse(text: str) -> dict:
    """A strict reader of the Prometheus text format (0.0.4). Returns {family: {"type", "help",
    "samples": [(name, labels dict, value)]}}; raises Failure on anything malformed."""
    check(text.endswith("\n"), "the file does not end with a newline (cut short?)")
    families: dict = {}
    current = None
    closed = set()  # families whose block ended: their lines must be contiguous
    seen_series = set()

    def family_of(name: str) -> str:
        for base, f in families.items():
            if name == base or (f["type"] in ("histogram", "summary") and name in (base + "_sum", base + "_count")) \
                    or (f["type"] == "histogram" and name == base + "_bucket"):
                return base
        raise Failure(f"sample {name} has no # TYPE line before it")

    def switch(base: str) -> None:
        nonlocal current
        if base != current:
            check(base not in closed, f"the lines of {base} are not contiguous")
            if current:
                closed.add(current)
            current = base

    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({METRIC_NAME}) (.*)$", line)
            if not m:
                check(not re.match(r"^#\s*(HELP|TYPE)\b", line), f"malformed {where}")
                continue  # a plain comment
            kind, name, rest = m.groups()
            f = families.setdefault(name, {"type": None, "help": None, "samples": []})
            switch(name)
            if kind == "HELP":
                check(f["help"] is None, f"second HELP for {name}")
                check(not re.search(r"\\[^\\n]", rest), f"bad escape in HELP, {where}")
                f["help"] = rest
            else:
                check(f["type"] is None, f"second TYPE for {name}")
                check(rest in TYPES, f"unknown type, {where}")
                check(not f["samples"], f"TYPE after samples, {where}")
                f["type"] = rest
            continue
        m = SAMPLE.match(line)
        check(m, f"malformed sample, {where}")
        name, labels_text, value, _ts = m.groups()
        labels = {}
        for lm in LABEL.finditer(labels_text or ""):
            check(lm.group(1) not in labels, f"label {lm.group(1)} twice, {where}")
            labels[lm.group(1)] = unescape(lm.group(2))
        base = family_of(name)
        switch(base)
        key = (name, tuple(sorted(labels.items())))
        check(key not in seen_series, f"duplicate series, {where}")
        seen_series.add(key)
        families[base]["samples"].append((name, labels, parse_value(value)))

    for base, f in families.items():
        check(f["help"] is not None and f["help"].strip(), f"{base} has no HELP")
        check(f["type"] is not None, f"{base} has no TYPE")
        for name, labels, v in f["samples"]:
            check(not math.isnan(v), f"{name} is NaN")
            if f["type"] == "counter" or name.endswith(("_bucket", "_count")):
                check(v >= 0 and v == int(v), f"{name}{labels} = {v}: a count")
        if f["type"] == "counter":
            check(base.endswith("_total"), f"counter {base} does not end in _total")
        if f["type"] == "histogram":
            check_histogram(base, f["samples"])
    return families


def check_histogram(base: str, samples: list) -> None:
    groups = collections.defaultdict(dict)
    for name, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups[rest]
        if name == base + "_bucket":
            check("le" in labels, f"{base}_bucket without le")
            g.setdefault("buckets", []).append((parse_value(labels["le"]), v))
        else:
            check("le" not in labels, f"{name} with le")
            g[name[len(base):]] = v
    check(groups, f"histogram {base} has no samples")
    for rest, g in groups.items():
        buckets = g.get("buckets", [])
        check(buckets, f"{base}{rest} has no buckets")
        bounds = [b for b, _ in buckets]
        check(bounds == sorted(bounds) and len(set(bounds)) == len(bounds), f"{base} le not increasing: {bounds}")
        check(bounds[-1] == math.inf, f"{base} has no le=\"+Inf\" bucket (or it is not last)")
        counts = [c for _, c in buckets]
        check(all(a <= b for a, b in zip(counts, counts[1:])), f"{base} buckets not cumulative: {counts}")
        check("_count" in g and "_sum" in g, f"{base} lacks _count or _sum")
        check(counts[-1] == g["_count"], f"{base} +Inf bucket {counts[-1]} != _count {g['_count']}")
        check(g["_sum"] >= 0, f"{base}_sum < 0")


def values(families: dict, family: str, name: str = None) -> dict:
    """{frozen labels: value} of one family's samples called name (default: the family)."""
    return {tuple(sorted(labels.items())): v for n, labels, v in families[family]["samples"] if n == (name or family)}


def value(families: dict, family: str, **labels) -> float:
    v = values(families, family).get(tuple(sorted(labels.items())))
    check(v is not None, f"no sample {family}{labels}")
    return v


def check_complete(families: dict) -> None:
    check({k: f["type"] for k, f in families.items()} == FAMILIES,
          f"families {sorted((k, f['type']) for k, f in families.items())}")


def read_file(path: str):
    """(text, inode) of one whole read, or None when the file is not there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        ino = os.fstat(fd).st_ino
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode("utf-8"), ino
    finally:
        os.close(fd)



def test_textfile():
    env = Env("metrics")
    sim = Sim(env.dir, scenario=SCENARIO)
    daemon = None
    try:
        sim.fault(kind="status", status=503, order="failing")
        prom_dir = os.path.join(env.dir, "textfile")
        os.mkdir(prom_dir)
        prom = os.path.join(prom_dir, "provwatch.prom")
        extra = (f"\n[metrics]\ntextfile = {prom}\n"
                 f"\n[webhook ops]\nurl = http://127.0.0.1:{closed_port()}/hook\n")
        cfg = env.config(sim, ORDERS, poll={"failure-threshold": "1", "not-found-grace": "0"}, extra=extra)
        daemon = Daemon(cfg)

        def settled():
            r = read_file(prom)
            if not r:
                return None
            fams = parse(r[0])
            check_complete(fams)
            states = values(fams, "provwatch_orders")
            if states.get((("state", "not_found"),)) == 1 and states.get((("state", "failing"),)) == 1 \
                    and value(fams, "provwatch_polls_total", result="ok") >= 2:
                return r
            return None

        text, first_inode = wait_until(settled, 40, "the metrics file to count the first polls", interval=0.05)
        fams = parse(text)
        states = {dict(k)["state"]: v for k, v in values(fams, "provwatch_orders").items()}
        check(set(states) == {"pending", "settled", "failing", "not_found"}, f"states {states}")
        check(sum(states.values()) == len(ORDERS), f"provwatch_orders sums to {sum(states.values())}: {states}")
        check(states == {"pending": 1, "settled": 1, "failing": 1, "not_found": 1}, f"states {states}")
        check(value(fams, "provwatch_polls_total", result="ok") > 0, "polls ok")

        # The file is replaced, never rewritten in place: read it as fast as possible through
        # at least two rewrites (every 5 s), parsing every read.
        reads, inodes = 0, [first_inode]
        deadline = time.monotonic() + 30
        while len(set(inodes)) < 3:
            check(time.monotonic() < deadline, f"the file was not replaced twice within 30 s (inodes {inodes})")
            check(daemon.proc.poll() is None, f"the daemon exited: {daemon.log_tail()}")
            r = read_file(prom)
            check(r is not None, "the metrics file disappeared between rewrites")
            text, ino = r
            try:
                check_complete(parse(text))
            except Failure as e:
                raise Failure(f"read {reads} (inode {ino}) is not a complete file: {e}\n{text}")
            reads += 1
            if ino != inodes[-1]:
                inodes.append(ino)
        check(reads >= 20, f"only {reads} reads")
        leftovers = [f for f in os.listdir(prom_dir) if f != "provwatch.prom"]
        check(all(not f.endswith(".prom") for f in leftovers), f"a temporary file looks like a textfile: {leftovers}")

        check(daemon.stop() == 0, f"daemon exit status; log:\n{daemon.log_tail()}")
        events = list(daemon.all_events)
        daemon = None

        # written once more at exit: the final counts match what happened
        text, _ = read_file(prom)
        fams = parse(text)
        check_complete(fams)
        printed = collections.Counter(e["type"] for e in events)
        check(printed["provwatch.lineitem.added"] == 3 and printed["provwatch.order.completed"] == 1,
              f"events printed {dict(printed)}")
        for t in EVENT_TYPES:
            check(value(fams, "provwatch_events_total", type=t) == printed[t],
                  f"provwatch_events_total{{type={t!r}}} = {value(fams, 'provwatch_events_total', type=t)}, "
                  f"printed {printed[t]}")
        check(sum(values(fams, "provwatch_events_total").values()) == len(events), "events_total sums to the events")

        api = sim.requests()
        by_status = collections.Counter(r["status"] for r in api)
        http = {dict(k)["code"]: v for k, v in values(fams, "provwatch_http_requests_total").items()}
        check(http == {str(s): n for s, n in by_status.items()},
              f"provwatch_http_requests_total {http} != answers the simulator gave {dict(by_status)}")
        polls = {dict(k)["result"]: v for k, v in values(fams, "provwatch_polls_total").items()}
        check(polls == {"ok": by_status[200], "failed": by_status[503], "not_found": by_status[404],
                        "rate_limited": 0}, f"polls {polls} vs answers {dict(by_status)}")
        count = values(fams, "provwatch_poll_duration_seconds", "provwatch_poll_duration_seconds_count")
        check(list(count.values()) == [sum(polls.values())], f"one duration per poll: {count} vs {polls}")
        check(value(fams, "provwatch_rate_limited_total") == 0, "no 429")

        tokens = sim.requests(kind="token")
        check(value(fams, "provwatch_token_refreshes_total", result="ok") == sum(t["status"] == 200 for t in tokens)
              and len(tokens) >= 1, f"token refreshes vs {len(tokens)} token requests")
        check(value(fams, "provwatch_token_refreshes_total", result="error") == 0, "no failed refresh")

        # every event went to the unreachable webhook: attempted, failed, still queued
        check(value(fams, "provwatch_webhook_queue_depth", webhook="ops") == len(events),
              f"queue depth {value(fams, 'provwatch_webhook_queue_depth', webhook='ops')} vs {len(events)} events")
        check(value(fams, "provwatch_webhook_deliveries_total", webhook="ops", result="failed") >= 1, "failures")
        check(value(fams, "provwatch_webhook_deliveries_total", webhook="ops", result="delivered") == 0, "delivered")
    finally:
        if daemon:
            daemon.stop()
        sim.stop()
        env.cleanup()


def test_parser_rejects():
    """The parser above must be able to fail: it rejects what a broken writer would produce."""
    good = ('# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n'
            '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n')
    parse(good)
    bad = {
        "cut short": good[:-9],
        "no HELP": good.replace("# HELP a_total A.\n", ""),
        "no TYPE": good.replace("# TYPE a_total counter\n", ""),
        "bad label escape": good.replace('x="1"', 'x="a\\q"'),
        "unescaped quote": good.replace('x="1"', 'x="a"b"'),
        "+Inf != count": good.replace("h_count 2", "h_count 3"),
        "no +Inf": good.replace('h_bucket{le="+Inf"} 2\n', ""),
        "not cumulative": good.replace('h_bucket{le="1"} 1', 'h_bucket{le="1"} 3'),
        "duplicate": good + 'a_total{x="1"} 2\n',
        "not contiguous": good + 'a_total{x="2"} 2\n',
        "garbage value": good.replace("a_total{x=\"1\"} 2", "a_total{x=\"1\"} two"),
    }
    for what, text in bad.items():
        try:
            parse(text)
        except Failure:
            continue
        raise Failure(f"the parser accepted: {what}")


if __name__ == "__main__":
    main([test_parser_rejects, test_textfile])
