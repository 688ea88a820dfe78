#!/usr/bin/env python3
"""Broken configurations: each row of the table is run through `provwatch -c FILE check-config` and
`provwatch -c FILE run`; both must exit 78 (EX_CONFIG), print nothing on stdout and say exactly what
is wrong, naming file:line and the key (the wording of src/config.c). Then a reload (SIGHUP) with a
broken configuration, and a broken file appearing in a watched orders-dir: the old configuration
stays in force, events keep flowing, and the log names the problem."""

import os
import signal
import socket
import subprocess

from harness import Daemon, Env, Sim, check, main, provwatch_binary, wait_until

# The base configuration, one entry per line: the line numbers of the expected messages below
# refer to it.
BASE = """\
[partner-center]
endpoint = http://127.0.0.1:9
tenant-id = t1
client-id = c
client-secret-file = {dir}/client-secret
refresh-token-file = {dir}/refresh-token
timeout = 5s

[poll]
interval = 2m

[orders]
orders-dir =
order = c1 o1

[state]
directory = {dir}/state

[journal]
enabled = no
"""

NOT_URL = "is not an http:// or https:// URL with a host"
BOOLEAN = "is not auto or a boolean (yes, no, true, false, 1, 0)"
WEBHOOK = "enabled = no\n\n[webhook]\nurl = http://127.0.0.1:9/hook\n"
# a Microsoft Teams Workflows URL: too long for a line, and sig= is a credential
TEAMS_URL = ("https://prod-12.westus.logic.azure.com:443/workflows/0123456789abcdef0123456789abcdef/triggers/"
             "manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" + "S" * 43)
DISCOVERY = "enabled = no\n\n[discovery]\n"

