#!/usr/bin/env python3
"""Self-test of tests/pcsim.py, the Partner Center simulator.

Starts the simulator as subprocesses on loopback and checks its main features: tokens
and rotation, the provisioning-status API, scripted orders, the control API, every fault
kind, rate limiting, determinism, TLS and clean shutdown. Standard library only; every
network operation has a timeout. Exit status 0 on success, 1 on failure.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Any
from urllib.parse import urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
PCSIM = os.path.join(HERE, "pcsim.py")
RESOURCE = "https://api.partnercenter.microsoft.com"
BOM = b"\xef\xbb\xbf"
OVERALL_TIMEOUT = 60

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


class OtherInstances(unittest.TestCase):
    def test_help_and_bad_arguments(self) -> None:
        r = subprocess.run([sys.executable, PCSIM, "--help"], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"CONTROL API", r.stdout)
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
