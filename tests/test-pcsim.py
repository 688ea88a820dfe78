#!/usr/bin/env python3
"""Self-test of tests/pcsim.py, the Partner Center simulator.

Starts the simulator as subprocesses on loopback and checks its main features: tokens
and rotation, the provisioning-status API, scripted orders, the control API, every fault
kind, rate limiting, determinism, TLS and clean shutdown. Standard library only; every
network operation has a timeout. Exit status 0 on success, 1 on failure.
"""

from __future__ import annotations

import ctypes
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Any
from urllib.parse import quote, urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
PCSIM = os.path.join(HERE, "pcsim.py")
RESOURCE = "https://api.partnercenter.microsoft.com"
BOM = b"\xef\xbb\xbf"
OVERALL_TIMEOUT = 60
FIXTURES = os.path.join(HERE, "fixtures")
MS_CV = re.compile(r"^[A-Za-z0-9+/]{22}\.[0-9]$")


def wait_for(pred: Any, timeout: float = 5, what: str = "a condition") -> Any:
    """Polls pred until it returns something true; bounded."""
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def fixture(name: str) -> Any:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


def flt(field: str, value: str, operator: str = "equals") -> str:
    """The URL-encoded filter parameter, compact JSON as provwatch sends it."""
    return quote(json.dumps({"Field": field, "Value": value, "Operator": operator},
                            separators=(",", ":")), safe="")

SCENARIO = {"orders": [
    {"customer": "c1", "order": "o1", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "steps": [
            {"status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 5}},
            {"status": "prefulfillmentpending",
             "quantities": {"fulfilled": 3, "prefulfillmentpending": 2}},
            {"status": "fulfilled", "quantities": {"fulfilled": 5}}]}]},
    {"customer": "c1", "order": "two", "manual": True, "line_items": [
        {"number": 0, "olid": 0, "status": "fulfilled", "quantities": {"fulfilled": 1}},
        {"number": 1, "status": "prefulfillmentpending", "qpi": "empty"}]},
    {"customer": "c2", "order": "shapes", "manual": True, "line_items": [
        {"number": 0, "status": "PrefulfillmentPending"},
        {"number": 1, "olid": 7, "status": "fulfilled",
         "quantities": [["fulfilled", 2], ["fulfilled", 1], ["Fulfilled", 0]]}]},
    {"customer": "c3", "order": "timed", "line_items": [
        {"number": 0, "steps": [
            {"at": 0, "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 1}},
            {"at": 0.6, "status": "fulfilled", "quantities": {"fulfilled": 1}}]}]},
    {"customer": "c3", "order": "late", "visible_after": 60, "line_items": [
        {"number": 0, "status": "fulfilled"}]},
]}


