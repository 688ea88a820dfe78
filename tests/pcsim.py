#!/usr/bin/env python3
"""pcsim - a Microsoft Partner Center simulator for provwatch's tests, benchmarks and demo.

Python 3.11 standard library only. Serves, on one loopback listener, the Entra ID v1 token
endpoint, the Partner Center order provisioning-status endpoint, and a control API that
tests use to script orders, inject faults and read what the client did.

COMMAND LINE
    pcsim.py [--host 127.0.0.1|::1] [--port 0] [--port-file FILE]
             [--scenario FILE.json]... [--generate N] [--in-flight K] [--change-every SECONDS]
             [--seed S] [--tls-cert PEM --tls-key PEM]
             [--token-ttl SECONDS] [--strict-rotation] [--tenant-limit N] [--log FILE]
             [--refresh-token RT] [--client-id ID] [--client-secret S] [--history-max N]

    --host            loopback address to listen on (default 127.0.0.1; anything else is refused)
    --port            TCP port (default 0 = any free port)
    --port-file       once listening, write the bound port there (tmp file + rename, so a test
                      can wait for the file); removed again on a clean exit
    --scenario        JSON scenario file (below); may be repeated
    --generate N      add N generated orders: customer "cust-<i%50>", order "order-<i>",
                      i = 0..N-1, one line item (number 0, orderLineItemId 0)
    --in-flight K     the first K generated orders keep changing (default N//10); the
                      others are fulfilled and never change
    --change-every S  mean seconds between two changes of one in-flight order
                      (exponential inter-arrival; default 60)
    --seed S          make generated orders, their changes and the token values deterministic
    --tls-cert/--tls-key  serve HTTPS. The same port still answers plain HTTP for /_control
                      (the first byte tells TLS from HTTP); plain HTTP to any other path
                      gets 400, as nginx does
    --token-ttl       access token lifetime in seconds (default 3600); also "expires_in"
    --strict-rotation a redeemed refresh token becomes invalid at once (default: stays valid)
    --tenant-limit    API requests per tenant per sliding 60 s (default 500; 0 = unlimited)
    --log FILE        diagnostics and one line per request go there (default: diagnostics
                      only, to stderr). Nothing but --help ever goes to stdout
    --refresh-token   initial valid refresh token (default "initial-refresh-token")
    --client-id       expected client_id (default "test-client")
    --client-secret   expected client_secret (default "test-secret")
    --history-max N   request records and change records kept, each (default 200000;
                      older ones are dropped, indexes keep counting)

    SIGTERM/SIGINT stop it cleanly (exit 0). Bad arguments or scenario: exit 2.

TIME
    "t" values and scenario "at"/"visible_after" are seconds since the simulator started
    listening. "mono" values are CLOCK_MONOTONIC seconds (time.monotonic(), system-wide on
    Linux, so comparable with the daemon's monotonic clock); "wall" values are Unix seconds.

TOKEN ENDPOINT  POST /{tenant}/oauth2/token  (application/x-www-form-urlencoded, any tenant)
    grant_type=refresh_token: client_id, client_secret, resource, refresh_token required.
        The refresh token must be valid (initially --refresh-token). Every success issues a
        new one, "rt-<n>-<hex>", which becomes the current one; with --strict-rotation the
        redeemed one stops being valid.
    grant_type=client_credentials: client_id, client_secret, resource required.
    200: {"token_type":"Bearer","scope":"user_impersonation","expires_in":"<ttl>",
          "ext_expires_in":"<ttl>","expires_on":"<unix>","not_before":"<unix>",
          "resource":..,"access_token":"at-<n>-<hex>"[,"refresh_token":..]}  (strings, as v1 does)
    400 invalid_request (missing parameter / not form-encoded), 400 unsupported_grant_type,
    400 unauthorized_client (wrong client_id), 401 invalid_client (wrong secret),
    400 invalid_grant {"error":"invalid_grant","error_description":"AADSTS700082: ...",
    "error_codes":[700082]} (unknown, superseded or revoked refresh token).

API  GET /v{N}/customers/{customer}/orders/{order}/provisioningstatus
    Needs "Authorization: Bearer <valid unexpired access token>", else 401 with
    {"code":401,"description":..,"data":[],"source":"PartnerFD"} and WWW-Authenticate.
    The tenant of a request is the tenant path segment its token was issued for. Each tenant
    gets --tenant-limit requests per sliding 60 s (401s and 429s do not count); beyond that:
    429, Retry-After: <seconds until a slot frees, >= 1>,
    {"statusCode":429,"message":"Rate limit is exceeded. Try again in N seconds."}.
    200: {"totalCount":n,"items":[{"orderLineItemId":..,"lineItemNumber":..,"status":..,
          "quantityProvisioningInformation":[{"quantity":q,"status":..}]}],
          "attributes":{"objectType":"Collection"}}, Content-Type application/json; charset=utf-8.
    Unknown, removed or not yet visible order: 404
    {"code":20000,"description":"Order ID not found","data":[],"source":"PartnerFD"}.
    MS-CorrelationId and MS-RequestId are echoed in the response headers.

SCENARIO FILE
    {"orders": [{"customer": "c1", "order": "o1",
                 "visible_after": 0,      # seconds answering 404 (new-order lag); default 0
                 "manual": false,         # true: steps advance only through /_control/advance
                 "line_items": [{"number": 0, "olid": 0,      # olid optional: omitted if absent
                                 "steps": [STEP, ...]}]}]}
    STEP = {"at": 0,                      # seconds since start (ignored for manual orders)
            "status": "prefulfillmentpending",
            "quantities": {"fulfilled": 3, "prefulfillmentpending": 2}
                        | [["fulfilled", 2], ["fulfilled", 1]],   # repeated statuses, as sent
            "qpi": "omit" | "empty"}      # when quantities are {} or absent: omit the
                                          # quantityProvisioningInformation field (default) or send []
    A line item without "steps" may give status/quantities/qpi directly (one step at 0).
    A time-driven line item is absent from the answer until its first step's "at".
    Manual orders start at step 0; an advance moves every line item to its next step
    (staying on the last). Keys starting with "_" are comments. Unknown keys are errors.

CONTROL API  (/_control/..., JSON in and out, no auth; not recorded in the request log)
    GET    /_control/health          -> {"ok":true}
    GET    /_control/orders[?customer=C&order=O]  -> {"orders":[ORDER_STATE...]}
    POST   /_control/advance {"customer","order"} | {}  -> {"orders":[ORDER_STATE...]}
           (one manual order, or every manual order; 409 for a time-driven order)
    POST   /_control/set {"customer","order","line_items":[{"number","olid"?,"status",
           "quantities"?,"qpi"?}],"visible_after"?} -> {"order":ORDER_STATE}
           replaces the current state (creates the order if unknown). The order becomes
           manual: its pending scheduled/generated changes are cancelled.
    POST   /_control/remove {"customer","order"} -> {"removed":bool}; 404 from now on
    POST   /_control/fault {FAULT} -> {"id":n};  GET /_control/fault -> {"faults":[...]}
    DELETE /_control/fault  (all) -> {"deleted":n};  DELETE /_control/fault/{id} -> {"deleted":0|1}
    GET    /_control/requests[?since=I][&limit=L][&kind=api|token|other]
           -> {"next":I,"dropped":D,"requests":[RECORD...]}   (limit default 100000)
    GET    /_control/changes[?since=I][&limit=L] -> {"next":I,"dropped":D,"changes":[CHANGE...]}
    GET    /_control/stats -> {"uptime","requests","by_status":{"200":n,..},
           "by_kind":{"api","token","control","other"},"by_kind_status":{"api":{"200":n}..},
           "rate_limited","tokens_issued","refresh_tokens_issued","valid_refresh_tokens",
           "valid_access_tokens","faults_applied":{kind:n},"tls_handshake_failures",
           "orders","changes","active_faults"}
    POST   /_control/tokens/expire -> {"expired":n}   every access token is expired now
    GET    /_control/refresh-token -> {"refresh_token":current|null}
    POST   /_control/refresh-token {"refresh_token":"x"|null} -> only x is valid (null: none)
    POST   /_control/config {"tenant_limit"?,"token_ttl"?,"strict_rotation"?} -> current config
           (turning strict_rotation on leaves only the current refresh token valid)

    ORDER_STATE = {"customer","order","manual","visible","visible_at","line_items":[{"number",
        "olid","status","quantities","qpi","step","steps"}]}; "quantities" is the normalized
        map (statuses lowercased, summed, zero sums dropped), "qpi" what is sent
        ([[status,q],...] or null when omitted); a line item not yet present has status null.
    RECORD = {"index","t","mono","wall","method","path" (with query),"kind":"api|token|other",
        "tenant","status" (0 = connection reset, no answer),"auth":"valid|expired|unknown|
        malformed|missing","customer","order","faults":[kind...] (applied to this request),
        "result": api: ok|not_found|bad_continuation|fault|unauthorized|rate_limited|method;
        token: ok|invalid_grant|invalid_client|unauthorized_client|invalid_request|not_form|
        unsupported_grant_type|fault|method; other: no_route|plain_http_on_tls, "tls",
        "headers":{"MS-CorrelationId","MS-RequestId","X-Locale","Accept","User-Agent",
        "MS-ContinuationToken","Content-Type"} (null when absent; never Authorization),
        "token":{"grant_type","client_id","resource","refresh_token":"valid|superseded|
        unknown|missing","refresh_token_seq"} (token requests; seq 0 = the initial token)}
    CHANGE = {"index","t","mono","wall","customer","order","number","olid",
        "kind":"added|changed|removed|order_removed","status","quantities","old_status",
        "old_quantities","cause":"schedule|generate|advance|set|remove"}. Recorded only when
        the normalized state (lowercased status + quantity map) differs, i.e. exactly when a
        correct client would emit an event. Initial states and an order becoming visible
        (visible_after) are not changes.

FAULTS  POST /_control/fault
    {"kind": K, "target": "api"|"token" (default api), "customer"?, "order"? (api only),
     "count": n (default -1 = until deleted), "skip": n (let n matching requests pass first),
     ...kind parameters}
    Matching faults apply in installation order, each consuming one of its count; the first
    fault that replaces the answer ends the chain (later ones are not consumed). JSON
    transforms are not consumed by requests that answer 404/400; delays and byte transforms
    apply to any answer. Faults apply after the auth and rate-limit checks (a faulted request
    counts toward the tenant's limit).
    Replacing the answer:
      status       {"status":500|503|400|403|401|404|..,"body"?:str|json,"content_type"?,"retry_after"?}
      429          {"retry_after"?: seconds|str (default 1; null = no header)}, body as Partner Center
      malformed    200 with invalid JSON ("body"? overrides)
      garbage      200 with non-JSON text/html ("body"? overrides)
      reset, down  close the connection with a TCP RST, no answer
      invalid_grant  (token only) 400 invalid_grant
    Delay:       slow {"delay": s (default 1)} before answering
    Transforms of the JSON answer (api only unless noted):
      uppercase            line-item statuses CamelCase ("PrefulfillmentPending", "Fulfilled"),
                           quantity statuses alternately CamelCase and UPPER
      unknown-status       {"status"?: default "frobnicating"} for the first line item
      negative-quantity    first quantity becomes negative
      duplicate-line-item  the first line item appears twice (same lineItemNumber)
      wrong-type           {"field": items|totalCount|status|lineItemNumber|quantity|
                           quantityProvisioningInformation|orderLineItemId, "value"?: any}
                           defaults: "not-a-list", "one", 42, "zero", "three", "none", "zero";
                           item fields change in the first line item (one is added if none)
      paginate             {"page_size": n (default 1)}: links.next as Partner Center sends
                           it; the next page (?seekOperation=Next) needs the given
                           MS-ContinuationToken header, else 400 (code "800002")
      huge                 (api and token) a valid JSON body over 9 MiB
    Transforms of the bytes (api and token):
      bom                  prefix a UTF-8 byte-order mark
      truncated            only the first half of the body, Content-Length matching it
      slowloris            {"delay": s (default 0.05)} headers, then one body byte every s
"""