# (name, text to replace in BASE, replacement, expected message); {conf} is the config file's path,
# {dir} its directory. Every message must appear as the whole of stderr.
ROWS = [
    ("interval not a time span", "interval = 2m", "interval = 5 parsecs",
     '{conf}:10: [poll] interval: "5 parsecs" is not a time span'),
    ("negative settled-interval", "interval = 2m", "interval = 2m\nsettled-interval = -1h",
     '{conf}:11: [poll] settled-interval: "-1h" is not a time span'),
    ("budget not a number", "interval = 2m", "interval = 2m\nmax-requests-per-minute = many",
     '{conf}:11: [poll] max-requests-per-minute: "many" is not a number between 0 and 100000'),
    ("negative budget", "interval = 2m", "interval = 2m\nmax-requests-per-minute = -5",
     '{conf}:11: [poll] max-requests-per-minute: "-5" is not a number between 0 and 100000'),
    ("concurrency 0", "interval = 2m", "interval = 2m\nconcurrency = 0",
     '{conf}:11: [poll] concurrency: "0" is not a number between 1 and 1024'),
    ("concurrency too large", "interval = 2m", "interval = 2m\nconcurrency = 100000",
     '{conf}:11: [poll] concurrency: "100000" is not a number between 1 and 1024'),
    ("concurrency with a unit", "interval = 2m", "interval = 2m\nconcurrency = 3x",
     '{conf}:11: [poll] concurrency: "3x" is not a number between 1 and 1024'),
    ("failure-threshold not a number", "interval = 2m", "interval = 2m\nfailure-threshold = x",
     '{conf}:11: [poll] failure-threshold: "x" is not a number between 1 and 1000'),
    ("not-found-grace in words", "interval = 2m", "interval = 2m\nnot-found-grace = 10 minutes",
     '{conf}:11: [poll] not-found-grace: "10 minutes" is not a time span'),
    ("timeout not a time span", "timeout = 5s", "timeout = forever",
     '{conf}:7: [partner-center] timeout: "forever" is not a time span'),
    ("timeout zero", "timeout = 5s", "timeout = 0",
     '{conf}:7: [partner-center] timeout: "0" must be greater than zero'),
    ("unknown auth mode", "tenant-id = t1", "tenant-id = t1\nauth = password",
     '{conf}:4: [partner-center] auth: "password" is not one of refresh-token, client-credentials, token-file'),
    ("endpoint ftp", "endpoint = http://127.0.0.1:9", "endpoint = ftp://example.com",
     '{conf}:2: [partner-center] endpoint: "ftp://example.com" ' + NOT_URL
     + " (and without query or fragment)"),
    ("endpoint not a url", "endpoint = http://127.0.0.1:9", "endpoint = not a url",
     '{conf}:2: [partner-center] endpoint: "not a url" ' + NOT_URL + " (and without query or fragment)"),
    ("endpoint without host", "endpoint = http://127.0.0.1:9", "endpoint = http://",
     '{conf}:2: [partner-center] endpoint: "http://" ' + NOT_URL + " (and without query or fragment)"),
    ("token-endpoint ftp", "timeout = 5s", "timeout = 5s\ntoken-endpoint = ftp://login/x",
     '{conf}:8: [partner-center] token-endpoint: "ftp://login/x" ' + NOT_URL),
    ("api-version with a v", "timeout = 5s", "timeout = 5s\napi-version = v1",
     '{conf}:8: [partner-center] api-version: "v1" is not an API version such as 1'),
    ("locale with a space", "timeout = 5s", "timeout = 5s\nlocale = en US",
     '{conf}:8: [partner-center] locale: "en US" is not a locale such as en-US'),
    ("ca-file missing", "timeout = 5s", "timeout = 5s\nca-file = /nonexistent/ca.pem",
     '{conf}:8: [partner-center] ca-file: cannot read "/nonexistent/ca.pem": No such file or directory'),
    ("client-secret-file missing", "client-secret-file = {dir}/client-secret",
     "client-secret-file = /nonexistent/cs",
     '{conf}:5: [partner-center] client-secret-file: cannot read "/nonexistent/cs": No such file or directory'),
    ("client-secret-file empty", "client-secret-file = {dir}/client-secret",
     "client-secret-file = {dir}/empty",
     '{conf}:5: [partner-center] client-secret-file: "{dir}/empty" is empty'),
    ("refresh-token-file of two lines", "refresh-token-file = {dir}/refresh-token",
     "refresh-token-file = {dir}/two-lines",
     '{conf}:6: [partner-center] refresh-token-file: "{dir}/two-lines" holds more than one line or '
     "control characters"),
    # required keys, per auth mode (reported at the section header)
    ("refresh-token: no refresh-token-file", "refresh-token-file = {dir}/refresh-token\n", "",
     '{conf}:1: [partner-center]: refresh-token-file (or the credential "refresh-token") is required '
     "with auth = refresh-token"),
    ("refresh-token: no client-secret-file", "client-secret-file = {dir}/client-secret\n", "",
     '{conf}:1: [partner-center]: client-secret-file (or the credential "client-secret") is required '
     "with auth = refresh-token"),
    ("refresh-token: no client-id", "client-id = c\n", "",
     "{conf}:1: [partner-center]: client-id is required unless auth = token-file"),
    ("refresh-token: no tenant-id", "tenant-id = t1\n", "",
     "{conf}:1: [partner-center]: tenant-id is required unless auth = token-file"),
    ("client-credentials: no client-secret-file",
     "client-secret-file = {dir}/client-secret\nrefresh-token-file = {dir}/refresh-token\n",
     "auth = client-credentials\n",
     '{conf}:1: [partner-center]: client-secret-file (or the credential "client-secret") is required '
     "with auth = client-credentials"),
    ("client-credentials: no tenant-id",
     "tenant-id = t1\n", "auth = client-credentials\n",
     "{conf}:1: [partner-center]: tenant-id is required unless auth = token-file"),
    ("token-file: no token-file",
     "client-secret-file = {dir}/client-secret\nrefresh-token-file = {dir}/refresh-token\n",
     "auth = token-file\n",
     "{conf}:1: [partner-center]: token-file is required with auth = token-file"),
    # syntax
    ("unknown section", "[poll]", "[polling]", "{conf}:9: [polling]: unknown section"),
    ("unknown key", "interval = 2m", "intervall = 2m", "{conf}:10: [poll] intervall: unknown key"),
    ("over-long comment line", "interval = 2m", "interval = 2m\n# " + "x" * 198,
     "{conf}:11: line is longer than 199 characters; put long values such as tokens in files"),
    ("over-long value", "interval = 2m", "interval = 2m\nterminal-statuses = " + "done " * 40,
     "{conf}:11: line is longer than 199 characters; put long values such as tokens in files"),
    ("key outside any section", "[partner-center]", "endpoint = http://x\n[partner-center]",
     "{conf}:1: endpoint: key outside of any section"),
    ("no '='", "interval = 2m", "interval = 2m\njust some words",
     '{conf}:11: expected "KEY = VALUE", a [section] header or a comment'),
    ("no key name", "interval = 2m", "interval = 2m\n = 3", '{conf}:11: [poll]: missing key name before "="'),
    ("key set twice", "interval = 2m", "interval = 2m\ninterval = 3m",
     "{conf}:11: [poll] interval is set twice (first at {conf}:10)"),
    ("section header unclosed", "[journal]", "[journal", '{conf}:19: section header without closing "]"'),
    ("NUL byte", "interval = 2m", "interval = 2m\0", "{conf}:10: line contains a NUL byte"),
    ("journal not a boolean", "enabled = no", "enabled = maybe", '{conf}:20: [journal] enabled: "maybe" ' + BOOLEAN),
    # orders
    ("order of one word", "order = c1 o1", "order = onlyone",
     '{conf}:14: [orders] order: "onlyone" is not "CUSTOMER_ID ORDER_ID"'),
    ("order of three words", "order = c1 o1", "order = c1 o1 extra",
     '{conf}:14: [orders] order: "c1 o1 extra" is not "CUSTOMER_ID ORDER_ID"'),
    ("order id with a slash", "order = c1 o1", "order = c1 o/1",
     '{conf}:14: [orders] order: "o/1" is not a valid order ID (1 to 128 characters of A-Z a-z 0-9 . _ ~ -)'),
    ("orders-dir file: one word", "orders-dir =", "orders-dir = {dir}/od1",
     '{dir}/od1/a.list:3: "onlyone" is not "CUSTOMER_ID ORDER_ID"'),
    ("orders-dir file: three words", "orders-dir =", "orders-dir = {dir}/od2",
     '{dir}/od2/b.list:1: "c1 o1 extra" is not "CUSTOMER_ID ORDER_ID"'),
    # webhooks
    ("webhook without url", "enabled = no", "enabled = no\n\n[webhook]\nevents = *",
     '{conf}:22: [webhook]: url or url-file (or the credential "webhook-url") is required'),
    ("named webhook without url", "enabled = no", "enabled = no\n\n[webhook teams]\nformat = teams",
     '{conf}:22: [webhook teams]: url or url-file (or the credential "webhook-teams-url") is required'),
    ("webhook url and url-file", "enabled = no\n", WEBHOOK + "url-file = {dir}/hook-url",
     "{conf}:24: [webhook] url-file: the URL is also given by url ({conf}:23); give it in one place only"),
    ("webhook url-file missing", "enabled = no", "enabled = no\n\n[webhook]\nurl-file = /nonexistent/hook.url",
     '{conf}:23: [webhook] url-file: cannot read "/nonexistent/hook.url": No such file or directory'),
    ("webhook url-file not a url", "enabled = no", "enabled = no\n\n[webhook teams]\nurl-file = {dir}/not-a-url",
     '{conf}:23: [webhook teams] url-file: "{dir}/not-a-url" does not hold an http:// or https:// URL with a host'),
    ("webhook url-file empty", "enabled = no", "enabled = no\n\n[webhook]\nurl-file = {dir}/empty",
     '{conf}:23: [webhook] url-file: "{dir}/empty" is empty'),
    ("webhook url longer than a line", "enabled = no", "enabled = no\n\n[webhook teams]\nurl = " + TEAMS_URL,
     '{conf}:22: [webhook teams]: url or url-file (or the credential "webhook-teams-url") is required\n'
     "{conf}:23: line is longer than 199 characters; put long values such as tokens in files "
     "(a webhook's URL: url-file = PATH)"),
    ("webhook url ftp", "enabled = no", "enabled = no\n\n[webhook]\nurl = ftp://example.com/hook",
     '{conf}:23: [webhook] url: "ftp://example.com/hook" ' + NOT_URL),
    ("webhook timeout", "enabled = no\n", WEBHOOK + "timeout = soon",
     '{conf}:24: [webhook] timeout: "soon" is not a time span'),
    ("webhook retry-for", "enabled = no\n", WEBHOOK + "retry-for = 3 days",
     '{conf}:24: [webhook] retry-for: "3 days" is not a time span'),
    ("webhook once-timeout", "enabled = no\n", WEBHOOK + "once-timeout = 1 fortnight",
     '{conf}:24: [webhook] once-timeout: "1 fortnight" is not a time span'),
    ("webhook header without colon", "enabled = no\n", WEBHOOK + "header = NoColon",
     '{conf}:24: [webhook] header: expected "NAME: VALUE"'),
    ("webhook header bad name", "enabled = no\n", WEBHOOK + "header = Bad Name: x",
     '{conf}:24: [webhook] header: "Bad Name" is not a valid header name'),
    ("webhook ca-file missing", "enabled = no\n", WEBHOOK + "ca-file = /nonexistent/ca",
     '{conf}:24: [webhook] ca-file: cannot read "/nonexistent/ca": No such file or directory'),
    ("webhook secret not base64", "enabled = no\n", WEBHOOK + "secret-file = {dir}/bad-whsec",
     '{conf}:24: [webhook] secret-file: "{dir}/bad-whsec" starts with "whsec_" but is not valid base64'),
    ("webhook secret empty", "enabled = no\n", WEBHOOK + "secret-file = {dir}/empty",
     '{conf}:24: [webhook] secret-file: "{dir}/empty" is empty'),
    ("webhook format unknown", "enabled = no\n", WEBHOOK + "format = discord",
     '{conf}:24: [webhook] format: "discord" is not one of cloudevents, teams, slack'),
    # [poll] stall-after and [discovery]
    ("stall-after not a time span", "interval = 2m", "interval = 2m\nstall-after = a day",
     '{conf}:11: [poll] stall-after: "a day" is not a time span'),
    ("discovery enabled not a boolean", "enabled = no\n", DISCOVERY + "enabled = perhaps",
     '{conf}:23: [discovery] enabled: "perhaps" is not a boolean (yes, no, true, false, 1, 0)'),
    ("discovery interval 0", "enabled = no\n", DISCOVERY + "interval = 0",
     '{conf}:23: [discovery] interval: "0" must be greater than zero'),
    ("discovery lookback over 89 days", "enabled = no\n", DISCOVERY + "lookback = 90d",
     '{conf}:23: [discovery] lookback: "90d" is more than the maximum of 89d'),
    ("discovery customer id with a slash", "enabled = no\n", DISCOVERY + "customers = c1 c/2",
     '{conf}:23: [discovery] customers: "c/2" is not a valid customer ID (1 to 128 characters of A-Z a-z 0-9 . _ ~ -)'),
    ("discovery forget-after in words", "enabled = no\n", DISCOVERY + "forget-after = a month",
     '{conf}:23: [discovery] forget-after: "a month" is not a time span'),
    ("discovery sweep-interval negative", "enabled = no\n", DISCOVERY + "sweep-interval = -1d",
     '{conf}:23: [discovery] sweep-interval: "-1d" is not a time span'),
    ("discovery unknown key", "enabled = no\n", DISCOVERY + "enable = yes", "{conf}:23: [discovery] enable: unknown key"),
    ("webhook bad name", "enabled = no", "enabled = no\n\n[webhook bad name!]\nurl = http://127.0.0.1:9/",
     "{conf}:22: [webhook bad name!]: not a valid webhook name (1 to 64 characters of A-Z a-z 0-9 _ -)"),
    ("webhook twice", "enabled = no",
     "enabled = no\n\n[webhook a]\nurl = http://127.0.0.1:9/\n[webhook a]\nurl = http://127.0.0.1:9/",
     "{conf}:24: [webhook a]: duplicate section (first at {conf}:22)"),
]