def _die_with_parent() -> None:
    """In the child: get SIGTERM if this test process dies, so no simulator outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Sim:
    """One simulator subprocess with small HTTP helpers."""

    def __init__(self, *args: str, host: str = "127.0.0.1", tls: tuple[str, str] | None = None,
                 scenario: dict[str, Any] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="pcsim-test-")
        self.host = host
        self.port_file = os.path.join(self.dir, "port")
        cmd = [sys.executable, PCSIM, "--host", host, "--port-file", self.port_file,
               "--log", os.path.join(self.dir, "log"), *args]
        if scenario is not None:
            path = os.path.join(self.dir, "scenario.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(scenario, f)
            cmd += ["--scenario", path]
        self.tls_ctx = None
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
            self.tls_ctx = ssl.create_default_context(cafile=tls[0])
        self.stdout = open(os.path.join(self.dir, "stdout"), "w+b")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+b")
        self.proc = subprocess.Popen(cmd, stdout=self.stdout, stderr=self.stderr,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"pcsim did not start: {self.read('stderr')!r}")
            time.sleep(0.01)
        with open(self.port_file, encoding="ascii") as f:
            self.port = int(f.read())

    def read(self, name: str) -> str:
        with open(os.path.join(self.dir, name), encoding="utf-8", errors="replace") as f:
            return f.read()

    def conn(self, tls: bool | None = None, timeout: float = 5) -> http.client.HTTPConnection:
        use_tls = self.tls_ctx is not None if tls is None else tls
        if use_tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.tls_ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, conn: http.client.HTTPConnection | None = None,
                tls: bool | None = None, timeout: float = 5) -> tuple[int, Any, bytes]:
        c = conn or self.conn(tls, timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            if conn is None:
                c.close()

    def control(self, method: str, path: str, obj: Any = None) -> tuple[int, Any]:
        body = None if obj is None else json.dumps(obj).encode()
        status, _, data = self.request(method, "/_control" + path, body,
                                       {"Content-Type": "application/json"}, tls=False)
        return status, json.loads(data)

    def ok(self, method: str, path: str, obj: Any = None) -> Any:
        status, answer = self.control(method, path, obj)
        assert status == 200, (status, answer)
        return answer

    def token(self, tenant: str = "tenant-a", **form: str) -> tuple[int, Any, bytes]:
        return self.request("POST", f"/{tenant}/oauth2/token", urlencode(form).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def access_token(self, tenant: str = "tenant-a") -> str:
        rt = self.ok("GET", "/refresh-token")["refresh_token"]
        status, _, body = self.token(tenant, grant_type="refresh_token", client_id="test-client",
                                     client_secret="test-secret", resource=RESOURCE,
                                     refresh_token=rt)
        assert status == 200, body
        return json.loads(body)["access_token"]

    def api(self, customer: str, order: str, token: str | None, query: str = "",
            headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any, bytes]:
        h = {"Accept": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        return self.request("GET", f"/v1/customers/{customer}/orders/{order}/provisioningstatus"
                            + query, headers=h, **kw)

    def pc(self, path: str, token: str | None, headers: dict[str, str] | None = None,
           **kw: Any) -> tuple[int, Any, Any]:
        """GET /v1{path}; the body parsed as JSON."""
        h = {"Accept": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        status, hdrs, body = self.request("GET", "/v1" + path, headers=h, **kw)
        return status, hdrs, json.loads(body) if body else None

    def pages(self, path: str, token: str) -> list[Any]:
        """Every page of a collection, following links.next with its headers."""
        out = []
        status, _, page = self.pc(path, token)
        assert status == 200, (status, page)
        out.append(page)
        while "next" in page["links"]:
            nxt = page["links"]["next"]
            status, _, page = self.pc(nxt["uri"], token, {
                h["key"]: h["value"] for h in nxt["headers"]})
            assert status == 200, (status, page)
            out.append(page)
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = -9
        out = self.read("stdout")
        gone = not os.path.exists(self.port_file)
        self.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert out == "", f"pcsim wrote to stdout: {out!r}"
        assert gone, "port file left behind"
        return rc


class PcsimTest(unittest.TestCase):
    sim: Sim

    @classmethod
    def setUpClass(cls) -> None:
        cls.sim = Sim("--seed", "1", scenario=SCENARIO)

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.sim.stop() == 0

    def setUp(self) -> None:
        self.sim.ok("DELETE", "/fault")

    def fault(self, **spec: Any) -> int:
        return self.sim.ok("POST", "/fault", spec)["id"]

    def get(self, customer: str = "c1", order: str = "o1", **kw: Any) -> tuple[int, Any, bytes]:
        return self.sim.api(customer, order, self.sim.access_token(), **kw)

    # -- tokens -----------------------------------------------------------------------------

    def test_token_refresh_rotation(self) -> None:
        s = self.sim
        base = {"grant_type": "refresh_token", "client_id": "test-client", "resource": RESOURCE}
        rt = s.ok("GET", "/refresh-token")["refresh_token"]
        status, _, body = s.token(**base, client_secret="wrong", refresh_token=rt)
        self.assertEqual((status, json.loads(body)["error"]), (401, "invalid_client"))
        status, _, body = s.token(**base, client_secret="test-secret", refresh_token="nope")
        err = json.loads(body)
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        self.assertTrue(err["error_description"].startswith("AADSTS700082"))
        status, _, body = s.request("POST", "/t/oauth2/token", b"{}",
                                    {"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)["error"]), (400, "invalid_request"))

        status, headers, body = s.token(**base, client_secret="test-secret", refresh_token=rt)
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json; charset=utf-8")
        tok = json.loads(body)
        self.assertEqual(tok["expires_in"], "3600")
        self.assertEqual(tok["token_type"], "Bearer")
        self.assertEqual(tok["resource"], RESOURCE)
        self.assertTrue(tok["access_token"].startswith("at-"))
        self.assertTrue(tok["refresh_token"].startswith("rt-"))
        self.assertEqual(s.ok("GET", "/refresh-token")["refresh_token"], tok["refresh_token"])
        # not strict: the redeemed token stays valid
        status, _, _ = s.token(**base, client_secret="test-secret", refresh_token=rt)
        self.assertEqual(status, 200)
        # strict: the redeemed token is refused at once
        s.ok("POST", "/config", {"strict_rotation": True})
        try:
            cur = s.ok("GET", "/refresh-token")["refresh_token"]
            self.assertEqual(s.token(**base, client_secret="test-secret",
                                     refresh_token=cur)[0], 200)
            self.assertEqual(s.token(**base, client_secret="test-secret",
                                     refresh_token=cur)[0], 400)
            self.assertEqual(s.ok("GET", "/stats")["valid_refresh_tokens"], 1)
        finally:
            s.ok("POST", "/config", {"strict_rotation": False})
        # chunked request bodies are understood too
        c = s.conn()
        try:
            form = urlencode({**base, "client_secret": "test-secret",
                              "refresh_token": s.ok("GET", "/refresh-token")["refresh_token"]})
            c.request("POST", "/t/oauth2/token", body=iter([form.encode()]), encode_chunked=True,
                      headers={"Content-Type": "application/x-www-form-urlencoded",
                               "Transfer-Encoding": "chunked"})
            self.assertEqual(c.getresponse().status, 200)
        finally:
            c.close()

    def test_client_credentials(self) -> None:
        status, _, body = self.sim.token(grant_type="client_credentials", client_id="test-client",
                                         client_secret="test-secret", resource=RESOURCE)
        self.assertEqual(status, 200)
        tok = json.loads(body)
        self.assertNotIn("refresh_token", tok)
        self.assertEqual(self.sim.api("c1", "o1", tok["access_token"])[0], 200)

    def test_token_expiry(self) -> None:
        s = self.sim
        at = s.access_token()
        self.assertEqual(s.api("c1", "o1", at)[0], 200)
        self.assertGreaterEqual(s.ok("POST", "/tokens/expire")["expired"], 1)
        status, headers, body = s.api("c1", "o1", at)
        self.assertEqual(status, 401)
        self.assertIn("description", json.loads(body))
        s.ok("POST", "/config", {"token_ttl": 1})
        try:
            at = s.access_token()
            self.assertEqual(s.api("c1", "o1", at)[0], 200)
            time.sleep(1.05)
            self.assertEqual(s.api("c1", "o1", at)[0], 401)
        finally:
            s.ok("POST", "/config", {"token_ttl": 3600})
        self.assertEqual(s.api("c1", "o1", None)[0], 401)
        self.assertEqual(s.api("c1", "o1", "at-999-bogus")[0], 401)
        reqs = s.ok("GET", "/requests?kind=api")["requests"]
        self.assertIn("expired", {r["auth"] for r in reqs})
        self.assertIn("missing", {r["auth"] for r in reqs})

    # -- API --------------------------------------------------------------------------------

    def test_api_body_and_keepalive(self) -> None:
        s = self.sim
        at = s.access_token()
        conn = s.conn()
        try:
            status, headers, body = s.api("c1", "two", at, conn=conn)
            sock = conn.sock
            self.assertEqual(status, 200)
            self.assertEqual(headers["Content-Type"], "application/json; charset=utf-8")
            self.assertEqual(int(headers["Content-Length"]), len(body))
            self.assertEqual(body, b'{"totalCount":2,"items":[{"orderLineItemId":0,'
                             b'"lineItemNumber":0,"status":"fulfilled",'
                             b'"quantityProvisioningInformation":[{"quantity":1,'
                             b'"status":"fulfilled"}]},{"lineItemNumber":1,'
                             b'"status":"prefulfillmentpending",'
                             b'"quantityProvisioningInformation":[]}],'
                             b'"attributes":{"objectType":"Collection"}}')
            status, _, body = s.api("c2", "shapes", at, conn=conn)
            self.assertIs(conn.sock, sock, "keep-alive connection was not reused")
            items = json.loads(body)["items"]
            self.assertEqual(items[0], {"lineItemNumber": 0, "status": "PrefulfillmentPending"})
            self.assertEqual(items[1]["orderLineItemId"], 7)
            self.assertEqual([q["quantity"] for q in items[1]["quantityProvisioningInformation"]],
                             [2, 1, 0])
        finally:
            conn.close()

    def test_not_found_and_visibility(self) -> None:
        s = self.sim
        status, _, body = self.get("c1", "missing")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body), {"code": 20000, "description": "Order ID not found",
                                            "data": [], "source": "PartnerFD"})
        self.assertEqual(self.get("c3", "late")[0], 404)
        s.ok("POST", "/set", {"customer": "c9", "order": "lag", "visible_after": 0.3,
                              "line_items": [{"number": 0, "status": "fulfilled"}]})
        self.assertEqual(self.get("c9", "lag")[0], 404)
        time.sleep(0.35)
        self.assertEqual(self.get("c9", "lag")[0], 200)
        self.assertTrue(s.ok("POST", "/remove", {"customer": "c9", "order": "lag"})["removed"])
        self.assertEqual(self.get("c9", "lag")[0], 404)
        self.assertEqual(s.request("GET", "/nowhere")[0], 404)

    def test_advance_set_and_changes(self) -> None:
        s = self.sim
        since = s.ok("GET", "/changes")["next"]
        s.ok("POST", "/set", {"customer": "c8", "order": "m", "line_items": [
            {"number": 0, "olid": 0, "status": "prefulfillmentpending",
             "quantities": {"prefulfillmentpending": 4}}]})
        st = s.ok("POST", "/set", {"customer": "c8", "order": "m", "line_items": [
            {"number": 0, "olid": 0, "status": "prefulfillmentpending",
             "quantities": [["fulfilled", 1], ["fulfilled", 1], ["prefulfillmentpending", 2]]},
            {"number": 1, "status": "fulfilled", "qpi": "empty"}]})["order"]
        self.assertEqual(st["line_items"][0]["quantities"],
                         {"fulfilled": 2, "prefulfillmentpending": 2})
        changes = s.ok("GET", f"/changes?since={since}")["changes"]
        self.assertEqual([(c["kind"], c["number"], c["cause"]) for c in changes],
                         [("added", 0, "set"), ("changed", 0, "set"), ("added", 1, "set")])
        self.assertEqual(changes[1]["old_quantities"], {"prefulfillmentpending": 4})
        for key in ("mono", "wall", "t", "status", "quantities", "customer", "order"):
            self.assertIn(key, changes[0])

        st = s.ok("POST", "/advance", {"customer": "c1", "order": "o1"})["orders"][0]
        self.assertEqual(st["line_items"][0]["quantities"],
                         {"fulfilled": 3, "prefulfillmentpending": 2})
        body = json.loads(self.get()[2])
        self.assertEqual(body["items"][0]["quantityProvisioningInformation"],
                         [{"quantity": 3, "status": "fulfilled"},
                          {"quantity": 2, "status": "prefulfillmentpending"}])
        s.ok("POST", "/advance", {})
        s.ok("POST", "/advance", {})  # stays on the last step: no change recorded
        self.assertEqual(json.loads(self.get()[2])["items"][0]["status"], "fulfilled")
        mine = [c for c in s.ok("GET", f"/changes?since={since}")["changes"]
                if c["order"] == "o1"]
        self.assertEqual([c["status"] for c in mine], ["prefulfillmentpending", "fulfilled"])
        self.assertEqual(s.control("POST", "/advance", {"customer": "c3", "order": "timed"})[0],
                         409)
        self.assertEqual(s.control("POST", "/advance", {"customer": "x", "order": "y"})[0], 404)
        self.assertEqual(s.control("POST", "/set", {"customer": "x"})[0], 400)
        self.assertEqual(s.control("POST", "/fault", {"kind": "nonsense"})[0], 400)

    def test_time_driven(self) -> None:
        s = self.sim
        while s.ok("GET", "/stats")["uptime"] < 0.8:
            time.sleep(0.05)
        self.assertEqual(json.loads(self.get("c3", "timed")[2])["items"][0]["status"],
                         "fulfilled")
        timed = [c for c in s.ok("GET", "/changes")["changes"] if c["order"] == "timed"]
        self.assertEqual(len(timed), 1)
        self.assertEqual(timed[0]["cause"], "schedule")
        self.assertGreaterEqual(timed[0]["t"], 0.6)

    def test_rate_limit(self) -> None:
        s = self.sim
        at = s.access_token("rl-tenant")
        other = s.access_token("other-tenant")
        s.ok("POST", "/config", {"tenant_limit": 3})
        try:
            before = s.ok("GET", "/stats")["rate_limited"]
            self.assertEqual([s.api("c1", "o1", at)[0] for _ in range(3)], [200] * 3)
            status, headers, body = s.api("c1", "o1", at)
            self.assertEqual(status, 429)
            self.assertTrue(1 <= int(headers["Retry-After"]) <= 60)
            msg = json.loads(body)
            self.assertEqual(msg["statusCode"], 429)
            self.assertIn(f"Try again in {headers['Retry-After']} seconds", msg["message"])
            self.assertEqual(s.api("c1", "o1", other)[0], 200)  # per tenant
            self.assertEqual(s.ok("GET", "/stats")["rate_limited"], before + 1)
        finally:
            s.ok("POST", "/config", {"tenant_limit": 500})

    def test_request_log(self) -> None:
        s = self.sim
        since = s.ok("GET", "/requests")["next"]
        at = s.access_token("log-tenant")
        hdr = {"MS-CorrelationId": "corr-1", "MS-RequestId": "req-1", "X-Locale": "en-US",
               "User-Agent": "provwatch/0.2.0"}
        status, headers, _ = s.api("c1", "o1", at, headers=hdr)
        self.assertEqual(headers["MS-CorrelationId"], "corr-1")
        log = s.ok("GET", f"/requests?since={since}")
        self.assertEqual([r["kind"] for r in log["requests"]], ["token", "api"])
        tok, api = log["requests"]
        self.assertEqual(tok["tenant"], "log-tenant")
        self.assertEqual(tok["token"]["grant_type"], "refresh_token")
        self.assertEqual(tok["token"]["refresh_token"], "valid")
        self.assertEqual(tok["headers"]["Content-Type"], "application/x-www-form-urlencoded")
        self.assertEqual((api["status"], api["auth"], api["tenant"]), (200, "valid", "log-tenant"))
        self.assertEqual({k: api["headers"][k] for k in hdr}, hdr)
        self.assertEqual(api["headers"]["Accept"], "application/json")
        for key in ("mono", "wall", "method", "path", "index"):
            self.assertIn(key, api)
        self.assertEqual(log["next"], api["index"] + 1)
        self.assertEqual(s.ok("GET", f"/requests?since={log['next']}")["requests"], [])
        text = json.dumps(s.ok("GET", "/requests")) + s.read("log")
        self.assertNotIn(at, text)
        stats = s.ok("GET", "/stats")
        self.assertGreaterEqual(stats["by_kind"]["api"], 1)
        self.assertGreaterEqual(stats["by_status"]["200"], 1)
        self.assertGreaterEqual(stats["tokens_issued"], 1)

    # -- faults on the API --------------------------------------------------------------------

    def test_fault_status_and_count(self) -> None:
        s = self.sim
        fid = self.fault(kind="status", status=503, retry_after=7, count=2, order="o1")
        self.assertEqual(len(s.ok("GET", "/fault")["faults"]), 1)
        self.assertEqual(self.get("c1", "two")[0], 200)  # restricted to o1
        status, headers, body = self.get()
        self.assertEqual((status, headers["Retry-After"]), (503, "7"))
        self.assertIn("description", json.loads(body))
        self.assertEqual(self.get()[0], 503)
        self.assertEqual(self.get()[0], 200)  # count exhausted
        self.assertEqual(s.ok("DELETE", f"/fault/{fid}")["deleted"], 0)
        fid = self.fault(kind="status", status=500, skip=1)
        self.assertEqual([self.get()[0] for _ in range(3)], [200, 500, 500])
        self.assertEqual(s.ok("DELETE", f"/fault/{fid}")["deleted"], 1)
        for code in (400, 401, 403, 404):
            self.fault(kind="status", status=code, count=1)
            status, _, body = self.get()
            self.assertEqual(status, code)
            self.assertIn("code", json.loads(body))
        self.fault(kind="status", status=500, body="oops", content_type="text/plain", count=1)
        self.assertEqual(self.get()[2], b"oops")

    def test_fault_429(self) -> None:
        self.fault(kind="429", count=1)
        status, headers, body = self.get()
        self.assertEqual((status, headers["Retry-After"]), (429, "1"))
        self.assertEqual(json.loads(body)["statusCode"], 429)
        self.fault(kind="429", retry_after=None, count=1)
        status, headers, _ = self.get()
        self.assertEqual(status, 429)
        self.assertIsNone(headers["Retry-After"])

    def test_fault_bodies(self) -> None:
        normal = self.get()[2]
        self.fault(kind="malformed", count=1)
        status, _, body = self.get()
        self.assertEqual(status, 200)
        self.assertRaises(ValueError, json.loads, body)
        self.fault(kind="truncated", count=1)
        status, headers, body = self.get()
        self.assertEqual(body, normal[:len(normal) // 2])
        self.assertEqual(int(headers["Content-Length"]), len(body))
        self.fault(kind="bom", count=1)
        body = self.get()[2]
        self.assertEqual(body, BOM + normal)
        self.fault(kind="garbage", count=1)
        self.assertRaises(ValueError, json.loads, self.get()[2])
        self.fault(kind="huge", count=1)
        body = self.get()[2]
        self.assertGreater(len(body), 9 * 1024 * 1024)
        self.assertEqual(json.loads(body)["items"], json.loads(normal)["items"])

    def test_fault_transforms(self) -> None:
        self.fault(kind="uppercase", count=1)
        item = json.loads(self.get("c1", "two")[2])["items"][0]
        self.assertEqual(item["status"], "Fulfilled")
        self.fault(kind="unknown-status", count=1)
        self.assertEqual(json.loads(self.get()[2])["items"][0]["status"], "frobnicating")
        self.fault(kind="negative-quantity", count=1)
        q = json.loads(self.get()[2])["items"][0]["quantityProvisioningInformation"][0]
        self.assertLess(q["quantity"], 0)
        self.fault(kind="duplicate-line-item", count=1)
        items = json.loads(self.get()[2])["items"]
        self.assertEqual([i["lineItemNumber"] for i in items], [0, 0])
        expected = {"items": str, "totalCount": str, "status": int, "lineItemNumber": str,
                    "quantity": str, "quantityProvisioningInformation": str,
                    "orderLineItemId": str}
        for fld, typ in expected.items():
            self.fault(kind="wrong-type", field=fld, count=1)
            data = json.loads(self.get()[2])
            if fld in ("items", "totalCount"):
                value = data[fld]
            elif fld == "quantity":
                value = data["items"][0]["quantityProvisioningInformation"][0]["quantity"]
            else:
                value = data["items"][0][fld]
            self.assertIsInstance(value, typ, fld)
        self.fault(kind="uppercase", count=1)
        self.fault(kind="bom", count=1)  # faults combine
        body = self.get("c1", "two")[2]
        self.assertTrue(body.startswith(BOM))
        self.assertIn(b'"Fulfilled"', body)
        self.assertEqual(self.sim.ok("GET", "/stats")["active_faults"], 0)

    def test_fault_paginate(self) -> None:
        s = self.sim
        at = s.access_token()
        self.fault(kind="paginate", page_size=1, count=1)
        page1 = json.loads(s.api("c1", "two", at)[2])
        self.assertEqual(page1["totalCount"], 2)
        self.assertEqual([i["lineItemNumber"] for i in page1["items"]], [0])
        nxt = page1["links"]["next"]
        self.assertEqual(nxt["uri"], "/customers/c1/orders/two/provisioningstatus?seekOperation=Next")
        self.assertEqual(nxt["method"], "GET")
        self.assertEqual(nxt["headers"][0]["key"], "MS-ContinuationToken")
        self.assertEqual(page1["links"]["self"]["headers"], [])
        token = nxt["headers"][0]["value"]
        status, _, body = s.request("GET", "/v1" + nxt["uri"], headers={
            "Authorization": f"Bearer {at}", "MS-ContinuationToken": token})
        self.assertEqual(status, 200)
        page2 = json.loads(body)
        self.assertEqual([i["lineItemNumber"] for i in page2["items"]], [1])
        self.assertNotIn("next", page2["links"])
        self.assertEqual(s.request("GET", "/v1" + nxt["uri"],
                                   headers={"Authorization": f"Bearer {at}"})[0], 400)
        reqs = s.ok("GET", "/requests?kind=api")["requests"]
        self.assertEqual(reqs[-2]["headers"]["MS-ContinuationToken"], token)

    def test_fault_timing_and_reset(self) -> None:
        normal = self.get()[2]
        self.fault(kind="slow", delay=0.3, count=1)
        t0 = time.monotonic()
        self.assertEqual(self.get()[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.fault(kind="slowloris", delay=0.002, count=1)
        t0 = time.monotonic()
        self.assertEqual(self.get()[2], normal)
        self.assertGreaterEqual(time.monotonic() - t0, len(normal) * 0.002)
        self.fault(kind="reset", count=1)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.get()
        self.assertEqual(self.get()[0], 200)
        reqs = self.sim.ok("GET", "/requests?kind=api")["requests"]
        self.assertEqual(reqs[-2]["status"], 0)
        self.assertEqual(reqs[-2]["faults"], ["reset"])

    def test_request_log_answer_times(self) -> None:
        """done_mono: null while a slow answer is pending, then when it was written; a reset is
        done at once. change_index: which changes the answer shows."""
        s = self.sim
        s.ok("POST", "/set", {"customer": "c8", "order": "ci", "line_items": [
            {"number": 0, "status": "prefulfillmentpending"}]})
        since = s.ok("GET", "/requests")["next"]
        at = s.access_token()
        before = s.ok("GET", "/changes")["next"]
        self.fault(kind="slow", delay=0.5, count=1)
        got: list[tuple[bytes, float]] = []
        t = threading.Thread(
            target=lambda: got.append((s.api("c8", "ci", at)[2], time.monotonic())))
        t.start()
        pending = wait_for(lambda: s.ok("GET", f"/requests?since={since}&kind=api")["requests"],
                           5, "the slow request recorded")
        self.assertIsNone(pending[0]["done_mono"])
        self.assertEqual(pending[0]["change_index"], before)
        # a change while the answer waits is not in it: the answer was decided on arrival
        s.ok("POST", "/set", {"customer": "c8", "order": "ci", "line_items": [
            {"number": 0, "status": "fulfilled"}]})
        t.join(10)
        slow = s.ok("GET", f"/requests?since={since}&kind=api")["requests"][0]
        self.assertGreaterEqual(slow["done_mono"] - slow["mono"], 0.5)
        self.assertLessEqual(slow["done_mono"], got[0][1])
        self.assertEqual(json.loads(got[0][0])["items"][0]["status"], "prefulfillmentpending")
        self.assertEqual(s.api("c8", "ci", at)[0], 200)
        self.fault(kind="reset", count=1)
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            s.api("c8", "ci", at)
        fast, reset = s.ok("GET", f"/requests?since={slow['index'] + 1}&kind=api")["requests"]
        self.assertEqual(fast["change_index"], before + 1)
        self.assertGreaterEqual(fast["done_mono"], fast["mono"])
        self.assertEqual(reset["status"], 0)
        self.assertIsNotNone(reset["done_mono"])

    def test_fault_token(self) -> None:
        s = self.sim
        form = {"grant_type": "client_credentials", "client_id": "test-client",
                "client_secret": "test-secret", "resource": RESOURCE}
        s.ok("POST", "/fault", {"target": "token", "kind": "garbage", "count": 1})
        status, _, body = s.token(**form)
        self.assertEqual(status, 200)
        self.assertRaises(ValueError, json.loads, body)
        s.ok("POST", "/fault", {"target": "token", "kind": "invalid_grant", "count": 1})
        status, _, body = s.token(**form)
        self.assertEqual((status, json.loads(body)["error"]), (400, "invalid_grant"))
        s.ok("POST", "/fault", {"target": "token", "kind": "down", "count": 1})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            s.token(**form)
        s.ok("POST", "/fault", {"target": "token", "kind": "status", "status": 503, "count": 1})
        self.assertEqual(s.token(**form)[0], 503)
        self.assertEqual(s.token(**form)[0], 200)
        self.assertEqual(s.control("POST", "/fault", {"target": "token", "kind": "uppercase"})[0],
                         400)


DISCOVERY_SCENARIO = {"orders": [
    {"customer": "sc-cust", "customer_name": "Contoso Pharmaceuticals", "order": "sc-now",
     "placed": True, "line_items": [
         {"number": 0, "olid": 0, "offer_id": "CFQ7TTC0LF8Q:0001:CFQ7TTC0J1FV", "quantity": 7,
          "status": "prefulfillmentpending", "quantities": {"prefulfillmentpending": 7}}]},
    {"customer": "sc-old", "order": "sc-unplaced", "line_items": [
        {"number": 0, "status": "fulfilled", "quantities": {"fulfilled": 3}}]},
]}


class DiscoveryTest(unittest.TestCase):
    """Activity log, customers, placed orders, the simulated clock, MS-CV, auth alerts."""
    sim: Sim
    token: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.sim = Sim("--seed", "5", scenario=DISCOVERY_SCENARIO)
        cls.token = cls.sim.access_token()

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.sim.stop() == 0

    def setUp(self) -> None:
        self.sim.ok("DELETE", "/fault")

    def day(self, days: int = 0) -> str:
        """The simulated today plus days, YYYY-MM-DD."""
        today = datetime.date.fromisoformat(self.sim.ok("GET", "/clock")["today"])
        return (today + datetime.timedelta(days=days)).isoformat()

    def place(self, customer: str, **kw: Any) -> dict[str, Any]:
        body = {"customer": customer, "line_items": [{"number": 0, "quantity": 3}], **kw}
        return self.sim.ok("POST", "/place", body)

    def audit(self, query: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        return self.sim.pc("/auditrecords?" + query, self.token, headers)

    def customer_records(self, customer: str, start: int = -1) -> list[dict[str, Any]]:
        pages = self.sim.pages(f"/auditrecords?startDate={self.day(start)}&filter="
                               + flt("CustomerId", customer), self.token)
        return [r for p in pages for r in p["items"]]

    # -- activity log -----------------------------------------------------------------------

    def test_audit_record_shape(self) -> None:
        s = self.sim
        s.ok("POST", "/clock", {"now": "2026-12-01T09:14:02.5531200Z"})
        try:
            placed = s.ok("POST", "/place", {
                "customer": "7b21e0c4-58d9-4f0a-b3e6-91c2d4a6f8e0",
                "customer_name": "Fabrikam Ltd",
                "order": "q9XkT2mW7pL4vN8rB3sY6hJ1", "line_items": [
                    {"number": 0, "offer_id": "CFQ7TTC0LH18:0001:CFQ7TTC0KHS4", "quantity": 25},
                    {"number": 1, "offer_id": "CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF", "quantity": 25}]})
            # the fixture's first page, asked for exactly as it names itself
            want = fixture("auditrecords-orders-1.json")
            status, headers, page = s.pc(want["links"]["self"]["uri"], self.token)
        finally:
            s.ok("POST", "/clock", {"offset": 0})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json; charset=utf-8")
        self.assertEqual(page["links"]["self"], want["links"]["self"])
        self.assertEqual(page["attributes"], {"objectType": "Collection"})
        mine = next(r for r in page["items"] if r["customerId"] == placed["record"]["customerId"])
        self.assertEqual(mine, placed["record"])
        model = want["items"][0]
        self.assertEqual(list(mine), list(model))
        for key in ("partnerId", "participants", "customerId", "customerName", "resourceType",
                    "operationType", "operationStatus", "attributes", "userPrincipalName"):
            self.assertEqual(mine[key], model[key], key)
        self.assertTrue(mine["operationDate"].startswith("2026-12-01T09:14:0"))
        self.assertRegex(mine["operationDate"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
        self.assertRegex(mine["id"], "^" + re.escape(
            f"{model['partnerId']}_{model['customerId']}_q9XkT2mW7pL4vN8rB3sY6hJ1_createorder_")
            + r"\d{18}$")
        ticks = int(mine["id"].rsplit("_", 1)[1]) - 621355968000000000
        self.assertEqual(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ticks // 10**7))
                         + f".{ticks % 10**7:07d}Z", mine["operationDate"])
        self.assertEqual([d["key"] for d in mine["customizedData"]],
                         [d["key"] for d in model["customizedData"][:-1]])
        self.assertEqual(mine["customizedData"], model["customizedData"][:-1])
        order = json.loads(mine["resourceNewValue"])
        model_order = json.loads(model["resourceNewValue"])
        self.assertEqual(list(order), list(model_order))
        self.assertEqual(order["LineItems"][1], model_order["LineItems"][1])
        self.assertEqual((order["Id"], order["Status"], order["CreationDate"]),
                         ("q9XkT2mW7pL4vN8rB3sY6hJ1", "pending", mine["operationDate"]))
        self.assertEqual(order["Links"], model_order["Links"])

    def test_audit_paging(self) -> None:
        s = self.sim
        placed = [self.place("pg-cust", offset=50 - 10 * i)["record"] for i in range(5)]
        query = f"startDate={self.day(-1)}&size=2&filter={flt('CustomerId', 'pg-cust')}"
        status, headers, page = self.audit(query)
        self.assertEqual(status, 200)
        self.assertEqual(page["totalCount"], 5)
        self.assertEqual(page["items"], placed[:2])
        self.assertEqual(page["links"]["self"], {"uri": "/auditrecords?" + query,
                                                 "method": "GET", "headers": []})
        nxt = page["links"]["next"]
        self.assertEqual(nxt["uri"], "/auditrecords?" + query + "&seekOperation=Next")
        self.assertEqual(nxt["method"], "GET")
        self.assertEqual([h["key"] for h in nxt["headers"]], ["MS-ContinuationToken"])
        token = nxt["headers"][0]["value"]
        # a record added meanwhile shifts nothing: the result was fixed at the first page
        late = self.place("pg-cust", offset=45)["record"]
        seen = page["items"]
        while "next" in page["links"]:
            nxt = page["links"]["next"]
            status, _, page = s.pc(nxt["uri"], self.token, {"MS-ContinuationToken":
                                                            nxt["headers"][0]["value"]})
            self.assertEqual((status, page["totalCount"]), (200, 5))
            self.assertTrue(page["links"]["self"]["uri"].endswith("&seekOperation=Next"))
            seen += page["items"]
        self.assertEqual(seen, placed)
        self.assertEqual(len(self.customer_records("pg-cust")), 6)
        self.assertIn(late, self.customer_records("pg-cust"))
        # the continuation needs its header, and a known token
        status, headers, body = self.audit(query + "&seekOperation=Next")
        self.assertEqual((status, body["code"]), (400, "800002"))
        self.assertEqual(self.audit(query + "&seekOperation=Next",
                                    {"MS-ContinuationToken": "bm9wZQ=="})[0], 400)
        self.assertEqual(self.audit(query + "&seekOperation=Next",
                                    {"MS-ContinuationToken": token})[0], 200)
        log = s.ok("GET", "/requests?op=auditrecords")["requests"]
        self.assertEqual(log[-1]["headers"]["MS-ContinuationToken"], token)
        self.assertEqual(log[-1]["query"]["startDate"], self.day(-1))
        self.assertEqual(log[-1]["query"]["filter"],
                         '{"Field":"CustomerId","Value":"pg-cust","Operator":"equals"}')
        self.assertEqual(log[-1]["result"], "ok")
        self.assertEqual(log[-2]["result"], "bad_continuation")

    def test_audit_validation(self) -> None:
        s = self.sim
        bad = ["", "startDate=2026-13-01", "startDate=12%2F01%2F2026",
               f"startDate={self.day()}T00:00:00Z", f"startDate={self.day()}&size=0",
               f"startDate={self.day()}&size=501", f"startDate={self.day()}&size=x",
               f"startDate={self.day()}&endDate={self.day(-1)}",
               f"startDate={self.day()}&endDate=soon",
               f"startDate={self.day()}&filter=%7Bnot%20json",
               f"startDate={self.day()}&filter=" + flt("OperationType", "create_order"),
               f"startDate={self.day()}&filter=" + flt("ResourceType", "Order", "contains"),
               f"startDate={self.day()}&filter=" + quote('{"Field":"ResourceType"}')]
        for query in bad:
            status, headers, body = self.audit(query)
            self.assertEqual(status, 400, query)
            self.assertEqual(set(body), {"code", "description", "data", "source"}, query)
            self.assertRegex(headers["MS-CV"], MS_CV)
        status, _, body = self.audit(f"startDate={self.day(-91)}")
        self.assertEqual((status, body), (400, fixture("error-400-auditrecords-too-old.json")))
        self.assertEqual(self.audit(f"startDate={self.day(-90)}&size=500")[0], 200)
        self.assertEqual(self.audit(f"startDate={self.day(1)}")[2]["items"], [])
        status, _, _ = s.pc(f"/auditrecords?startDate={self.day()}", None)
        self.assertEqual(status, 401)
        results = [r["result"] for r in s.ok("GET", "/requests?op=auditrecords")["requests"][-4:]]
        self.assertEqual(results, ["too_old", "ok", "ok", "unauthorized"])
        self.assertIn("bad_request", {r["result"] for r in s.ok(
            "GET", "/requests?op=auditrecords")["requests"]})
        self.assertEqual(s.control("POST", "/place", {"customer": "x", "line_items": []})[0], 400)
        self.assertEqual(s.control("POST", "/place", {"customer": "x", "line_items": [
            {"quantity": 0}]})[0], 400)
        self.assertEqual(s.control("POST", "/place", {"customer": "x", "date": "yesterday",
                                                      "line_items": [{}]})[0], 400)
        self.assertEqual(s.control("POST", "/auditrecords", {"raw": [1]})[0], 400)
        self.assertEqual(s.control("POST", "/auditrecords", {"operation": "create_order",
                                                             "customer": "x"})[0], 400)
        self.assertEqual(s.control("POST", "/clock", {"offset": 1, "advance": 2})[0], 400)
        self.assertEqual(s.control("POST", "/clock", {"now": "2026-12-06"})[0], 400)
        self.assertEqual(s.control("POST", "/clock", {"offset": 1e300})[0], 400)
        self.assertEqual(s.ok("GET", "/clock")["offset"], 0)
        self.assertEqual(s.control("POST", "/auditrecords", {"raw": {},
                                                             "visible_after": 1e300})[0], 400)
        self.assertEqual(s.control("POST", "/config", {"audit_order": "up"})[0], 400)
        self.assertEqual(s.control("POST", "/config", {"audit_lag": -1})[0], 400)
        self.assertEqual(s.ok("GET", "/customers")["customers"].count("x"), 0)

    def test_audit_filters_and_raw_records(self) -> None:
        s = self.sim
        cust = "Raw-Cust-7e1c"
        good = self.place(cust, order="rawOrder1")["record"]
        other_types = [s.ok("POST", "/auditrecords", {"operation": op, "customer": cust,
                                                      "resource_type": rt})["record"]
                       for op, rt in (("update_customer", "customer"),
                                      ("create_subscription", "subscription"))]
        self.assertEqual(json.loads(other_types[0]["resourceNewValue"])["Id"], cust)
        no_id = s.ok("POST", "/auditrecords", {"operation": "update_order", "customer": cust,
                                               "order": "rawOrder1", "omit_id": True})["record"]
        self.assertNotIn("id", no_id)
        self.assertEqual(no_id["operationType"], "update_order")
        no_custom = s.ok("POST", "/auditrecords", {
            "operation": "create_order", "customer": cust, "order": "ghost", "status": "failed",
            "omit_customized": True})["record"]
        self.assertNotIn("customizedData", no_custom)
        self.assertIsNone(no_custom["resourceNewValue"])
        unparseable = s.ok("POST", "/auditrecords", {
            "operation": "create_order", "customer": cust, "order": "broken",
            "resource_new_value": "{\"Id\":"})["record"]
        self.assertEqual(unparseable["resourceNewValue"], "{\"Id\":")
        raw = {"customerId": cust, "resourceType": "Order", "operationType": "Create_Order",
               "resourceNewValue": "not json", "operationDate": "garbage"}
        answer = s.ok("POST", "/auditrecords", {"raw": raw})
        self.assertEqual(answer["record"], raw)
        self.assertEqual(answer["audit"]["customer"], cust)
        everything = self.customer_records(cust.upper())  # CustomerId in any case
        self.assertEqual(everything, [good, *other_types, no_id, no_custom, unparseable, raw])
        pages = self.sim.pages(f"/auditrecords?startDate={self.day(-1)}&filter="
                               + flt("ResourceType", "Order"), self.token)
        orders = [r for p in pages for r in p["items"]]
        self.assertTrue(all(r["resourceType"].lower() == "order" for r in orders))
        for rec in (good, no_id, no_custom, unparseable, raw):
            self.assertIn(rec, orders)
        for rec in other_types:
            self.assertNotIn(rec, orders)
        by_name = self.sim.pages(f"/auditrecords?startDate={self.day(-1)}&filter="
                                 + flt("CompanyName", cust[4:8].lower(), "substring"), self.token)
        self.assertIn(good, by_name[0]["items"])
        listed = s.ok("GET", "/auditrecords")["records"]
        self.assertEqual(listed[-1]["record"], raw)
        self.assertTrue(listed[-1]["visible"])

    def test_audit_order_desc(self) -> None:
        s = self.sim
        placed = [self.place("desc-cust", offset=30 - 10 * i)["record"] for i in range(3)]
        self.assertEqual(self.customer_records("desc-cust"), placed)
        s.ok("POST", "/config", {"audit_order": "desc"})
        try:
            self.assertEqual(self.customer_records("desc-cust"), placed[::-1])
        finally:
            self.assertEqual(s.ok("POST", "/config", {"audit_order": "asc"})["audit_order"], "asc")

    def test_audit_lag_and_visible_changes(self) -> None:
        s = self.sim
        since = s.ok("GET", "/changes")["next"]
        s.ok("POST", "/config", {"audit_lag": 0.4})
        try:
            t0 = time.monotonic()
            placed = self.place("lag-cust", line_items=[{"quantity": 4}])
            order = placed["order"]["order"]
            self.assertFalse(placed["audit"]["visible"])
            self.assertEqual(self.customer_records("lag-cust"), [])
            # the order itself answers at once: only the log lags
            self.assertEqual(s.api("lag-cust", order, self.token)[0], 200)
            explicit = s.ok("POST", "/auditrecords", {"raw": {"customerId": "lag-cust"},
                                                      "visible_after": 0.2})
            self.assertFalse(explicit["audit"]["visible"])
            deadline = time.monotonic() + 3
            while True:  # logged by the simulator itself, without a query
                vis = [c for c in s.ok("GET", f"/changes?since={since}")["changes"]
                       if c["kind"] == "audit_visible" and c["customer"] == "lag-cust"]
                if len(vis) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            self.assertEqual([c["record"] for c in vis], [None, placed["record"]["id"]])
            self.assertGreaterEqual(vis[0]["mono"] - t0, 0.2)
            self.assertGreaterEqual(vis[1]["mono"] - t0, 0.4)
            self.assertLess(vis[1]["mono"] - t0, 1.5)
            c = vis[1]
            self.assertEqual((c["order"], c["operation"], c["operation_status"],
                              c["resource_type"], c["operation_date"], c["cause"]),
                             (order, "create_order", "succeeded", "order",
                              placed["record"]["operationDate"], "audit"))
            for key in ("t", "wall", "sim", "index", "audit_index"):
                self.assertIn(key, c)
            self.assertEqual(len(self.customer_records("lag-cust")), 2)
            # a shorter lag applies to records still hidden
            s.ok("POST", "/config", {"audit_lag": 3600})
            hidden = self.place("lag-cust")
            self.assertEqual(len(self.customer_records("lag-cust")), 2)
            s.ok("POST", "/config", {"audit_lag": 0})
            self.assertIn(hidden["record"], self.customer_records("lag-cust"))
        finally:
            s.ok("POST", "/config", {"audit_lag": 0})

    def test_clock_and_midnight(self) -> None:
        s = self.sim
        tomorrow = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=1)
        before = f"{tomorrow - datetime.timedelta(days=1)}T23:59:30Z"
        try:
            clock = s.ok("POST", "/clock", {"now": before})
            self.assertTrue(clock["now"].startswith(before[:-1]))
            self.assertEqual(clock["today"], str(tomorrow - datetime.timedelta(days=1)))
            self.assertAlmostEqual(clock["offset"], clock["unix"] - time.time(), delta=1)
            self.assertGreater(clock["offset"], 0)
            self.assertAlmostEqual(s.ok("GET", "/clock")["unix"], clock["unix"], delta=1)
            a = self.place("mid-cust")
            self.assertTrue(a["record"]["operationDate"].startswith(before[:17]))
            self.assertTrue(a["order"]["created"].startswith(before[:17]))
            clock = s.ok("POST", "/clock", {"advance": 60})
            self.assertEqual(clock["today"], str(tomorrow))
            b = self.place("mid-cust")
            self.assertTrue(b["record"]["operationDate"].startswith(f"{tomorrow}T00:00:"))
            day1, day2 = tomorrow - datetime.timedelta(days=1), tomorrow
            q = "&filter=" + flt("CustomerId", "mid-cust")
            ids = lambda query: [r["id"] for r in self.audit(query + q)[2]["items"]]  # noqa: E731
            self.assertEqual(ids(f"startDate={day1}"), [a["record"]["id"], b["record"]["id"]])
            self.assertEqual(ids(f"startDate={day2}"), [b["record"]["id"]])
            self.assertEqual(ids(f"startDate={day1}&endDate={day1}"), [a["record"]["id"]])
            # the 90 days count from the simulated today
            self.assertEqual(self.audit(f"startDate={day2 - datetime.timedelta(days=90)}")[0], 200)
            self.assertEqual(self.audit(f"startDate={day1 - datetime.timedelta(days=90)}")[0], 400)
            rec = s.ok("GET", "/requests?op=auditrecords")["requests"][-1]
            self.assertAlmostEqual(rec["sim"] - rec["wall"], clock["offset"], delta=0.01)
            listed = s.pc("/customers/mid-cust/orders", self.token)[2]["items"]
            self.assertEqual([o["creationDate"] for o in listed],
                             [b["record"]["operationDate"], a["record"]["operationDate"]])
        finally:
            self.assertEqual(s.ok("POST", "/clock", {"offset": 0})["offset"], 0)

    # -- placed orders and customers ----------------------------------------------------------

    def test_place_status_and_customer_orders(self) -> None:
        s = self.sim
        since = s.ok("GET", "/changes")["next"]
        placed = s.ok("POST", "/place", {
            "customer": "pl-cust", "customer_name": "Tailspin Toys", "fulfil_after": 0.3,
            "line_items": [{"quantity": 10},
                           {"offer_id": "CFQ7TTC0LCHC:0002:CFQ7TTC0KDLJ", "quantity": 2}]})
        order = placed["order"]
        oid = order["order"]
        self.assertRegex(oid, r"^[A-Za-z0-9]{24}$")
        self.assertEqual((order["customer_name"], order["status"]), ("Tailspin Toys", "pending"))
        self.assertEqual([(li["number"], li["friendly_name"], li["quantity"])
                          for li in order["line_items"]],
                         [(0, "Microsoft 365 Business Premium", 10),
                          (1, "Exchange Online (Plan 1)", 2)])
        rec = placed["record"]
        self.assertEqual((rec["customerName"], rec["operationType"], rec["operationStatus"]),
                         ("Tailspin Toys", "create_order", "succeeded"))
        self.assertEqual(json.loads(rec["resourceNewValue"])["LineItems"][1]["Quantity"], 2)
        self.assertIn({"key": "SubscriptionName-1", "value": "Exchange Online (Plan 1)"},
                      rec["customizedData"])
        self.assertIn(rec, self.customer_records("pl-cust"))
        status, _, body = s.api("pl-cust", oid, self.token)
        self.assertEqual(status, 200)
        self.assertEqual([(i["lineItemNumber"], i["status"]) for i in json.loads(body)["items"]],
                         [(0, "prefulfillmentpending"), (1, "prefulfillmentpending")])
        status, _, listing = s.pc("/customers/pl-cust/orders", self.token)
        self.assertEqual(status, 200)
        want = fixture("customer-orders.json")
        self.assertEqual(set(listing), set(want))
        item = listing["items"][0]
        self.assertEqual(list(item), list(want["items"][0]))
        self.assertEqual(list(item["lineItems"][0]), list(want["items"][0]["lineItems"][0]))
        self.assertEqual((item["id"], item["status"], item["creationDate"]),
                         (oid, "pending", rec["operationDate"]))
        self.assertEqual(item["lineItems"][1]["friendlyName"], "Exchange Online (Plan 1)")
        self.assertEqual(item["links"]["provisioningStatus"]["uri"],
                         f"/customers/pl-cust/orders/{oid}/provisioningstatus")
        self.assertEqual(listing["links"]["self"]["uri"], "/customers/pl-cust/orders")
        mine = [c for c in s.ok("GET", f"/changes?since={since}")["changes"]
                if c["order"] == oid]
        self.assertEqual([(c["kind"], c["cause"]) for c in mine],
                         [("added", "place")] * 2 + [("audit_visible", "audit")])
        def completed() -> dict[str, Any] | None:
            listing = s.pc("/customers/pl-cust/orders", self.token)[2]
            return listing if listing["items"][0]["status"] == "completed" else None
        self.assertEqual(wait_for(completed, what="the order to complete")["items"][0]["links"],
                         {})
        self.assertEqual({c["status"] for c in s.ok("GET", f"/changes?since={since}")["changes"]
                          if c["order"] == oid and c["kind"] == "changed"}, {"fulfilled"})
        # an update adds a line item and writes its record in one call
        upd = s.ok("POST", "/auditrecords", {"operation": "update_order", "customer": "pl-cust",
                                             "order": oid, "fulfil_after": None,
                                             "add_line_items": [{"quantity": 5}]})
        self.assertEqual(len(json.loads(upd["record"]["resourceNewValue"])["LineItems"]), 3)
        self.assertEqual(upd["order"]["status"], "pending")
        items = json.loads(s.api("pl-cust", oid, self.token)[2])["items"]
        self.assertEqual([i["status"] for i in items],
                         ["fulfilled", "fulfilled", "prefulfillmentpending"])
        self.assertEqual(s.pc("/customers/pl-cust/orders", self.token)[2]["items"][0]["status"],
                         "pending")
        # ids, lag, conflicts
        self.assertEqual(s.control("POST", "/place", {"customer": "pl-cust", "order": oid,
                                                      "line_items": [{}]})[0], 409)
        late = self.place("pl-cust", order="pl-late", visible_after=60)
        self.assertFalse(late["order"]["visible"])
        self.assertEqual(s.api("pl-cust", "pl-late", self.token)[0], 404)
        self.assertEqual(len(s.pc("/customers/pl-cust/orders", self.token)[2]["items"]), 1)
        self.assertEqual(s.control("POST", "/auditrecords", {
            "operation": "update_order", "customer": "pl-cust", "order": "nope",
            "add_line_items": [{}]})[0], 404)
        manual = self.place("pl-cust", manual=True)["order"]
        st = s.ok("POST", "/advance", {"customer": "pl-cust", "order": manual["order"]})
        self.assertEqual(st["orders"][0]["line_items"][0]["status"], "fulfilled")

    def test_scenario_orders(self) -> None:
        s = self.sim
        records = [r for r in s.ok("GET", "/auditrecords")["records"]
                   if r["customer"] in ("sc-cust", "sc-old")]
        self.assertEqual([r["order"] for r in records], ["sc-now"])  # placed: true
        self.assertEqual(records[0]["record"]["customerName"], "Contoso Pharmaceuticals")
        self.assertEqual(s.ok("GET", "/orders?customer=sc-old")["orders"][0]["placed_at"], None)
        listed = s.pc("/customers/sc-cust/orders", self.token)[2]["items"]
        self.assertEqual([o["id"] for o in listed], ["sc-now"])
        self.assertEqual(listed[0]["lineItems"][0]["friendlyName"], "Microsoft 365 E3")
        self.assertEqual(listed[0]["lineItems"][0]["quantity"], 7)
        old = s.pc("/customers/sc-old/orders", self.token)[2]["items"][0]
        self.assertEqual((old["status"], old["links"]), ("completed", {}))
        self.assertEqual(old["lineItems"][0]["quantity"], 3)  # from its quantities
        self.assertEqual(old["lineItems"][0]["friendlyName"], "Microsoft 365 Business Premium")

    def test_customer_errors(self) -> None:
        s = self.sim
        status, headers, body = s.pc("/customers/nobody/orders", self.token)
        self.assertEqual((status, body["code"]), (404, 600008))
        self.assertRegex(headers["MS-CV"], MS_CV)
        self.assertEqual(s.ok("POST", "/customer", {"id": "empty-cust", "name": "Relecloud"})[
            "customer"]["companyProfile"]["companyName"], "Relecloud")
        status, _, body = s.pc("/customers/empty-cust/orders", self.token)
        self.assertEqual((status, body["totalCount"], body["items"]), (200, 0, []))
        self.assertEqual(s.pc("/customers?size=501", self.token)[0], 400)
        self.assertEqual(s.control("POST", "/customer", {"name": "x"})[0], 400)
        results = [r["result"] for r in s.ok("GET", "/requests?op=customer-orders")["requests"]]
        self.assertEqual(results[-2:], ["not_found", "ok"])

    # -- faults, MS-CV, the request log ---------------------------------------------------

    def test_faults_on_new_endpoints(self) -> None:
        s = self.sim
        q = f"startDate={self.day()}"
        fid = s.ok("POST", "/fault", {"target": "auditrecords", "kind": "429", "retry_after": 7,
                                      "count": 1})["id"]
        self.assertEqual(s.pc("/customers/sc-cust/orders/sc-now/provisioningstatus",
                              self.token)[0], 200)  # other targets pass
        status, headers, body = self.audit(q)
        self.assertEqual((status, headers["Retry-After"], body["statusCode"]), (429, "7", 429))
        self.assertRegex(headers["MS-CV"], MS_CV)
        self.assertEqual(self.audit(q)[0], 200)
        self.assertEqual(s.ok("DELETE", f"/fault/{fid}")["deleted"], 0)
        s.ok("POST", "/fault", {"target": "customers", "kind": "status", "status": 503,
                                "count": 1})
        self.assertEqual(s.pc("/customers", self.token)[0], 503)
        s.ok("POST", "/fault", {"target": "customer-orders", "kind": "status", "status": 500,
                                "customer": "sc-old", "count": 1})
        self.assertEqual(s.pc("/customers/sc-cust/orders", self.token)[0], 200)
        self.assertEqual(s.pc("/customers/sc-old/orders", self.token)[0], 500)
        s.ok("POST", "/fault", {"target": "auditrecords", "kind": "malformed", "count": 1})
        status, _, body = s.request("GET", f"/v1/auditrecords?{q}",
                                    headers={"Authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 200)
        self.assertRaises(ValueError, json.loads, body)
        s.ok("POST", "/fault", {"target": "auditrecords", "kind": "wrong-type", "count": 1})
        self.assertEqual(self.audit(q)[2]["items"], "not-a-list")
        s.ok("POST", "/fault", {"target": "auditrecords", "kind": "bom", "count": 1})
        self.assertTrue(s.request("GET", f"/v1/auditrecords?{q}", headers={
            "Authorization": f"Bearer {self.token}"})[2].startswith(BOM))
        s.ok("POST", "/fault", {"target": "customers", "kind": "reset", "count": 1})
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            s.pc("/customers", self.token)
        reset = s.ok("GET", "/requests?op=customers")["requests"][-1]
        self.assertEqual((reset["status"], reset["faults"], reset["ms_cv"]), (0, ["reset"], None))
        s.ok("POST", "/fault", {"target": "auditrecords", "kind": "slow", "delay": 0.2,
                                "count": 1})
        t0 = time.monotonic()
        self.assertEqual(self.audit(q)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        for bad in ({"target": "auditrecords", "kind": "uppercase"},
                    {"target": "customers", "kind": "429", "customer": "c"},
                    {"target": "customer-orders", "kind": "429", "order": "o"},
                    {"target": "auditrecords", "kind": "wrong-type", "field": "status"},
                    {"target": "nowhere", "kind": "429"}):
            self.assertEqual(s.control("POST", "/fault", bad)[0], 400, bad)
        self.assertEqual(s.ok("GET", "/stats")["active_faults"], 0)

    def test_ms_cv_and_request_log_op(self) -> None:
        s = self.sim
        since = s.ok("GET", "/requests")["next"]
        answers = [s.pc("/customers/sc-cust/orders/sc-now/provisioningstatus", self.token),
                   s.pc("/customers/sc-cust/orders/missing/provisioningstatus", self.token),
                   s.pc(f"/auditrecords?startDate={self.day()}", self.token),
                   s.pc("/customers?size=1", self.token),
                   s.pc("/customers/sc-cust/orders", self.token),
                   s.pc("/customers", None)]
        cvs = [headers["MS-CV"] for _, headers, _ in answers]
        for cv in cvs:
            self.assertRegex(cv, MS_CV)
        self.assertEqual(len(set(cvs)), len(cvs))
        s.access_token()
        log = s.ok("GET", f"/requests?since={since}")["requests"]
        self.assertEqual([(r["kind"], r["op"]) for r in log],
                         [("api", "provisioningstatus")] * 2 + [("api", "auditrecords"),
                          ("api", "customers"), ("api", "customer-orders"), ("api", "customers"),
                          ("token", "token")])
        self.assertEqual([r["ms_cv"] for r in log[:-1]], cvs)
        self.assertEqual([r["status"] for r in log], [200, 404, 200, 200, 200, 401, 200])
        self.assertIsNone(log[-1]["ms_cv"])
        self.assertEqual(log[3]["query"], {"size": "1"})
        self.assertEqual(log[0]["query"], {})
        self.assertEqual(len(s.ok("GET", f"/requests?since={since}&op=customers")["requests"]), 2)
        self.assertEqual(len(s.ok("GET", f"/requests?since={since}&kind=token")["requests"]), 1)
        stats = s.ok("GET", "/stats")
        self.assertGreaterEqual(stats["by_op"]["customer-orders"], 1)
        self.assertGreaterEqual(stats["audit_records"], stats["audit_visible"])
        # the tenant's budget is shared by every operation
        token = s.access_token("budget-tenant")
        s.ok("POST", "/config", {"tenant_limit": 3})
        try:
            paths = (f"/auditrecords?startDate={self.day()}", "/customers",
                     "/customers/sc-cust/orders",
                     "/customers/sc-cust/orders/sc-now/provisioningstatus")
            self.assertEqual([s.pc(p, token)[0] for p in paths], [200, 200, 200, 429])
            status, headers, _ = s.pc(f"/auditrecords?startDate={self.day()}", token)
            self.assertEqual(status, 429)
            self.assertTrue(1 <= int(headers["Retry-After"]) <= 60)
            self.assertRegex(headers["MS-CV"], MS_CV)
        finally:
            s.ok("POST", "/config", {"tenant_limit": 500})

    # -- token endpoint: auth alerts ----------------------------------------------------------

    def test_token_refusal_body_and_recovery(self) -> None:
        s = self.sim
        expired = fixture("token-error-refresh-expired.json")
        base = {"grant_type": "refresh_token", "client_id": "test-client",
                "client_secret": "test-secret", "resource": RESOURCE}
        old = s.ok("GET", "/refresh-token")["refresh_token"]
        self.assertEqual(s.ok("POST", "/config", {"invalid_grant_body": expired})[
            "invalid_grant_body"], expired)
        try:
            s.ok("POST", "/refresh-token", {"refresh_token": None})
            for _ in range(2):
                status, headers, body = s.token(**base, refresh_token=old)
                self.assertEqual((status, json.loads(body)), (400, expired))
            self.assertEqual(s.token(**base, refresh_token="guess")[0], 400)
            log = s.ok("GET", "/requests?kind=token")["requests"][-3:]
            self.assertEqual([(r["op"], r["result"], r["status"]) for r in log],
                             [("token", "invalid_grant", 400)] * 3)
            # consent gave a new refresh token: it works, and rotates as usual
            s.ok("POST", "/refresh-token", {"refresh_token": "consented-rt"})
            status, _, body = s.token(**base, refresh_token="consented-rt")
            self.assertEqual(status, 200)
            rotated = json.loads(body)["refresh_token"]
            self.assertEqual(s.ok("GET", "/refresh-token")["refresh_token"], rotated)
            self.assertEqual(s.token(**base, refresh_token=rotated)[0], 200)
            self.assertEqual(s.token(**base, refresh_token=old)[0], 400)
            # the same refusal as a fault, for a number of requests
            s.ok("POST", "/fault", {"target": "token", "kind": "invalid_grant", "body": expired,
                                    "count": 1})
            cur = s.ok("GET", "/refresh-token")["refresh_token"]
            status, _, body = s.token(**base, refresh_token=cur)
            self.assertEqual((status, json.loads(body)), (400, expired))
            self.assertEqual(s.token(**base, refresh_token=cur)[0], 200)
        finally:
            s.ok("POST", "/config", {"invalid_grant_body": None})
        status, _, body = s.token(**base, refresh_token="guess")
        self.assertEqual(json.loads(body), fixture("token-error-invalid-grant.json"))
        self.__class__.token = s.access_token()


class CustomerList(unittest.TestCase):
    def test_customers_paging(self) -> None:
        sim = Sim("--seed", "3", "--customers", "5")
        try:
            sim.ok("POST", "/customer", {"id": "e3f4a5b6-0c1d-4e2f-8a3b-5c6d7e8f9a0b",
                                         "name": "Northwind Traders"})
            token = sim.access_token()
            pages = sim.pages("/customers?size=4", token)
            self.assertEqual([len(p["items"]) for p in pages], [4, 2])
            self.assertEqual({p["totalCount"] for p in pages}, {6})
            self.assertEqual(pages[0]["links"]["self"]["uri"], "/customers?size=4")
            self.assertEqual(pages[0]["links"]["next"]["uri"],
                             "/customers?size=4&seekOperation=Next")
            items = [c for p in pages for c in p["items"]]
            self.assertEqual(len({c["id"] for c in items}), 6)
            want = fixture("customers.json")
            self.assertEqual(items[-1], want["items"][1])
            self.assertEqual(set(pages[0]), set(want) | {"links"})
            self.assertEqual(sim.pc("/customers", token)[2]["links"]["self"],
                             want["links"]["self"])
            self.assertEqual(sim.pc("/customers?size=4&seekOperation=Next", token)[0], 400)
            for c in items[:5]:
                status, _, body = sim.pc(f"/customers/{c['id']}/orders", token)
                self.assertEqual((status, body["items"]), (200, []))
            self.assertEqual(len(sim.ok("GET", "/customers")["customers"]), 6)
        finally:
            self.assertEqual(sim.stop(), 0)


class OtherInstances(unittest.TestCase):
    def test_help_and_bad_arguments(self) -> None:
        r = subprocess.run([sys.executable, PCSIM, "--help"], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"CONTROL API", r.stdout)
        for option in (b"--place-over", b"--fulfil-after", b"--customers", b"--clock",
                       b"--audit-lag", b"--audit-order", b"ACTIVITY LOG"):
            self.assertIn(option, r.stdout)
        r = subprocess.run([sys.executable, PCSIM, "--clock", "tomorrow"], capture_output=True,
                           timeout=10)
        self.assertEqual((r.returncode, r.stdout), (2, b""))
        r = subprocess.run([sys.executable, PCSIM, "--host", "0.0.0.0"], capture_output=True,
                           timeout=10)
        self.assertEqual((r.returncode, r.stdout), (2, b""))
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"orders": [{"customer": "c", "order": "o", "typo": 1}]}, f)
            f.flush()
            r = subprocess.run([sys.executable, PCSIM, "--scenario", f.name],
                               capture_output=True, timeout=10)
        self.assertEqual((r.returncode, r.stdout), (2, b""))
        self.assertIn(b"typo", r.stderr)

    def test_demo_scenario_loads(self) -> None:
        sim = Sim("--scenario", os.path.join(HERE, "scenarios", "demo.json"))
        try:
            orders = sim.ok("GET", "/orders")["orders"]
            self.assertEqual(len(orders), 4)
            self.assertEqual(sum(not o["visible"] for o in orders), 1)
            self.assertIn(2, [len(o["line_items"]) for o in orders])
        finally:
            self.assertEqual(sim.stop(), 0)

    def test_scenario_placed_at(self) -> None:
        sim = Sim(scenario={"orders": [
            {"customer": "c", "order": "later", "placed_at": 0.8, "visible_after": 0.5,
             "line_items": [{"number": 0, "steps": [
                 {"at": 0, "status": "prefulfillmentpending",
                  "quantities": {"prefulfillmentpending": 2}},
                 {"at": 3, "status": "fulfilled", "quantities": {"fulfilled": 2}}]}]}]})
        try:
            token = sim.access_token()
            checked = 0
            while sim.ok("GET", "/stats")["uptime"] < 0.5:
                checked += 1
                self.assertEqual(sim.api("c", "later", token)[0], 404)
                self.assertEqual(sim.pc("/customers/c/orders", token)[2]["items"], [])
                self.assertEqual(sim.ok("GET", "/auditrecords")["records"], [])
                time.sleep(0.05)
            self.assertGreater(checked, 0, "started too late to see the order unplaced")
            records = wait_for(lambda: sim.ok("GET", "/auditrecords")["records"],
                               what="the create_order record")
            self.assertEqual([(r["order"], r["record"]["operationType"]) for r in records],
                             [("later", "create_order")])
            self.assertGreaterEqual(sim.ok("GET", "/stats")["uptime"], 0.8)
            if sim.ok("GET", "/stats")["uptime"] < 1.2:  # visible_after counts from placed_at
                self.assertEqual(sim.api("c", "later", token)[0], 404)
            wait_for(lambda: sim.api("c", "later", token)[0] == 200, what="the order to answer")
            self.assertGreaterEqual(sim.ok("GET", "/stats")["uptime"], 1.3)
            listed = sim.pc("/customers/c/orders", token)[2]["items"]
            self.assertEqual([(o["id"], o["creationDate"]) for o in listed],
                             [("later", records[0]["record"]["operationDate"])])
        finally:
            self.assertEqual(sim.stop(), 0)

    def test_place_generator(self) -> None:
        args = ("--place", "6", "--place-over", "0.4", "--fulfil-after", "0.4", "--seed", "9",
                "--clock", "2026-12-06T23:59:00Z", "--audit-lag", "0.1")
        a, b = Sim(*args), Sim(*args)
        try:
            self.assertTrue(a.ok("GET", "/clock")["now"].startswith("2026-12-06T23:59:0"))
            shape = lambda o: (o["customer"], o["customer_name"], o["order"], [  # noqa: E731
                (li["number"], li["offer_id"], li["friendly_name"], li["quantity"])
                for li in o["line_items"]])
            oa, ob = a.ok("GET", "/orders")["orders"], b.ok("GET", "/orders")["orders"]
            self.assertEqual([shape(o) for o in oa], [shape(o) for o in ob])
            self.assertEqual(len(oa), 6)
            for o in oa:
                self.assertRegex(o["order"], r"^[A-Za-z0-9]{24}$")
                self.assertTrue(1 <= len(o["line_items"]) <= 3)
                self.assertTrue(all(1 <= li["quantity"] <= 300 for li in o["line_items"]))
                self.assertEqual(len({li["offer_id"] for li in o["line_items"]}),
                                 len(o["line_items"]))
            def all_completed() -> list[dict[str, Any]] | None:
                orders = a.ok("GET", "/orders")["orders"]
                return orders if all(o["status"] == "completed" for o in orders) else None
            oa = wait_for(all_completed, what="every placed order to complete")
            records = a.ok("GET", "/auditrecords")["records"]
            self.assertEqual(sorted(r["order"] for r in records), sorted(o["order"] for o in oa))
            self.assertTrue(all(r["visible"] for r in records))
            names = {c["id"]: c["companyProfile"]["companyName"]
                     for c in a.ok("GET", "/customers")["customers"]}
            for r in records:
                self.assertEqual(r["record"]["customerName"], names[r["customer"]])
                self.assertTrue(r["record"]["operationDate"].startswith("2026-12-06T23:59:0"))
            changes = a.ok("GET", "/changes")["changes"]
            self.assertEqual(sum(c["kind"] == "audit_visible" for c in changes), 6)
            fulfilled = [c for c in changes
                         if c["kind"] == "changed" and c["status"] == "fulfilled"]
            self.assertEqual(len(fulfilled), sum(len(o["line_items"]) for o in oa))
            token = a.access_token()
            pages = a.pages("/auditrecords?startDate=2026-12-06&size=4&filter="
                            + flt("ResourceType", "Order"), token)
            self.assertEqual([len(p["items"]) for p in pages], [4, 2])
        finally:
            self.assertEqual(a.stop(), 0)
            self.assertEqual(b.stop(), 0)

    def test_generate_deterministic(self) -> None:
        args = ("--generate", "200", "--in-flight", "40", "--change-every", "0.2", "--seed", "7")
        a, b = Sim(*args), Sim(*args)
        try:
            time.sleep(1.0)
            oa, ob = a.ok("GET", "/orders")["orders"], b.ok("GET", "/orders")["orders"]
            self.assertEqual(len(oa), 200)
            self.assertEqual(oa[0]["customer"], "cust-0")
            self.assertEqual(oa[199]["order"], "order-199")
            ca, cb = a.ok("GET", "/changes")["changes"], b.ok("GET", "/changes")["changes"]
            self.assertGreater(min(len(ca), len(cb)), 20)
            key = lambda c: (c["order"], c["status"], c["quantities"])  # noqa: E731
            n = min(len(ca), len(cb)) - 5  # the two started a moment apart
            self.assertEqual([key(c) for c in ca[:n]], [key(c) for c in cb[:n]])
            self.assertTrue(all(int(c["order"].split("-")[1]) < 40 for c in ca))
            # throughput over one keep-alive connection (a sanity bound, not a benchmark)
            at = a.access_token()
            conn = a.conn()
            t0 = time.monotonic()
            for i in range(300):
                status, _, _ = a.api(f"cust-{i % 50}", f"order-{i % 200}", at, conn=conn)
                self.assertEqual(status, 200)
            rate = 300 / (time.monotonic() - t0)
            conn.close()
            print(f"\n  throughput: {rate:.0f} req/s on one connection", file=sys.stderr)
            self.assertGreater(rate, 150)
        finally:
            self.assertEqual(a.stop(), 0)
            self.assertEqual(b.stop(), 0)

    def test_tls(self) -> None:
        if not shutil.which("openssl"):
            self.skipTest("openssl not installed")
        d = tempfile.mkdtemp(prefix="pcsim-tls-")
        try:
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                            "-subj", "/CN=pcsim-test", "-addext",
                            "subjectAltName=IP:127.0.0.1,DNS:localhost",
                            "-keyout", key, "-out", cert], check=True, capture_output=True,
                           timeout=15)
            sim = Sim(tls=(cert, key))
            try:
                self.assertEqual(sim.request("GET", "/_control/health", tls=True)[0], 200)
                self.assertEqual(sim.ok("GET", "/health"), {"ok": True})  # plain control
                at = sim.access_token()
                self.assertEqual(sim.api("c", "o", at)[0], 404)
                self.assertEqual(sim.api("c", "o", at, tls=False)[0], 400)
                untrusted = http.client.HTTPSConnection("127.0.0.1", sim.port, timeout=5,
                                                        context=ssl.create_default_context())
                with self.assertRaises(ssl.SSLError):
                    untrusted.request("GET", "/_control/health")
                untrusted.close()
                deadline = time.monotonic() + 3
                while sim.ok("GET", "/stats")["tls_handshake_failures"] < 1:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.02)
                reqs = sim.ok("GET", "/requests?kind=api")["requests"]
                self.assertTrue(reqs[0]["tls"])
            finally:
                self.assertEqual(sim.stop(), 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_ipv6(self) -> None:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        sim = Sim(host="::1")
        try:
            self.assertEqual(sim.ok("GET", "/health"), {"ok": True})
        finally:
            self.assertEqual(sim.stop(), 0)


def _overall_timeout(signum: int, frame: Any) -> None:
    raise TimeoutError(f"test-pcsim took more than {OVERALL_TIMEOUT} s")


def main() -> int:
    t0 = time.monotonic()
    # fails the running test; tearDown still stops the simulators
    signal.signal(signal.SIGALRM, _overall_timeout)
    signal.alarm(OVERALL_TIMEOUT)
    result = unittest.main(exit=False, verbosity=1).result
    print(f"test-pcsim: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
