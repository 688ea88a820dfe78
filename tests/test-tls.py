#!/usr/bin/env python3
"""TLS is always verified. At test time the openssl command makes a CA, a certificate for
"localhost" and 127.0.0.1 signed by it, one for "wrong.example" signed by it, and a self-signed one
for localhost. The simulator serves HTTPS with each; provwatch must refuse every server it cannot
verify (the fetch fails and the log names the TLS problem, no event) and work with [partner-center]
ca-file = the CA. Both the token endpoint (auth = refresh-token) and the API alone (auth =
token-file, the token fetched by the test) are checked, with `once` and with `run`. Webhooks over
TLS: a small HTTPS receiver in this file (tests/webhook_receiver.py speaks plain HTTP only), with and
without [webhook] ca-file."""

import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Daemon, Env, Sim, check, main, run_once, skip, wait_until

SCENARIO = {"orders": [
    {"customer": "c1", "order": "o1", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 2}},
            {"status": "fulfilled", "quantities": {"fulfilled": 2}}]}]}]}

# what curl (OpenSSL) says; the log line must carry one of them
UNKNOWN_ISSUER = ("SSL certificate problem: unable to get local issuer certificate",)
SELF_SIGNED = ("SSL certificate problem: self-signed certificate", "SSL certificate problem: self signed certificate")
WRONG_HOST = ("no alternative certificate subject name matches target host name 'localhost'",
              "does not match target host name 'localhost'")


def openssl(*args: str, cwd: str) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {p.stderr}")