def write_fixtures(env: Env) -> None:
    env.write("client-secret", "test-secret\n", 0o600)
    env.write("empty", "", 0o600)
    env.write("two-lines", "a\nb\n", 0o600)
    env.write("bad-whsec", "whsec_!!!notbase64\n", 0o600)
    env.write("hook-url", "http://127.0.0.1:9/hook\n", 0o600)
    env.write("not-a-url", "ftp://example.com/hook?sig=never-shown\n", 0o600)
    for d, text in (("od1", "# comment\nc1 o1\nonlyone\n"), ("od2", "c1 o1 extra\n")):
        os.makedirs(os.path.join(env.dir, d))
        name = "a.list" if d == "od1" else "b.list"
        with open(os.path.join(env.dir, d, name), "w", encoding="utf-8") as f:
            f.write(text)


def test_table():
    check(len(ROWS) >= 30, f"only {len(ROWS)} rows")
    env = Env("bad-config")
    try:
        write_fixtures(env)
        base = BASE.format(dir=env.dir)
        good = env.write("good.conf", base)
        p = subprocess.run([provwatch_binary(), "-c", good, "check-config"], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        check(p.returncode == 0 and p.stderr == "", f"the base configuration is valid: {p.returncode} {p.stderr}")
        # the limit is 199 characters: a line of exactly 199 is fine
        edge = env.write("edge.conf", base.replace("interval = 2m", "interval = 2m\n# " + "x" * 197))
        p = subprocess.run([provwatch_binary(), "-c", edge, "check-config"], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        check(p.returncode == 0 and p.stderr == "", f"a line of 199 characters: {p.returncode} {p.stderr}")
        # with discovery on, no order at all is fine
        alone = env.write("discovery.conf", base.replace("order = c1 o1\n", "").replace(
            "enabled = no\n", DISCOVERY + "enabled = yes\n"))
        p = subprocess.run([provwatch_binary(), "-c", alone, "check-config"], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        check(p.returncode == 0 and p.stderr == "" and "orders:              0\n" in p.stdout,
              f"discovery without orders: {p.returncode} {p.stderr}")
        problems = []
        for name, old, new, want in ROWS:
            old, new = old.format(dir=env.dir), new.format(dir=env.dir)
            check(old in base, f"{name}: {old!r} not in the base configuration")
            conf = env.write("bad.conf", base.replace(old, new, 1))
            want = want.format(conf=conf, dir=env.dir)
            for verb in ("check-config", "run"):
                try:
                    p = subprocess.run([provwatch_binary(), "-c", conf, verb], capture_output=True, text=True,
                                       timeout=20, stdin=subprocess.DEVNULL)
                except subprocess.TimeoutExpired:
                    problems.append(f"{name}: {verb} accepted the configuration and kept running")
                    continue
                if p.returncode != 78:
                    problems.append(f"{name}: {verb} exit {p.returncode}, not 78; stderr {p.stderr!r}")
                if p.stdout:
                    problems.append(f"{name}: {verb} printed on stdout: {p.stdout[:200]!r}")
                if p.stderr.rstrip("\n") != want:
                    problems.append(f"{name}: {verb} said {p.stderr!r}, expected {want!r}")
        check(not problems, f"{len(problems)} problems:\n" + "\n".join(problems))
    finally:
        env.cleanup()


SCENARIO = {"orders": [
    {"customer": "c1", "order": "o1", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 4}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 1, "prefulfillmentpending": 3}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 2, "prefulfillmentpending": 2}},
            {"status": "prefulfillmentpending", "quantities": {"fulfilled": 3, "prefulfillmentpending": 1}},
            {"status": "fulfilled", "quantities": {"fulfilled": 4}}]}]},
    {"customer": "c1", "order": "o2", "manual": True, "line_items": [
        {"number": 0, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}}]},
]}


