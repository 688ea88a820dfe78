#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A webhook receiver for tests: checks what provwatch sends, independently of provwatch's code.

Every POST (other than /_control) is verified as a Standard Webhooks 1.0 delivery of a CloudEvent in
structured mode and recorded as one JSON line in --log:

  {"id", "timestamp", "signature_ok", "type", "subject", "order", "body", "received", "mono",
   "path", "headers", "answered", "problems"}

"signature_ok" is null when no secret was given. "problems" lists what else was wrong (empty when
all is well); "answered" is the HTTP status sent back. "received" is the Unix time of the answer
(after any hang); "mono" the CLOCK_MONOTONIC time (time.monotonic(), system-wide) at which the
request had been read, for latencies measured against other processes; "path" the request target
(path and query: any path but /_control is a delivery); "headers" the request headers, {name: value}.

Control, at run time:
  POST /_control {"mode": "ok"}                         answer 204 (the default)
  POST /_control {"mode": "status", "status": 503, "retry_after": 2, "count": 3}
        answer 503 with "Retry-After: 2" to the next 3 deliveries, then go back to "ok"
        (without "count": until told otherwise)
  POST /_control {"hang": 20, ...}                      wait 20 s before answering (combines with any mode)
  POST /_control {"order": "O", ...}                    the behaviour applies to deliveries of order O only
                                                        (data.order_id); others are answered 204
  POST /_control {"orders": ["O1", "O2"], ...}          the same for a list of orders (with "order", a
                                                        delivery must match both)
  GET  /_control                                        the current behaviour
  GET  /_control/deliveries                             everything recorded, as a JSON list

Usage: webhook_receiver.py --port-file FILE --log FILE [--secret SECRET | --secret-file FILE]
The port (127.0.0.1, chosen by the kernel) is written to --port-file atomically once it listens.
SIGTERM or SIGINT stops it.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def decode_secret(secret: bytes) -> bytes:
    """Standard Webhooks: "whsec_<base64>" is decoded, anything else is the key itself."""
    secret = secret.rstrip(b"\r\n")
    if secret.startswith(b"whsec_"):
        return base64.b64decode(secret[len(b"whsec_"):], validate=True)
    return secret


def expected_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def signature_matches(key: bytes, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """The header may carry several space-separated "v1,<base64>" signatures (key rotation)."""
    want = expected_signature(key, msg_id, timestamp, body)
    for sig in header.split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, want):
            return True
    return False


class State:
    def __init__(self, key, log_path):
        self.key = key
        self.log_path = log_path
        self.lock = threading.Lock()
        self.deliveries = []
        self.mode = {"mode": "ok"}
        self.orders = None  # the set of mode["orders"]

    def set_mode(self, mode):
        with self.lock:
            self.mode = dict(mode)
            self.orders = set(mode["orders"]) if "orders" in mode else None  # hundreds of them

    def next_answer(self, order):
        """(status, retry_after, hang) for the next delivery; counts down "count"."""
        with self.lock:
            m = self.mode
            if "order" in m and m["order"] != order:
                return 204, None, 0
            if self.orders is not None and order not in self.orders:
                return 204, None, 0
            hang = float(m.get("hang", 0))
            if m.get("mode", "ok") != "status":
                return 204, None, hang
            status, retry_after = int(m.get("status", 500)), m.get("retry_after")
            if "count" in m:
                m["count"] = int(m["count"]) - 1
                if m["count"] <= 0:
                    self.mode, self.orders = {"mode": "ok"}, None
            return status, retry_after, hang

    def record(self, entry):
        with self.lock:
            self.deliveries.append(entry)
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as curl would use with a real receiver
    server_version = "webhook-receiver"

    def log_message(self, fmt, *args):  # quiet: the log file is the record
        pass

    def reply(self, status, payload=None, headers=()):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        state = self.server.state
        if self.path == "/_control":
            with state.lock:
                self.reply(200, state.mode)
        elif self.path == "/_control/deliveries":
            with state.lock:
                self.reply(200, list(state.deliveries))
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        state = self.server.state
        body = self.read_body()
        if self.path == "/_control":
            try:
                mode = json.loads(body)
                if not isinstance(mode, dict) or mode.get("mode", "ok") not in ("ok", "status"):
                    raise ValueError("bad mode")
                if not isinstance(mode.get("orders", []), list):
                    raise ValueError("orders is not a list")
            except ValueError as e:
                self.reply(400, {"error": str(e)})
                return
            state.set_mode(mode)
            self.reply(200, mode)
            return
        self.delivery(state, body)

    def delivery(self, state, body):
        mono = time.monotonic()
        h = self.headers
        problems = []
        msg_id, timestamp = h.get("webhook-id", ""), h.get("webhook-timestamp", "")

        if h.get("Content-Type") != "application/cloudevents+json":
            problems.append("Content-Type is %r" % h.get("Content-Type"))
        if not h.get("User-Agent", "").startswith("provwatch/"):
            problems.append("User-Agent is %r" % h.get("User-Agent"))
        if not msg_id:
            problems.append("no webhook-id")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            problems.append("webhook-timestamp %r is not the current Unix time" % timestamp)

        signature_ok = None
        if state.key is not None:
            sig = h.get("webhook-signature")
            signature_ok = bool(sig) and signature_matches(state.key, msg_id, timestamp, body, sig)
            if not signature_ok:
                problems.append("bad or missing webhook-signature")
        elif "webhook-signature" in h:
            problems.append("webhook-signature without a secret")

        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError as e:
            problems.append("body is not a JSON object: %s" % e)
            event = None
        ev = event or {}
        data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        if event is not None:
            if ev.get("specversion") != "1.0":
                problems.append("specversion is %r" % ev.get("specversion"))
            if ev.get("id") != msg_id:
                problems.append("webhook-id differs from the event id")

        status, retry_after, hang = state.next_answer(data.get("order_id"))
        if hang > 0:
            time.sleep(hang)
        state.record({
            "id": msg_id,
            "timestamp": timestamp,
            "signature_ok": signature_ok,
            "type": ev.get("type"),
            "subject": ev.get("subject"),
            "order": data.get("order_id"),
            "body": event,
            "received": time.time(),
            "mono": mono,
            "path": self.path,
            "headers": dict(h.items()),
            "answered": status,
            "problems": problems,
        })
        headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
        self.reply(status, None, headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging answer does not hold up exit
    request_queue_size = 512  # listen backlog: many webhooks may connect at once (the default is 5)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # e.g. the client timed out first
            super().handle_error(request, client_address)


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".port.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--secret", help='"whsec_<base64>" or the raw key')
    g.add_argument("--secret-file")
    args = p.parse_args()

    key = None
    if args.secret is not None:
        key = decode_secret(args.secret.encode())
    elif args.secret_file is not None:
        with open(args.secret_file, "rb") as f:
            key = decode_secret(f.read())

    server = Server(("127.0.0.1", 0), Handler)
    server.state = State(key, args.log)
    open(args.log, "a").close()

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_atomic(args.port_file, "%d\n" % server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