from __future__ import annotations

import argparse
import base64
import collections
import heapq
import http
import ipaddress
import json
import math
import os
import random
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, NamedTuple, Optional
from urllib.parse import parse_qs, quote, unquote

JSON_CT = "application/json; charset=utf-8"
BOM = b"\xef\xbb\xbf"
MAX_REQUEST_BODY = 1 << 20
HUGE_PADDING = 9 * 1024 * 1024 + 512 * 1024
RATE_WINDOW = 60.0
MAX_PAGE_SESSIONS = 10000
RECORDED_HEADERS = ("MS-CorrelationId", "MS-RequestId", "X-Locale", "Accept", "User-Agent",
                    "MS-ContinuationToken", "Content-Type")

TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/token$")
API_PATH = re.compile(r"^/v(\d+)/customers/([^/]+)/orders/([^/]+)/provisioningstatus$")
AUDIT_PATH = re.compile(r"^/v(\d+)/auditrecords$")
CUSTOMERS_PATH = re.compile(r"^/v(\d+)/customers$")
CUSTOMER_ORDERS_PATH = re.compile(r"^/v(\d+)/customers/([^/]+)/orders$")
# fault target -> the API operation it applies to ("api" is provisioningstatus, as always)
FAULT_TARGETS = {"api": "provisioningstatus", "auditrecords": "auditrecords",
                 "customers": "customers", "customer-orders": "customer-orders", "token": "token"}