class Certs:
    """ca.pem; good.pem (localhost, 127.0.0.1), wrong.pem (wrong.example) signed by the CA;
    self.pem (localhost, self-signed); each with its .key."""

    def __init__(self, d: str):
        if not shutil.which("openssl"):
            skip("the openssl command is not installed")
        self.dir = os.path.join(d, "certs")
        os.mkdir(self.dir)
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
                "/CN=provwatch test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        for name, san in (("good", "DNS:localhost,IP:127.0.0.1"), ("wrong", "DNS:wrong.example")):
            cn = "localhost" if name == "good" else "wrong.example"
            with open(os.path.join(self.dir, f"{name}.ext"), "w", encoding="ascii") as f:
                f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                        "keyUsage=digitalSignature\n")
            openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=self.dir)
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=self.dir)
        openssl("req", "-x509", *key, "-keyout", "self.key", "-out", "self.pem", "-days", "2", "-subj",
                "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=self.dir)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def pair(self, name: str) -> tuple[str, str]:
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


def access_token(sim: Sim, cafile: str) -> str:
    """A token from the simulator's token endpoint, fetched by the test itself."""
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "test-client",
                                   "client_secret": "test-secret", "resource": "x"}).encode()
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the wrong-host certificate is still the simulator
    req = urllib.request.Request(f"https://127.0.0.1:{sim.port}/t1/oauth2/token", data=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        return json.loads(r.read())["access_token"]


def token_file_pc(env: Env, token: str) -> dict:
    env.write("token", token + "\n", 0o600)
    return {"auth": "token-file", "token-file": os.path.join(env.dir, "token"), "tenant-id": None,
            "client-id": None, "client-secret-file": None, "refresh-token-file": None, "token-endpoint": None}


def says_one_of(log: str, prefix: str, reasons: tuple) -> bool:
    return any(f"{prefix}{r}" in log or (prefix in log and r in log.split(prefix, 1)[1].split("\n", 1)[0])
               for r in reasons)


def test_partner_center_over_tls():
    env = Env("tls")
    certs = Certs(env.dir)
    sims = {}
    try:
        for name in ("good", "wrong", "self"):
            sims[name] = Sim(env.dir, scenario=SCENARIO, tls=certs.pair(name))
        check(sims["good"].url.startswith("https://localhost:"), sims["good"].url)
        ca = certs.path("ca.pem")
        # (server certificate, ca-file, expected failure reasons or None for success)
        cases = [("good", None, UNKNOWN_ISSUER), ("good", ca, None), ("wrong", ca, WRONG_HOST),
                 ("self", ca, SELF_SIGNED), ("self", None, SELF_SIGNED)]
        problems = []
        for auth in ("refresh-token", "token-file"):
            for cert, ca_file, reasons in cases:
                name = f"{auth}, {cert} certificate, ca-file {'the CA' if ca_file else 'unset'}"
                sim = sims[cert]
                e = Env("tls-case")
                try:
                    pc = {"ca-file": ca_file, "timeout": "5s"}
                    if auth == "token-file":
                        pc.update(token_file_pc(e, access_token(sim, ca if cert != "self" else certs.path("self.pem"))))
                    cfg = e.config(sim, [("c1", "o1")], pc=pc)
                    failures = sim.control("GET", "stats")["tls_handshake_failures"]
                    rc, events, err = run_once(cfg, timeout=30)
                    if reasons is None:
                        if rc != 0 or [ev["type"] for ev in events] != ["provwatch.lineitem.added"]:
                            problems.append(f"{name}: exit {rc}, events {events}:\n{err}")
                        continue
                    if rc != 1 or events:
                        problems.append(f"{name}: exit {rc}, events {[ev['type'] for ev in events]}, expected a "
                                        f"refusal:\n{err}")
                    if auth == "refresh-token":
                        prefix = f"Cannot obtain an access token: token endpoint {sim.url}/tenant1/oauth2/token unreachable: "
                    else:
                        prefix = "Poll of order 'o1' (customer 'c1') failed: transport error: "
                    if not says_one_of(err, prefix, reasons):
                        problems.append(f"{name}: the log does not say {prefix!r} + one of {reasons}:\n{err}")
                    # a wrong host name is found after the handshake, the rest during it
                    if cert != "wrong" and sim.control("GET", "stats")["tls_handshake_failures"] <= failures:
                        problems.append(f"{name}: the simulator saw no failed TLS handshake")
                finally:
                    e.cleanup()
        check(not problems, f"{len(problems)} problems:\n" + "\n".join(problems))
        # nothing of provwatch's got through to the simulators it cannot verify (the test's own
        # client_credentials requests for the token files did)
        for cert in ("wrong", "self"):
            through = sims[cert].requests() + [r for r in sims[cert].requests(kind="token")
                                               if r["token"]["grant_type"] != "client_credentials"]
            check(not through, f"{cert}: requests got through: {through[:2]}")
    finally:
        for s in sims.values():
            s.stop()
        env.cleanup()


def test_daemon_over_tls():
    env = Env("tls-daemon")
    certs = Certs(env.dir)
    sim = Sim(env.dir, scenario=SCENARIO, tls=certs.pair("good"))
    try:
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s"}, pc={"ca-file": certs.path("ca.pem")})
        d = Daemon(cfg)
        try:
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.added", 20, "o1 added over TLS")
            sim.control("POST", "advance", {"customer": "c1", "order": "o1"})
            d.wait_event(lambda e: e["type"] == "provwatch.lineitem.changed", 20, "o1 changed over TLS")
            check(all(r["tls"] for r in sim.requests()), "every API request used TLS")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
        # without the CA (and a fresh state: o1 is settled now, not polled for hours): refused, and it
        # says so
        env2 = Env("tls-daemon-untrusted")
        cfg = env2.config(sim, [("c1", "o1")], poll={"interval": "1s"})
        d = Daemon(cfg)
        try:
            d.wait_log("SSL certificate problem: unable to get local issuer certificate", 20, "the TLS problem logged")
            check("Cannot obtain an access token: token endpoint" in d.log(), d.log())
            check(d.stop() == 0 and not d.all_events, f"events without trust: {d.all_events}")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
            env2.cleanup()
    finally:
        sim.stop()
        env.cleanup()


class HttpsReceiver:
    """A minimal HTTPS webhook receiver: records the webhook-id of every POST, answers 204."""

    def __init__(self, cert: tuple[str, str]):
        self.ids: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.ids.append(self.headers.get("webhook-id", ""))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://localhost:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def received(self) -> list[str]:
        with self.lock:
            return list(self.ids)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_over_tls():
    env = Env("tls-webhook")
    certs = Certs(env.dir)
    sim = Sim(env.dir, scenario=SCENARIO)
    receivers = {}
    try:
        for name in ("good", "wrong"):
            receivers[name] = HttpsReceiver(certs.pair(name))
        ca = certs.path("ca.pem")
        hooks = (f"\n[webhook trusted]\nurl = {receivers['good'].url}\nca-file = {ca}\n"
                 f"\n[webhook untrusted]\nurl = {receivers['good'].url}\n"
                 f"\n[webhook wronghost]\nurl = {receivers['wrong'].url}\nca-file = {ca}\n")
        cfg = env.config(sim, [("c1", "o1")], poll={"interval": "1s"}, extra=hooks)
        d = Daemon(cfg)
        try:
            ev = d.wait_event(lambda e: e["type"] == "provwatch.lineitem.added", 20, "o1 added")
            wait_until(lambda: ev["id"] in receivers["good"].received(), 20, "delivery to the trusted receiver")
            for name in ("untrusted", "wronghost"):
                wait_until(lambda name=name: f"Webhook '{name}': event {ev['id']} not delivered (attempt 1): " in d.log(),
                           20, f"the failed delivery to {name} logged")
            log = d.log()
            line = lambda name: log.split(f"Webhook '{name}': event {ev['id']} not delivered (attempt 1): ", 1)[1].split("\n")[0]
            check(any(r in line("untrusted") for r in UNKNOWN_ISSUER), f"untrusted: {line('untrusted')}")
            check(any(r in line("wronghost") for r in WRONG_HOST), f"wronghost: {line('wronghost')}")
            check(receivers["good"].received().count(ev["id"]) == 1, "only the trusted webhook delivered")
            check(receivers["wrong"].received() == [], "the wrong-host receiver got a request")
            check(d.stop() == 0, "clean exit")
        finally:
            if d.proc.poll() is None:
                d.stop(signal.SIGKILL)
    finally:
        for r in receivers.values():
            r.stop()
        sim.stop()
        env.cleanup()


if __name__ == "__main__":
    main([test_partner_center_over_tls, test_daemon_over_tls, test_webhook_over_tls])