class Notify:
    """A NOTIFY_SOCKET: counts the READY=1 messages (one at start, one after every reload)."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.n_ready = 0

    def ready(self) -> int:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.n_ready
            if "READY=1" in data.decode(errors="replace").split("\n"):
                self.n_ready += 1

    def close(self) -> None:
        self.sock.close()


def line_of(text, needle):
    """The 1-based number of the line where needle starts."""
    return text[:text.index(needle)].count("\n") + 1


def changed_to(order, fulfilled):
    return lambda e: (e["type"] == "provwatch.lineitem.changed" and e["data"]["order_id"] == order
                      and e["data"]["new"]["quantities"].get("fulfilled") == fulfilled)


def test_broken_reload_keeps_the_old_configuration():
    env = Env("bad-config-reload")
    sim = Sim(env.dir, scenario=SCENARIO)
    odir = os.path.join(env.dir, "orders.d")
    os.mkdir(odir)
    notify = Notify(env.dir)
    try:
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s"})
        good = open(cfg, encoding="utf-8").read()
        d = Daemon(cfg, env={"NOTIFY_SOCKET": notify.path})
        try:
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.added", 20, "o1 added")
            gone = os.path.join(env.dir, "gone")
            texts = [
                ("unknown key", good.replace("interval = 1s", "interval = 1s\nintervall = 2s"), "intervall",
                 "{conf}:{line}: [poll] intervall: unknown key"),
                ("over-long line", good.replace("interval = 1s", "interval = 1s\n# " + "y" * 250), "# yyy",
                 "{conf}:{line}: line is longer than 199 characters; put long values such as tokens in files"),
                # o2 is added by this configuration, but it is invalid: o2 must not be polled
                ("bad order line", good.replace("order = c1 o1", "order = c1 o1\norder = c1 o2\norder = c1\n"),
                 "order = c1\n", '{conf}:{line}: [orders] order: "c1" is not "CUSTOMER_ID ORDER_ID"'),
                ("missing secret", good.replace(os.path.join(env.dir, "client-secret"), gone), gone,
                 '{conf}:{line}: [partner-center] client-secret-file: cannot read "' + gone
                 + '": No such file or directory'),
            ]
            broken = [(name, text, message.format(conf=cfg, line=line_of(text, needle)))
                      for name, text, needle, message in texts]
            for step, (name, text, message) in enumerate(broken, start=1):
                env.write("provwatch.conf", text)
                d.send(signal.SIGHUP)
                wait_until(lambda: d.log().count("keeping the one in force") == step, 10,
                           f"{name}: the refused reload logged")
                log = d.log()
                check(f"provwatch: error: {message}\n" in log, f"{name}: the log does not say {message!r}:\n{log}")
                sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
                d.wait_event(changed_to("o1", step), 15, f"{name}: o1 polled on under the old configuration")
            check(not [r for r in sim.requests() if r["order"] == "o2"], "o2 of a refused configuration was polled")

            # a broken file in the watched orders-dir: the orders in force stay
            env.write("provwatch.conf", good.replace("orders-dir =", f"orders-dir = {odir}"))
            d.send(signal.SIGHUP)
            # READY=1 comes when the reload is done, the orders-dir watch included
            wait_until(lambda: notify.ready() == 6, 10, "the good reload")
            check(d.log().count("keeping the one in force") == 4, "the good reload was refused")
            bad_list = os.path.join(odir, "more.list")
            with open(bad_list + ".tmp", "w", encoding="utf-8") as f:
                f.write("c1 o2\nc1 o2 o3\n")
            os.rename(bad_list + ".tmp", bad_list)
            d.wait_log("Not applying the changed orders", 10, "the broken orders file refused")
            log = d.log()
            check(f'provwatch: error: {bad_list}:2: "c1 o2 o3" is not "CUSTOMER_ID ORDER_ID"\n' in log,
                  f"the log names the file, line and problem:\n{log}")
            idx = sim.control("GET", "requests?since=0")["next"]
            sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
            d.wait_event(changed_to("o1", 4), 15, "o1 polled on after the broken orders file")
            check(not [r for r in sim.requests(idx) if r["order"] == "o2"], "o2 of a broken orders file was polled")
            # fixed: o2 comes in without a reload
            with open(bad_list + ".tmp", "w", encoding="utf-8") as f:
                f.write("c1 o2\n")
            os.rename(bad_list + ".tmp", bad_list)
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.added" and e["data"]["order_id"] == "o2", 15,
                         "o2 added once the file is fixed")
            check(d.stop() == 0, "clean exit")
            added = [e for e in d.all_events if e["type"] == "provwatch.lineitem.added" and e["data"]["order_id"] == "o1"]
            check(len(added) == 1, f"o1 was added {len(added)} times")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        notify.close()
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main([test_table, test_broken_reload_keeps_the_old_configuration])