def dumps(obj: Any) -> bytes:
    """Compact JSON, as Partner Center sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def pc_error(code: int | str, description: str, source: str = "PartnerFD") -> dict[str, Any]:
    return {"code": code, "description": description, "data": [], "source": source}


def aad_error(error: str, description: str, code: int) -> dict[str, Any]:
    return {"error": error, "error_description": description, "error_codes": [code]}


NOT_FOUND = pc_error(20000, "Order ID not found")
BAD_INPUT = pc_error("800002", "Invalid request input", "PartnerApiServiceControllers")
UNAUTHORIZED = pc_error(401, "Unauthorized: the access token is missing, invalid or expired.")
CUSTOMER_NOT_FOUND = pc_error(600008, "The requested customer was not found.")
RESOURCE_NOT_FOUND = pc_error(404, "Resource not found")
AUDIT_TOO_OLD = pc_error(400, "Start date must be within the last 90 days.")
INVALID_GRANT = aad_error("invalid_grant",
                          "AADSTS700082: The refresh token has expired due to inactivity.", 700082)
MALFORMED_BODY = b'{"totalCount":1,"items":[{"lineItemNumber":0 "status":"fulfilled"}]'
GARBAGE_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
WRONG_TYPE_VALUES: dict[str, Any] = {
    "items": "not-a-list", "totalCount": "one", "status": 42, "lineItemNumber": "zero",
    "quantity": "three", "quantityProvisioningInformation": "none", "orderLineItemId": "zero",
}
CAMEL_STATUSES = {"prefulfillmentpending": "PrefulfillmentPending", "fulfilled": "Fulfilled",
                  "unfulfilled": "Unfulfilled"}


class SimError(Exception):
    """A bad scenario, argument or control request; the message says what and where."""


# ---------------------------------------------------------------------------------------
# Orders

Qpi = Optional[tuple[tuple[str, int], ...]]  # None: field omitted; (): sent as []


@dataclass(frozen=True)
class LineState:
    status: str
    qpi: Qpi

    def quantities(self) -> dict[str, int]:
        """The map a client derives: lowercased statuses, summed, zero sums dropped."""
        sums: dict[str, int] = {}
        for status, quantity in self.qpi or ():
            key = status.lower()
            sums[key] = sums.get(key, 0) + quantity
        return {k: v for k, v in sorted(sums.items()) if v != 0}

    def normalized(self) -> tuple[str, tuple[tuple[str, int], ...]]:
        return self.status.lower(), tuple(self.quantities().items())


@dataclass
class LineItem:
    number: int
    olid: int | None
    steps: list[tuple[float, LineState]]
    state: LineState | None = None
    step: int = -1

    def wire(self) -> dict[str, Any]:
        assert self.state is not None
        item: dict[str, Any] = {}
        if self.olid is not None:
            item["orderLineItemId"] = self.olid
        item["lineItemNumber"] = self.number
        item["status"] = self.state.status
        if self.state.qpi is not None:
            item["quantityProvisioningInformation"] = [
                {"quantity": q, "status": s} for s, q in self.state.qpi]
        return item

    def to_json(self) -> dict[str, Any]:
        st = self.state
        return {"number": self.number, "olid": self.olid,
                "status": st.status if st else None,
                "quantities": st.quantities() if st else None,
                "qpi": [list(p) for p in st.qpi] if st and st.qpi is not None else None,
                "step": self.step, "steps": len(self.steps)}


@dataclass
class Cycle:
    """The state machine of a generated in-flight order."""
    phase: int
    quantity: int


@dataclass
class Order:
    customer: str
    order: str
    manual: bool
    visible_at: float
    items: list[LineItem]
    generation: int = 0
    cycle: Cycle | None = None
    body_cache: bytes | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.customer, self.order

    def data(self) -> dict[str, Any]:
        items = [li.wire() for li in self.items if li.state is not None]
        return {"totalCount": len(items), "items": items, "attributes": {"objectType": "Collection"}}

    def body(self) -> bytes:
        if self.body_cache is None:
            self.body_cache = dumps(self.data())
        return self.body_cache

    def to_json(self, now: float) -> dict[str, Any]:
        return {"customer": self.customer, "order": self.order, "manual": self.manual,
                "visible": now >= self.visible_at, "visible_at": self.visible_at,
                "line_items": [li.to_json() for li in self.items]}


def _check_keys(obj: Any, allowed: Iterable[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SimError(f"{where}: expected a JSON object")
    unknown = [k for k in obj if k not in allowed and not k.startswith("_")]
    if unknown:
        raise SimError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    return obj


def _int(obj: dict[str, Any], key: str, where: str, default: Any = ...) -> Any:
    """An integer member; absent or null gives the default (required without one)."""
    value = obj.get(key)
    if value is None:
        if default is ...:
            raise SimError(f"{where}: {key!r} is required")
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise SimError(f"{where}: {key!r} must be an integer")
    return value


def _number(obj: dict[str, Any], key: str, where: str, default: float) -> float:
    value = obj.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise SimError(f"{where}: {key!r} must be a number >= 0")
    return float(value)


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise SimError(f"{where}: {key!r} must be a non-empty string")
    return value


def parse_state(obj: dict[str, Any], where: str) -> LineState:
    """A step or a control "set" line item: status, quantities, qpi."""
    status = _str(obj, "status", where)
    quantities = obj.get("quantities")
    qpi_mode = obj.get("qpi", "omit")
    if qpi_mode not in ("omit", "empty"):
        raise SimError(f"{where}: 'qpi' must be \"omit\" or \"empty\"")
    pairs: list[tuple[str, int]] = []
    if isinstance(quantities, dict):
        pairs = list(quantities.items())
    elif isinstance(quantities, list):
        for p in quantities:
            if not isinstance(p, list) or len(p) != 2:
                raise SimError(f"{where}: 'quantities' entries must be [status, quantity]")
            pairs.append((p[0], p[1]))
    elif quantities is not None:
        raise SimError(f"{where}: 'quantities' must be an object or a list of pairs")
    for s, q in pairs:
        if not isinstance(s, str) or not isinstance(q, int) or isinstance(q, bool):
            raise SimError(f"{where}: quantity entries are status string -> integer")
    if pairs:
        return LineState(status, tuple(pairs))
    return LineState(status, None if qpi_mode == "omit" else ())


def parse_line_item(obj: Any, manual: bool, where: str) -> LineItem:
    step_keys = ("at", "status", "quantities", "qpi")
    _check_keys(obj, ("number", "olid", "steps") + step_keys, where)
    number = _int(obj, "number", where)
    olid = _int(obj, "olid", where, None)
    raw_steps = obj.get("steps")
    if raw_steps is None:
        raw_steps = [{k: obj[k] for k in step_keys if k in obj}]
    elif any(k in obj for k in step_keys):
        raise SimError(f"{where}: give either 'steps' or status/quantities, not both")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise SimError(f"{where}: 'steps' must be a non-empty list")
    steps: list[tuple[float, LineState]] = []
    for i, raw in enumerate(raw_steps):
        w = f"{where}.steps[{i}]"
        _check_keys(raw, step_keys, w)
        at = _number(raw, "at", w, 0.0)
        if steps and not manual and at < steps[-1][0]:
            raise SimError(f"{w}: 'at' must not decrease")
        steps.append((at, parse_state(raw, w)))
    return LineItem(number, olid, steps)


def parse_order(obj: Any, where: str) -> Order:
    _check_keys(obj, ("customer", "order", "visible_after", "manual", "line_items"), where)
    manual = obj.get("manual", False)
    if not isinstance(manual, bool):
        raise SimError(f"{where}: 'manual' must be true or false")
    raw_items = obj.get("line_items", [])
    if not isinstance(raw_items, list):
        raise SimError(f"{where}: 'line_items' must be a list")
    items = [parse_line_item(li, manual, f"{where}.line_items[{i}]")
             for i, li in enumerate(raw_items)]
    numbers = [li.number for li in items]
    if len(set(numbers)) != len(numbers):
        raise SimError(f"{where}: duplicate line item number (use the duplicate-line-item fault)")
    return Order(_str(obj, "customer", where), _str(obj, "order", where), manual,
                 _number(obj, "visible_after", where, 0.0), items)


def load_scenario(path: str) -> list[Order]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise SimError(f"{path}: {e}") from e
    _check_keys(doc, ("orders",), path)
    if not isinstance(doc.get("orders"), list):
        raise SimError(f"{path}: 'orders' must be a list")
    return [parse_order(o, f"{path}: orders[{i}]") for i, o in enumerate(doc["orders"])]


def cycle_state(rng: random.Random, cycle: Cycle) -> LineState:
    """pending -> partly fulfilled -> fulfilled -> (new quantity) pending ..."""
    q = cycle.quantity
    if cycle.phase == 0:
        return LineState("prefulfillmentpending", (("prefulfillmentpending", q),))
    if cycle.phase == 1:
        done = rng.randint(1, q - 1)
        return LineState("prefulfillmentpending",
                         (("fulfilled", done), ("prefulfillmentpending", q - done)))
    return LineState("fulfilled", (("fulfilled", q),))


def generate_orders(n: int, in_flight: int, rng: random.Random) -> list[Order]:
    orders = []
    for i in range(n):
        cycle = Cycle(rng.randrange(3), rng.randint(2, 10)) if i < in_flight else None
        state = (cycle_state(rng, cycle) if cycle
                 else LineState("fulfilled", (("fulfilled", rng.randint(1, 5)),)))
        item = LineItem(0, 0, [(0.0, state)], state, 0)
        orders.append(Order(f"cust-{i % 50}", f"order-{i}", False, 0.0, [item], cycle=cycle))
    return orders


# ---------------------------------------------------------------------------------------
# Faults

FAULT_CLASS = {
    "status": "terminal", "429": "terminal", "malformed": "terminal", "garbage": "terminal",
    "reset": "terminal", "down": "terminal", "invalid_grant": "terminal",
    "slow": "delay",
    "uppercase": "data", "unknown-status": "data", "negative-quantity": "data",
    "duplicate-line-item": "data", "wrong-type": "data", "paginate": "data", "huge": "data",
    "bom": "bytes", "truncated": "bytes", "slowloris": "bytes",
}
TOKEN_FAULTS = {"status", "429", "malformed", "garbage", "reset", "down", "invalid_grant",
                "slow", "huge", "bom", "truncated", "slowloris"}
API_FAULTS = set(FAULT_CLASS) - {"invalid_grant"}
# activity log, customers, customer orders: everything that is not about provisioning items
COLLECTION_FAULTS = {"status", "429", "malformed", "garbage", "reset", "down", "slow", "huge",
                     "bom", "truncated", "slowloris", "wrong-type"}


@dataclass
class Fault:
    id: int
    kind: str
    target: str
    customer: str | None
    order: str | None
    count: int
    skip: int
    params: dict[str, Any]
    applied: int = 0

    def matches(self, target: str, customer: str | None, order: str | None) -> bool:
        return (self.target == target
                and (self.customer is None or self.customer == customer)
                and (self.order is None or self.order == order))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "target": self.target,
                "customer": self.customer, "order": self.order, "count": self.count,
                "skip": self.skip, "applied": self.applied, **self.params}


def parse_fault(obj: Any, fault_id: int) -> Fault:
    common = ("kind", "target", "customer", "order", "count", "skip")
    extra = ("status", "body", "content_type", "retry_after", "delay", "page_size",
             "field", "value")
    _check_keys(obj, common + extra, "fault")
    kind = obj.get("kind")
    target = obj.get("target", "api")
    if target not in FAULT_TARGETS:
        raise SimError(f"fault: 'target' must be one of {', '.join(FAULT_TARGETS)}")
    allowed = (API_FAULTS if target == "api" else TOKEN_FAULTS if target == "token"
               else COLLECTION_FAULTS)
    if kind not in allowed:
        raise SimError(f"fault: kind {kind!r} is not one of {', '.join(sorted(allowed))} "
                       f"(target {target})")
    customer, order = obj.get("customer"), obj.get("order")
    if customer is not None and target not in ("api", "customer-orders"):
        raise SimError("fault: 'customer' applies to targets api and customer-orders only")
    if order is not None and target != "api":
        raise SimError("fault: 'order' applies to target api only")
    for k in ("customer", "order"):
        if obj.get(k) is not None and not isinstance(obj[k], str):
            raise SimError(f"fault: {k!r} must be a string")
    count = _int(obj, "count", "fault", -1)
    skip = _int(obj, "skip", "fault", 0)
    params = {k: obj[k] for k in extra if k in obj}
    if kind in ("status", "invalid_grant"):
        code = params.setdefault("status", 500 if kind == "status" else 400)
        if not isinstance(code, int) or isinstance(code, bool) or not 200 <= code <= 599:
            raise SimError("fault: 'status' must be an HTTP status code")
    if kind == "429":
        params.setdefault("retry_after", 1)
    if kind in ("slow", "slowloris"):
        params["delay"] = _number(params, "delay", "fault", 1.0 if kind == "slow" else 0.05)
    if kind == "paginate":
        size = params.setdefault("page_size", 1)
        if not isinstance(size, int) or size < 1:
            raise SimError("fault: 'page_size' must be an integer >= 1")
    if kind == "wrong-type":
        fld = params.setdefault("field", "items")
        fields = WRONG_TYPE_VALUES if target == "api" else ("items", "totalCount")
        if fld not in fields:
            raise SimError(f"fault: 'field' must be one of {', '.join(fields)} (target {target})")
    return Fault(fault_id, kind, target, customer, order, count, skip, params)


def _body_bytes(body: Any) -> bytes:
    return body.encode() if isinstance(body, str) else dumps(body)


def mixed_case(status: str, upper: bool) -> str:
    return status.upper() if upper else CAMEL_STATUSES.get(status.lower(), status.upper())


def _first_item(data: dict[str, Any]) -> dict[str, Any]:
    items = data.get("items")
    if not isinstance(items, list):
        data["items"] = items = []
    if not items:
        items.append({"lineItemNumber": 0, "status": "fulfilled"})
        data["totalCount"] = len(items)
    return items[0]


def _first_quantity(item: dict[str, Any]) -> dict[str, Any]:
    qpi = item.get("quantityProvisioningInformation")
    if not isinstance(qpi, list) or not qpi:
        item["quantityProvisioningInformation"] = qpi = [{"quantity": 1, "status": "fulfilled"}]
    return qpi[0]


def transform(fault: Fault, data: dict[str, Any]) -> None:
    """Apply a data fault to a freshly built answer (not pagination)."""
    kind, p = fault.kind, fault.params
    if kind == "uppercase":
        for item in data.get("items") or []:
            item["status"] = mixed_case(item["status"], False)
            for j, q in enumerate(item.get("quantityProvisioningInformation") or []):
                q["status"] = mixed_case(q["status"], j % 2 == 1)
    elif kind == "unknown-status":
        _first_item(data)["status"] = p.get("status", "frobnicating")
    elif kind == "negative-quantity":
        q = _first_quantity(_first_item(data))
        q["quantity"] = -abs(q["quantity"]) or -1
    elif kind == "duplicate-line-item":
        first = _first_item(data)
        data["items"].insert(1, json.loads(json.dumps(first)))
        data["totalCount"] = len(data["items"])
    elif kind == "huge":
        data["padding"] = "x" * HUGE_PADDING
    elif kind == "wrong-type":
        fld = p["field"]
        value = p.get("value", WRONG_TYPE_VALUES[fld])
        if fld in ("items", "totalCount"):
            data[fld] = value
        elif fld == "quantity":
            _first_quantity(_first_item(data))["quantity"] = value
        else:
            _first_item(data)[fld] = value


# ---------------------------------------------------------------------------------------
# Requests, answers, records


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: Any  # email.message.Message: case-insensitive .get()
    body: bytes
    mono: float
    wall: float
    tls: bool

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Plan:
    """What the handler sends; decided under the lock, carried out outside it."""
    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON_CT
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    drip: float = 0.0
    reset: bool = False
    close: bool = False


def json_plan(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Plan:
    return Plan(status, dumps(obj), headers=headers or [])


class RequestRecord(NamedTuple):
    index: int
    t: float
    mono: float
    wall: float
    method: str
    path: str
    kind: str
    tenant: str | None
    status: int
    auth: str
    customer: str | None
    order: str | None
    faults: tuple[str, ...]
    result: str
    tls: bool
    headers: tuple[str | None, ...]
    token: tuple[Any, ...] | None
    op: str | None
    ms_cv: str | None
    sim: float

    def to_json(self) -> dict[str, Any]:
        d = self._asdict()
        d["faults"] = list(self.faults)
        d["headers"] = dict(zip(RECORDED_HEADERS, self.headers))
        _, _, query = self.path.partition("?")
        d["query"] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if self.token is not None:
            d["token"] = dict(zip(("grant_type", "client_id", "resource", "refresh_token",
                                   "refresh_token_seq"), self.token))
        return d


class Log:
    """Diagnostics to stderr or --log; per-request lines only with --log."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8", buffering=1) if path else sys.stderr
        self.requests = path is not None

    def __call__(self, msg: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        with self._lock:
            try:
                self._file.write(f"{stamp} pcsim[{os.getpid()}]: {msg}\n")
                self._file.flush()
            except (OSError, ValueError):
                pass


@dataclass
class Config:
    client_id: str
    client_secret: str
    refresh_token: str
    token_ttl: int
    strict_rotation: bool
    tenant_limit: int
    change_every: float
    history_max: int
    seed: int | None
    audit_lag: float = 0.0
    audit_order: str = "asc"
    fulfil_after: float = 60.0
    invalid_grant_body: Any = None  # None: INVALID_GRANT


@dataclass
class PageSession:
    """A collection answered page by page: the whole result, fixed at the first page."""
    op: str
    key: Any  # (customer, order) for provisioningstatus, else None
    base: str  # the collection's uri without seekOperation
    pages: list[list[Any]]
    index: int
    total: Any


# ---------------------------------------------------------------------------------------
# The simulator: all shared state, behind one lock


class Simulator:
    def __init__(self, cfg: Config, orders: list[Order], log: Log) -> None:
        self.cfg = cfg
        self.log = log
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.rng = random.Random(cfg.seed)
        self.token_rng = random.Random(None if cfg.seed is None else cfg.seed + 1)
        self.cv_rng = random.Random(None if cfg.seed is None else cfg.seed + 2)
        self.id_rng = random.Random(None if cfg.seed is None else cfg.seed + 3)
        self.clock_offset = 0.0
        self.start_mono = time.monotonic()
        self.stopping = False
        self.orders: dict[tuple[str, str], Order] = {}
        for o in orders:
            if o.key in self.orders:
                raise SimError(f"order {o.customer}/{o.order} defined twice")
            self.orders[o.key] = o
        self.heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.seq = 0
        self.changes: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max(1, cfg.history_max))
        self.change_count = 0
        self.requests: collections.deque[RequestRecord] = collections.deque(
            maxlen=max(1, cfg.history_max))
        self.request_count = 0
        self.refresh_valid: dict[str, int] = {cfg.refresh_token: 0}
        self.refresh_seen: dict[str, int] = {cfg.refresh_token: 0}
        self.refresh_current: str | None = cfg.refresh_token
        self.refresh_counter = 0
        self.access: dict[str, tuple[str, float]] = {}
        self.access_counter = 0
        self.windows: dict[str, collections.deque[float]] = {}
        self.faults: dict[int, Fault] = {}
        self.fault_counter = 0
        self.pages: collections.OrderedDict[str, PageSession] = collections.OrderedDict()
        self.page_counter = 0
        self.by_status: collections.Counter[str] = collections.Counter()
        self.by_kind: collections.Counter[str] = collections.Counter()
        self.by_kind_status: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        self.faults_applied: collections.Counter[str] = collections.Counter()
        self.by_op: collections.Counter[str] = collections.Counter()
        self.rate_limited = 0
        self.tls_failures = 0
        self.thread = threading.Thread(target=self._run_scheduler, name="scheduler", daemon=True)

    # -- time and scheduling --------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.start_mono

    def start(self) -> None:
        """Set time zero, apply initial states, schedule steps and generated changes."""
        with self.lock:
            self.start_mono = time.monotonic()
            for o in self.orders.values():
                for idx, li in enumerate(o.items):
                    if o.manual or o.cycle is not None:
                        li.step, li.state = 0, li.steps[0][1]
                        continue
                    for s, (at, state) in enumerate(li.steps):
                        if at <= 0:
                            li.step, li.state = s, state
                        else:
                            self._schedule(at, self._ev_step, (o.key, o.generation, idx, s))
            for o in self.orders.values():
                if o.cycle is not None:
                    self._schedule(self._next_change(0.0), self._ev_cycle, (o.key, o.generation))
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def _next_change(self, after: float) -> float:
        return after + self.rng.expovariate(1.0 / max(self.cfg.change_every, 1e-6))

    def _schedule(self, at: float, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, fn, args))
        self.cond.notify()

    def _run_scheduler(self) -> None:
        with self.cond:
            while not self.stopping:
                if not self.heap:
                    self.cond.wait()
                    continue
                wait = self.heap[0][0] - self.now()
                if wait > 0:
                    self.cond.wait(min(wait, 1.0))
                    continue
                at, _, fn, args = heapq.heappop(self.heap)
                try:
                    fn(at, *args)
                except Exception:  # a bug must not stop time
                    self.log("scheduler: " + traceback.format_exc())

    def _live(self, key: tuple[str, str], generation: int) -> Order | None:
        o = self.orders.get(key)
        return o if o is not None and o.generation == generation else None

    def _ev_step(self, at: float, key: tuple[str, str], gen: int, idx: int, step: int) -> None:
        o = self._live(key, gen)
        if o is not None:
            li = o.items[idx]
            li.step = step
            self._set_line(o, li, li.steps[step][1], "schedule")

    def _ev_cycle(self, at: float, key: tuple[str, str], gen: int) -> None:
        o = self._live(key, gen)
        if o is None or o.cycle is None:
            return
        c = o.cycle
        c.phase = (c.phase + 1) % 3
        if c.phase == 0:
            c.quantity = self.rng.randint(2, 10)
        self._set_line(o, o.items[0], cycle_state(self.rng, c), "generate")
        self._schedule(self._next_change(at), self._ev_cycle, (key, gen))

    # -- state changes --------------------------------------------------------------------

    def _set_line(self, o: Order, li: LineItem, new: LineState | None, cause: str) -> None:
        old = li.state
        li.state = new
        o.body_cache = None
        if (old.normalized() if old else None) == (new.normalized() if new else None):
            return
        kind = "added" if old is None else "removed" if new is None else "changed"
        self._record_change(o, li.number, li.olid, kind, new, old, cause)

    def _record_change(self, o: Order, number: int | None, olid: int | None, kind: str,
                       new: LineState | None, old: LineState | None, cause: str) -> None:
        self.changes.append({
            "index": self.change_count, "t": round(self.now(), 6), "mono": time.monotonic(),
            "wall": time.time(), "customer": o.customer, "order": o.order, "number": number,
            "olid": olid, "kind": kind,
            "status": new.status.lower() if new else None,
            "quantities": new.quantities() if new else None,
            "old_status": old.status.lower() if old else None,
            "old_quantities": old.quantities() if old else None, "cause": cause})
        self.change_count += 1

    # -- request log and stats --------------------------------------------------------------

    def _record(self, req: Request, kind: str, status: int, result: str, *,
                tenant: str | None = None, auth: str = "missing", customer: str | None = None,
                order: str | None = None, faults: Iterable[Fault] = (),
                token: tuple[Any, ...] | None = None, op: str | None = None,
                ms_cv: str | None = None) -> None:
        status_key = str(status) if status else "reset"
        self.by_status[status_key] += 1
        self.by_kind[kind] += 1
        self.by_kind_status[kind][status_key] += 1
        if op is not None:
            self.by_op[op] += 1
        rec = RequestRecord(
            self.request_count, round(req.mono - self.start_mono, 6), req.mono, req.wall,
            req.method, req.path + ("?" + req.query if req.query else ""), kind, tenant, status,
            auth, customer, order, tuple(f.kind for f in faults), result, req.tls,
            tuple(req.header(h) for h in RECORDED_HEADERS), token, op, ms_cv,
            round(req.wall + self.clock_offset, 6))
        self.request_count += 1
        self.requests.append(rec)
        if self.log.requests:
            fl = ",".join(rec.faults) or "-"
            self.log(f"{req.method} {rec.path} -> {status_key} kind={kind} op={op} "
                     f"tenant={tenant} auth={auth} result={result} faults={fl}")

    # -- faults -----------------------------------------------------------------------------

    def _take_faults(self, target: str, customer: str | None, order: str | None,
                     data_ok: bool, continuation: bool) -> list[Fault]:
        taken: list[Fault] = []
        for f in list(self.faults.values()):
            if not f.matches(target, customer, order):
                continue
            cls = FAULT_CLASS[f.kind]
            if (cls == "data" and not data_ok) or (f.kind == "paginate" and continuation):
                continue
            if f.skip > 0:
                f.skip -= 1
                continue
            f.applied += 1
            self.faults_applied[f.kind] += 1
            if f.count > 0:
                f.count -= 1
                if f.count == 0:
                    del self.faults[f.id]
            taken.append(f)
            if cls == "terminal":
                break
        return taken

    def _terminal_plan(self, f: Fault) -> Plan:
        p = f.params
        if f.kind in ("reset", "down"):
            return Plan(0, reset=True)
        if f.kind == "invalid_grant":
            return Plan(p["status"], _body_bytes(p.get("body", self._invalid_grant_body())),
                        p.get("content_type", JSON_CT))
        if f.kind == "garbage":
            return Plan(200, _body_bytes(p.get("body", GARBAGE_BODY.decode())),
                        p.get("content_type", "text/html"))
        if f.kind == "malformed":
            return Plan(200, _body_bytes(p.get("body", MALFORMED_BODY.decode())),
                        p.get("content_type", JSON_CT))
        headers: list[tuple[str, str]] = []
        if f.kind == "429":
            ra = p.get("retry_after")
            body = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in "
                    f"{ra if isinstance(ra, (int, float)) else 57} seconds."}
            if ra is not None:
                headers.append(("Retry-After", str(ra)))
            return json_plan(429, body, headers)
        code = p["status"]
        if p.get("retry_after") is not None:
            headers.append(("Retry-After", str(p["retry_after"])))
        if "body" in p:
            body_bytes = _body_bytes(p["body"])
        elif f.target == "token":
            err = {400: "invalid_request", 401: "invalid_client"}.get(code, "temporarily_unavailable")
            body_bytes = dumps(aad_error(err, f"AADSTS50000: simulated error {code}.", 50000))
        elif code == 404:
            body_bytes = dumps({"api": NOT_FOUND, "customer-orders": CUSTOMER_NOT_FOUND}.get(
                f.target, RESOURCE_NOT_FOUND))
        elif code == 400:
            body_bytes = dumps(BAD_INPUT)
        elif code == 401:
            body_bytes = dumps(UNAUTHORIZED)
            headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
        else:
            phrase = _phrase(code)
            body_bytes = dumps(pc_error(code, f"Simulated {code} {phrase}"))
        return Plan(code, body_bytes, p.get("content_type", JSON_CT), headers)

    def _finish(self, plan: Plan, faults: list[Fault], data: Any | None) -> Plan:
        """Serialize data (after data faults) and apply delay and byte faults."""
        if data is not None:
            plan.body = dumps(data)
        for f in faults:
            if f.kind == "slow":
                plan.delay += f.params["delay"]
            elif f.kind == "bom":
                plan.body = BOM + plan.body
            elif f.kind == "truncated":
                plan.body = plan.body[:len(plan.body) // 2]
            elif f.kind == "slowloris":
                plan.drip = f.params["delay"]
        return plan

    # -- routing --------------------------------------------------------------------------

    def handle(self, req: Request) -> Plan:
        m = TOKEN_PATH.match(req.path)
        if m:
            return self.handle_token(req, unquote(m.group(1)))
        m = API_PATH.match(req.path)
        if m:
            return self.handle_api(req, "provisioningstatus", unquote(m.group(2)),
                                   unquote(m.group(3)))
        m = CUSTOMER_ORDERS_PATH.match(req.path)
        if m:
            return self.handle_api(req, "customer-orders", unquote(m.group(2)), None)
        if AUDIT_PATH.match(req.path):
            return self.handle_api(req, "auditrecords", None, None)
        if CUSTOMERS_PATH.match(req.path):
            return self.handle_api(req, "customers", None, None)
        plan = json_plan(404, RESOURCE_NOT_FOUND)
        with self.lock:
            self._record(req, "other", 404, "no_route")
        return plan

    def handle_plain_on_tls(self, req: Request) -> Plan:
        plan = Plan(400, b"The plain HTTP request was sent to HTTPS port\n", "text/plain",
                    close=True)
        with self.lock:
            self._record(req, "other", 400, "plain_http_on_tls")
        return plan

    def note_tls_failure(self) -> None:
        with self.lock:
            self.tls_failures += 1

    # -- token endpoint ---------------------------------------------------------------------

    def handle_token(self, req: Request, tenant: str) -> Plan:
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        form: dict[str, str] = {}
        if ctype == "application/x-www-form-urlencoded":
            parsed = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
            form = {k: v[0] for k, v in parsed.items()}
        rt = form.get("refresh_token")
        with self.lock:
            rt_state = ("missing" if rt is None else "valid" if rt in self.refresh_valid
                        else "superseded" if rt in self.refresh_seen else "unknown")
            token_info = (form.get("grant_type"), form.get("client_id"), form.get("resource"),
                          rt_state, self.refresh_seen.get(rt) if rt is not None else None)
            if req.method != "POST":
                plan = json_plan(405, aad_error("invalid_request",
                                                "AADSTS900561: The endpoint only accepts POST requests.",
                                                900561))
                self._record(req, "token", 405, "method", tenant=tenant, token=token_info,
                             op="token")
                return plan
            faults = self._take_faults("token", None, None, True, False)
            if faults and FAULT_CLASS[faults[-1].kind] == "terminal":
                plan = self._finish(self._terminal_plan(faults[-1]), faults, None)
                self._record(req, "token", plan.status, "fault", tenant=tenant, faults=faults,
                             token=token_info, op="token")
                return plan
            status, data, result = self._grant(ctype, form, tenant, rt_state)
            for f in faults:
                if FAULT_CLASS[f.kind] == "data":
                    transform(f, data)
            plan = self._finish(Plan(status), faults, data)
            if status == 200:
                plan.headers += [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")]
            self._record(req, "token", status, result, tenant=tenant, faults=faults,
                         token=token_info, op="token")
            return plan

    def _invalid_grant_body(self) -> Any:
        body = self.cfg.invalid_grant_body
        return INVALID_GRANT if body is None else body

    def _grant(self, ctype: str, form: dict[str, str], tenant: str,
               rt_state: str) -> tuple[int, dict[str, Any], str]:
        if ctype != "application/x-www-form-urlencoded":
            return 400, aad_error("invalid_request", "AADSTS900144: The request body must "
                                  "contain the following parameter: 'grant_type'.",
                                  900144), "not_form"
        grant = form.get("grant_type")
        if grant not in ("refresh_token", "client_credentials"):
            return 400, aad_error("unsupported_grant_type", "AADSTS70003: The app requested "
                                  "an unsupported grant type.", 70003), "unsupported_grant_type"
        needed = ["client_id", "client_secret", "resource"]
        if grant == "refresh_token":
            needed.append("refresh_token")
        for name in needed:
            if not form.get(name):
                return 400, aad_error("invalid_request", "AADSTS900144: The request body must "
                                      f"contain the following parameter: '{name}'.",
                                      900144), "invalid_request"
        if form["client_id"] != self.cfg.client_id:
            return 400, aad_error("unauthorized_client", "AADSTS700016: Application with "
                                  "identifier was not found in the directory.",
                                  700016), "unauthorized_client"
        if form["client_secret"] != self.cfg.client_secret:
            return 401, aad_error("invalid_client", "AADSTS7000215: Invalid client secret "
                                  "provided.", 7000215), "invalid_client"
        if grant == "refresh_token" and rt_state != "valid":
            return 400, json.loads(json.dumps(self._invalid_grant_body())), "invalid_grant"
        ttl = self.cfg.token_ttl
        wall = int(time.time())
        self.access_counter += 1
        access = f"at-{self.access_counter}-{self.token_rng.getrandbits(64):016x}"
        self.access[access] = (tenant, self.now() + ttl)
        body: dict[str, Any] = {"token_type": "Bearer"}
        if grant == "refresh_token":
            body["scope"] = "user_impersonation"
        body.update({"expires_in": str(ttl), "ext_expires_in": str(ttl),
                     "expires_on": str(wall + ttl), "not_before": str(wall),
                     "resource": form["resource"], "access_token": access})
        if grant == "refresh_token":
            self.refresh_counter += 1
            new = f"rt-{self.refresh_counter}-{self.token_rng.getrandbits(64):016x}"
            if self.cfg.strict_rotation:
                self.refresh_valid.pop(form["refresh_token"], None)
            self.refresh_valid[new] = self.refresh_counter
            self.refresh_seen[new] = self.refresh_counter
            self.refresh_current = new
            body["refresh_token"] = new
        return 200, body, "ok"

    # -- provisioning status ----------------------------------------------------------------

    def _check_bearer(self, value: str | None, now: float) -> tuple[str, str | None]:
        if not value:
            return "missing", None
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "malformed", None
        entry = self.access.get(token.strip())
        if entry is None:
            return "unknown", None
        if now >= entry[1]:
            return "expired", entry[0]
        return "valid", entry[0]

    def _rate_limit(self, tenant: str, now: float) -> int:
        """0 if the request may pass (and counts), else seconds until a slot frees."""
        limit = self.cfg.tenant_limit
        if limit <= 0:
            return 0
        window = self.windows.setdefault(tenant, collections.deque())
        while window and window[0] <= now - RATE_WINDOW:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + RATE_WINDOW - now))
        window.append(now)
        return 0

    def _ms_cv(self) -> str:
        """A correlation vector as Partner Center sends in MS-CV: base64 of 16 bytes, ".n"."""
        base = base64.b64encode(self.cv_rng.getrandbits(128).to_bytes(16, "big")).decode()
        return f"{base.rstrip('=')}.{self.cv_rng.randrange(10)}"

    def handle_api(self, req: Request, op: str, customer: str | None,
                   order_id: str | None) -> Plan:
        echo = [(h, v) for h in ("MS-CorrelationId", "MS-RequestId")
                if (v := req.header(h)) is not None]
        with self.lock:
            plan = self._api_locked(req, op, customer, order_id)
        plan.headers += echo
        return plan

    def _api_locked(self, req: Request, op: str, customer: str | None,
                    order_id: str | None) -> Plan:
        """Auth, method and rate limit, common to every Partner Center API operation."""
        now = self.now()
        cv: str | None = self._ms_cv()
        auth, tenant = self._check_bearer(req.header("Authorization"), now)
        faults: list[Fault] = []
        if auth != "valid" or tenant is None:
            plan, result = json_plan(401, UNAUTHORIZED, [
                ("WWW-Authenticate", 'Bearer error="invalid_token"')]), "unauthorized"
        elif req.method != "GET":
            plan, result = json_plan(405, pc_error(405, "Method not allowed"),
                                     [("Allow", "GET")]), "method"
        elif retry := self._rate_limit(tenant, now):
            self.rate_limited += 1
            plan, result = json_plan(429, {"statusCode": 429, "message": "Rate limit is "
                                           f"exceeded. Try again in {retry} seconds."},
                                     [("Retry-After", str(retry))]), "rate_limited"
        else:
            answer = {"provisioningstatus": self._status_answer,
                      "auditrecords": self._audit_answer,
                      "customers": self._customers_answer,
                      "customer-orders": self._customer_orders_answer}[op]
            plan, faults, result = answer(req, customer, order_id, now)
        if plan.reset:
            cv = None
        else:
            plan.headers.append(("MS-CV", cv))  # type: ignore[arg-type]
        self._record(req, "api", plan.status, result, tenant=tenant, auth=auth,
                     customer=customer, order=order_id, faults=faults, op=op, ms_cv=cv)
        return plan

    @staticmethod
    def _continuation(req: Request) -> bool:
        return "Next" in parse_qs(req.query).get("seekOperation", [])

    def _session(self, req: Request, op: str, key: Any) -> PageSession | None:
        """The page a continuation request asks for (its MS-ContinuationToken), if valid."""
        session = self.pages.get(req.header("MS-ContinuationToken") or "")
        if session is None or session.op != op or session.key != key:
            return None
        return session

    def _status_answer(self, req: Request, customer: str | None, order_id: str | None,
                       now: float) -> tuple[Plan, list[Fault], str]:
        assert customer is not None and order_id is not None
        continuation = self._continuation(req)
        order = self.orders.get((customer, order_id))
        session = None
        if continuation:
            session = self._session(req, "provisioningstatus", (customer, order_id))
            status = 200 if session is not None else 400
        else:
            status = 200 if order is not None and now >= order.visible_at else 404
        result = {200: "ok", 400: "bad_continuation", 404: "not_found"}[status]
        if not self.faults:  # the fast path benchmarks take
            if status == 200 and order is not None and session is None:
                return Plan(200, order.body()), [], result
            return json_plan(status, self._page(session) if session else
                             BAD_INPUT if status == 400 else NOT_FOUND), [], result
        faults = self._take_faults("api", customer, order_id, status == 200, continuation)
        result = "fault" if faults else result
        if faults and FAULT_CLASS[faults[-1].kind] == "terminal":
            return self._finish(self._terminal_plan(faults[-1]), faults, None), faults, result
        if status != 200:
            return (self._finish(Plan(status), faults, BAD_INPUT if status == 400 else NOT_FOUND),
                    faults, result)
        data = self._page(session) if session else order.data()  # type: ignore[union-attr]
        for f in faults:
            if FAULT_CLASS[f.kind] == "data" and f.kind != "paginate":
                transform(f, data)
        pager = next((f for f in faults if f.kind == "paginate"), None)
        if pager is not None:
            data = self._paginate(customer, order_id, data, pager.params["page_size"])
        return self._finish(Plan(200), faults, data), faults, result

    def _audit_answer(self, req: Request, customer: str | None, order_id: str | None,
                      now: float) -> tuple[Plan, list[Fault], str]:
        return json_plan(404, RESOURCE_NOT_FOUND), [], "not_found"

    _customers_answer = _customer_orders_answer = _audit_answer

    def _paginate(self, customer: str, order_id: str, data: dict[str, Any],
                  size: int) -> dict[str, Any]:
        items = data.get("items")
        if not isinstance(items, list):
            return data
        pages = [items[i:i + size] for i in range(0, len(items), size)] or [[]]
        base = f"/customers/{quote(customer, safe='')}/orders/{quote(order_id, safe='')}" \
               "/provisioningstatus"
        return self._page(PageSession("provisioningstatus", (customer, order_id), base, pages,
                                      0, data.get("totalCount")))

    def _page(self, session: PageSession) -> dict[str, Any]:
        """One page of a collection; registers the continuation token of the next one."""
        base = session.base
        next_uri = base + ("&" if "?" in base else "?") + "seekOperation=Next"
        links: dict[str, Any] = {"self": {"uri": next_uri if session.index else base,
                                          "method": "GET", "headers": []}}
        items = session.pages[session.index]
        if session.index + 1 < len(session.pages):
            self.page_counter += 1
            last = items[-1] if items else None
            if session.op == "auditrecords" and isinstance(last, dict) \
                    and isinstance(last.get("operationDate"), str):
                # Partner Center's activity-log tokens encode the position: date|count
                token = base64.b64encode(
                    f"key={last['operationDate']}|{self.page_counter}".encode()).decode()
            else:
                token = base64.b64encode(struct.pack("<I", self.page_counter)).decode()
            self.pages[token] = PageSession(session.op, session.key, base, session.pages,
                                            session.index + 1, session.total)
            if len(self.pages) > MAX_PAGE_SESSIONS:
                self.pages.popitem(last=False)
            links["next"] = {"uri": next_uri, "method": "GET",
                             "headers": [{"key": "MS-ContinuationToken", "value": token}]}
        # data faults edit provisioning items in place; other collections' faults do not
        items = json.loads(json.dumps(items)) if session.op == "provisioningstatus" else list(items)
        return {"totalCount": session.total, "items": items, "links": links,
                "attributes": {"objectType": "Collection"}}

    # -- control API ------------------------------------------------------------------------

    def handle_control(self, req: Request) -> Plan:
        with self.lock:
            self.by_kind["control"] += 1
        try:
            body = json.loads(req.body or b"{}") if req.method in ("POST", "PUT") else {}
            if not isinstance(body, dict):
                raise SimError("the request body must be a JSON object")
            query = {k: v[-1] for k, v in parse_qs(req.query).items()}
            route = req.path[len("/_control"):].rstrip("/") or "/"
            handler = self._control_route(req.method, route)
            if handler is None:
                return json_plan(404, {"error": f"no control endpoint {req.method} {req.path}"})
            with self.lock:
                status, answer = handler(route, body, query)
            return json_plan(status, answer)
        except (SimError, ValueError) as e:
            return json_plan(400, {"error": str(e)})

    def _control_route(self, method: str, route: str
                       ) -> Callable[[str, dict[str, Any], dict[str, str]],
                                     tuple[int, Any]] | None:
        if route.startswith("/fault/") and method == "DELETE":
            return self._c_fault_delete_one
        return {
            ("GET", "/health"): lambda r, b, q: (200, {"ok": True}),
            ("GET", "/orders"): self._c_orders,
            ("POST", "/advance"): self._c_advance,
            ("POST", "/set"): self._c_set,
            ("POST", "/remove"): self._c_remove,
            ("POST", "/fault"): self._c_fault_add,
            ("GET", "/fault"): lambda r, b, q: (200, {"faults": [
                f.to_json() for f in self.faults.values()]}),
            ("DELETE", "/fault"): self._c_fault_delete_all,
            ("GET", "/requests"): self._c_requests,
            ("GET", "/changes"): self._c_changes,
            ("GET", "/stats"): self._c_stats,
            ("POST", "/tokens/expire"): self._c_expire,
            ("GET", "/refresh-token"): lambda r, b, q: (200, {
                "refresh_token": self.refresh_current}),
            ("POST", "/refresh-token"): self._c_set_refresh,
            ("POST", "/config"): self._c_config,
        }.get((method, route))

    def _order_arg(self, body: dict[str, Any]) -> tuple[str, str]:
        return _str(body, "customer", "control"), _str(body, "order", "control")

    def _c_orders(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        now = self.now()
        return 200, {"orders": [o.to_json(now) for o in self.orders.values()
                                if q.get("customer", o.customer) == o.customer
                                and q.get("order", o.order) == o.order]}

    def _c_advance(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        if body:
            _check_keys(body, ("customer", "order"), "advance")
            o = self.orders.get(self._order_arg(body))
            if o is None:
                return 404, {"error": "unknown order"}
            if not o.manual:
                return 409, {"error": "order is time-driven, not manual"}
            targets = [o]
        else:
            targets = [o for o in self.orders.values() if o.manual]
        for o in targets:
            for li in o.items:
                if li.step + 1 < len(li.steps):
                    li.step += 1
                    self._set_line(o, li, li.steps[li.step][1], "advance")
        now = self.now()
        return 200, {"orders": [o.to_json(now) for o in targets]}

    def _c_set(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        _check_keys(body, ("customer", "order", "line_items", "visible_after"), "set")
        key = self._order_arg(body)
        raw = body.get("line_items")
        if not isinstance(raw, list):
            raise SimError("set: 'line_items' must be a list")
        new_items: dict[int, tuple[int | None, LineState]] = {}
        for i, li in enumerate(raw):
            w = f"set.line_items[{i}]"
            _check_keys(li, ("number", "olid", "status", "quantities", "qpi"), w)
            number = _int(li, "number", w)
            if number in new_items:
                raise SimError(f"{w}: duplicate line item number")
            new_items[number] = (_int(li, "olid", w, None), parse_state(li, w))
        now = self.now()
        o = self.orders.get(key)
        if o is None:
            o = Order(key[0], key[1], True, now, [])
            self.orders[key] = o
        o.manual, o.cycle = True, None
        o.generation += 1
        if "visible_after" in body:
            o.visible_at = now + _number(body, "visible_after", "set", 0.0)
        for li in list(o.items):
            if li.number not in new_items:
                self._set_line(o, li, None, "set")
                o.items.remove(li)
        by_number = {li.number: li for li in o.items}
        for number, (olid, state) in new_items.items():
            li = by_number.get(number)
            if li is None:
                li = LineItem(number, olid, [])
                o.items.append(li)
            li.olid, li.steps, li.step = olid, [(0.0, state)], 0
            self._set_line(o, li, state, "set")
        o.items.sort(key=lambda x: list(new_items).index(x.number))
        o.body_cache = None
        return 200, {"order": o.to_json(now)}

    def _c_remove(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        o = self.orders.pop(self._order_arg(body), None)
        if o is not None:
            self._record_change(o, None, None, "order_removed", None, None, "remove")
        return 200, {"removed": o is not None}

    def _c_fault_add(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        f = parse_fault(body, self.fault_counter + 1)
        self.fault_counter += 1
        if f.count != 0:
            self.faults[f.id] = f
        return 200, {"id": f.id}

    def _c_fault_delete_all(self, r: str, b: dict[str, Any], q: dict[str, str]
                            ) -> tuple[int, Any]:
        n = len(self.faults)
        self.faults.clear()
        return 200, {"deleted": n}

    def _c_fault_delete_one(self, route: str, b: dict[str, Any], q: dict[str, str]
                            ) -> tuple[int, Any]:
        try:
            fid = int(route[len("/fault/"):])
        except ValueError:
            raise SimError("fault id must be an integer") from None
        return 200, {"deleted": 1 if self.faults.pop(fid, None) else 0}

    @staticmethod
    def _history(records: collections.deque[Any], total: int, q: dict[str, str],
                 keep: Callable[[Any], bool], limit: int) -> tuple[int, int, list[Any]]:
        """Records from index ?since= on, at most ?limit=; returns next, dropped, records."""
        since = max(0, int(q.get("since", 0)))
        limit = int(q.get("limit", limit))
        first = total - len(records)
        nxt = max(since, first)
        out = []
        for i in range(nxt - first, len(records)):
            if len(out) >= limit:
                break
            nxt += 1
            if keep(records[i]):
                out.append(records[i])
        return min(max(nxt, since), total), max(0, first - since), out

    def _c_requests(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        kind = q.get("kind")
        nxt, dropped, out = self._history(self.requests, self.request_count, q,
                                          lambda rec: kind is None or rec.kind == kind, 100000)
        return 200, {"next": nxt, "dropped": dropped, "requests": [rec.to_json() for rec in out]}

    def _c_changes(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        nxt, dropped, out = self._history(self.changes, self.change_count, q,
                                          lambda c: True, 1000000)
        return 200, {"next": nxt, "dropped": dropped, "changes": out}

    def _c_stats(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        now = self.now()
        return 200, {
            "uptime": round(now, 3), "requests": self.request_count,
            "by_status": dict(self.by_status), "by_kind": dict(self.by_kind),
            "by_kind_status": {k: dict(v) for k, v in self.by_kind_status.items()},
            "rate_limited": self.rate_limited, "tokens_issued": self.access_counter,
            "refresh_tokens_issued": self.refresh_counter,
            "valid_refresh_tokens": len(self.refresh_valid),
            "valid_access_tokens": sum(1 for _, exp in self.access.values() if now < exp),
            "faults_applied": dict(self.faults_applied), "active_faults": len(self.faults),
            "tls_handshake_failures": self.tls_failures, "orders": len(self.orders),
            "changes": self.change_count}

    def _c_expire(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        now = self.now()
        n = 0
        for token, (tenant, exp) in self.access.items():
            if exp > now:
                self.access[token] = (tenant, now)
                n += 1
        return 200, {"expired": n}

    def _c_set_refresh(self, r: str, body: dict[str, Any], q: dict[str, str]
                       ) -> tuple[int, Any]:
        _check_keys(body, ("refresh_token",), "refresh-token")
        rt = body.get("refresh_token")
        if rt is not None and (not isinstance(rt, str) or not rt):
            raise SimError("refresh-token: 'refresh_token' must be a string or null")
        self.refresh_valid.clear()
        self.refresh_current = rt
        if rt is not None:
            self.refresh_valid[rt] = self.refresh_seen.setdefault(rt, -1)
        return 200, {"refresh_token": rt}

    def _c_config(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        _check_keys(body, ("tenant_limit", "token_ttl", "strict_rotation"), "config")
        if "tenant_limit" in body:
            self.cfg.tenant_limit = _int(body, "tenant_limit", "config")
        if "token_ttl" in body:
            self.cfg.token_ttl = _int(body, "token_ttl", "config")
        if "strict_rotation" in body:
            if not isinstance(body["strict_rotation"], bool):
                raise SimError("config: 'strict_rotation' must be true or false")
            self.cfg.strict_rotation = body["strict_rotation"]
            if self.cfg.strict_rotation:  # strict from now on: only the current one is valid
                cur = self.refresh_current
                self.refresh_valid = {cur: self.refresh_seen[cur]} if cur is not None else {}
        return 200, {"tenant_limit": self.cfg.tenant_limit, "token_ttl": self.cfg.token_ttl,
                     "strict_rotation": self.cfg.strict_rotation}


# ---------------------------------------------------------------------------------------
# HTTP


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pcsim"
    sys_version = ""
    timeout = 120
    disable_nagle_algorithm = True
    server: SimServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BODY:
                    self.send_error(413)
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return None
        if n < 0 or n > MAX_REQUEST_BODY:
            self.send_error(413)
            return None
        return self.rfile.read(n)

    def _dispatch(self) -> None:
        mono, wall = time.monotonic(), time.time()
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if body is None:
            return
        path, _, query = self.path.partition("?")
        is_tls = isinstance(self.connection, ssl.SSLSocket)
        req = Request(self.command, path, query, self.headers, body, mono, wall, is_tls)
        sim = self.server.sim
        try:
            if path == "/_control" or path.startswith("/_control/"):
                plan = sim.handle_control(req)
            elif self.server.tls_ctx is not None and not is_tls:
                plan = sim.handle_plain_on_tls(req)
            else:
                plan = sim.handle(req)
        except Exception:
            sim.log("internal error: " + traceback.format_exc())
            plan = json_plan(500, {"error": "internal simulator error"})
            plan.close = True
        self._send(plan)

    def _send(self, plan: Plan) -> None:
        try:
            if plan.delay > 0:
                time.sleep(plan.delay)
            if plan.reset:
                self._reset()
                return
            lines = [f"HTTP/1.1 {plan.status} {_phrase(plan.status)}",
                     f"Date: {formatdate(usegmt=True)}", "Server: pcsim"]
            if plan.content_type:
                lines.append(f"Content-Type: {plan.content_type}")
            lines.append(f"Content-Length: {len(plan.body)}")
            lines += [f"{k}: {v}" for k, v in plan.headers]
            if plan.close:
                self.close_connection = True
            if self.close_connection:
                lines.append("Connection: close")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            body = b"" if self.command == "HEAD" else plan.body
            if plan.drip > 0:
                self.wfile.write(head)
                for i in range(len(body)):
                    time.sleep(plan.drip)
                    self.wfile.write(body[i:i + 1])
            else:
                self.wfile.write(head + body)
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: Simulator,
                 tls_ctx: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sim = sim
        self.tls_ctx = tls_ctx
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup; loopback needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn = request
        if self.tls_ctx is not None:
            conn = self._accept_tls(request)
            if conn is None:
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            if conn is not request:
                try:
                    conn.close()
                except OSError:
                    pass

    def _accept_tls(self, sock: socket.socket) -> socket.socket | None:
        """TLS if the client starts a handshake, plain HTTP (for /_control) otherwise."""
        sock.settimeout(10)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return None
        if first != b"\x16":
            return sock if first else None
        try:
            return self.tls_ctx.wrap_socket(sock, server_side=True)  # type: ignore[union-attr]
        except (ssl.SSLError, OSError) as e:
            self.sim.note_tls_failure()
            if self.sim.log.requests:
                self.sim.log(f"TLS handshake failed: {e}")
            return None

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        self.sim.log(f"error serving {client_address}: " + traceback.format_exc())


# ---------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str]) -> argparse.Namespace:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(
        prog="pcsim.py", description=doc.split("\n\n")[0],
        epilog=doc[doc.find("\nTIME\n") + 1:], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--scenario", action="append", default=[], help="scenario JSON file")
    p.add_argument("--generate", type=int, default=0, metavar="N", help="generate N orders")
    p.add_argument("--in-flight", type=int, metavar="K",
                   help="generated orders that keep changing (default N//10)")
    p.add_argument("--change-every", type=float, default=60.0, metavar="SECONDS",
                   help="mean seconds between changes of an in-flight order (default 60)")
    p.add_argument("--seed", type=int, help="random seed for deterministic runs")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--token-ttl", type=int, default=3600, metavar="SECONDS",
                   help="access token lifetime (default 3600)")
    p.add_argument("--strict-rotation", action="store_true",
                   help="a redeemed refresh token becomes invalid at once")
    p.add_argument("--tenant-limit", type=int, default=500, metavar="N",
                   help="API requests per tenant per 60 s (default 500, 0 = unlimited)")
    p.add_argument("--log", metavar="FILE", help="diagnostics and a line per request go here")
    p.add_argument("--refresh-token", default="initial-refresh-token", metavar="RT",
                   help="initial valid refresh token")
    p.add_argument("--client-id", default="test-client", metavar="ID")
    p.add_argument("--client-secret", default="test-secret", metavar="SECRET")
    p.add_argument("--history-max", type=int, default=200000, metavar="N",
                   help="request and change records kept, each (default 200000)")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.generate < 0 or args.token_ttl < 1 or args.change_every <= 0:
        p.error("--generate must be >= 0, --token-ttl >= 1, --change-every > 0")
    if args.in_flight is None:
        args.in_flight = args.generate // 10
    if not 0 <= args.in_flight <= args.generate:
        p.error("--in-flight must be between 0 and --generate")
    host = "127.0.0.1" if args.host == "localhost" else args.host
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError
    except ValueError:
        p.error(f"--host {args.host!r}: only loopback addresses are allowed")
    args.host = host
    return args


def write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    log = Log(args.log)
    try:
        orders: list[Order] = []
        for path in args.scenario:
            orders += load_scenario(path)
        cfg = Config(args.client_id, args.client_secret, args.refresh_token, args.token_ttl,
                     args.strict_rotation, args.tenant_limit, args.change_every,
                     args.history_max, args.seed)
        sim = Simulator(cfg, [], log)
        orders += generate_orders(args.generate, args.in_flight, sim.rng)
        for o in orders:
            if o.key in sim.orders:
                raise SimError(f"order {o.customer}/{o.order} defined twice")
            sim.orders[o.key] = o
        tls_ctx = None
        if args.tls_cert:
            tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls_ctx.load_cert_chain(args.tls_cert, args.tls_key)
            tls_ctx.set_alpn_protocols(["http/1.1"])
        server = SimServer((args.host, args.port), sim, tls_ctx)
    except (SimError, OSError, ssl.SSLError) as e:
        log(f"error: {e}")
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sim.start()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                               name="serve", daemon=True)
    serving.start()
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    log(f"listening on {'https' if tls_ctx else 'http'}://"
        f"{'[' + args.host + ']' if ':' in args.host else args.host}:{port} "
        f"with {len(sim.orders)} orders")
    while not stop.wait(0.5):
        pass
    server.shutdown()
    sim.stop()
    server.server_close()
    if args.port_file:
        try:
            os.unlink(args.port_file)
        except OSError:
            pass
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
