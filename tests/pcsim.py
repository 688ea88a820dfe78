#!/usr/bin/env python3
"""pcsim - a Microsoft Partner Center simulator for provwatch's tests, benchmarks and demo.

Python 3.11 standard library only. Serves, on one loopback listener, the Entra ID v1 token
endpoint, the Partner Center endpoints provwatch uses (order provisioning status, the
activity log, the customer list and each customer's orders), and a control API that tests
use to script orders, place them, write activity-log records, move the simulated clock,
inject faults and read what the client did.

COMMAND LINE
    pcsim.py [--host 127.0.0.1|::1] [--port 0] [--port-file FILE]
             [--scenario FILE.json]... [--generate N] [--in-flight K] [--change-every SECONDS]
             [--place N] [--place-over SECONDS] [--fulfil-after SECONDS] [--customers N]
             [--clock RFC3339] [--audit-lag SECONDS] [--audit-order asc|desc]
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
    --place N         place N orders, each with its create_order activity-log record, at
                      uniformly random times in the first --place-over seconds (default 60).
                      Customers: the first min(N, 26) names of a list of fictitious companies
                      ("Fabrikam Ltd", "Northwind Traders", ...), random GUIDs; 1-3 line items
                      (numbers and orderLineItemIds 0, 1, 2) of distinct offers of a catalog
                      of 14 Microsoft 365 offers, quantities 1-300; random 24-character order
                      ids. Each line item is prefulfillmentpending for its whole quantity
                      when placed, partly fulfilled at 30-70 % of the way (quantity > 1) and
                      fulfilled after --fulfil-after seconds (default 60), jittered +-50 %
                      per line item
    --customers N     add N customers without orders ("<company> <k>", random GUIDs), e.g. to
                      make a sweep of the customer list cost what it costs a large partner
    --clock T         start the simulated clock (TIME) at the RFC 3339 time T, e.g.
                      2026-12-06T23:59:30Z (default: the wall clock)
    --audit-lag S     an activity-log record becomes visible S seconds after its
                      operationDate, on the simulated clock (default 0; ACTIVITY LOG)
    --audit-order     asc (default): the activity log answers oldest first; desc: newest first
    --seed S          make generated and placed orders, their changes, ids, MS-CV values and
                      the token values deterministic (for requests made in the same order)
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
    "t" values and scenario "at"/"visible_after"/"placed_at" are seconds since the simulator
    started listening. "mono" values are CLOCK_MONOTONIC seconds (time.monotonic(), system-wide
    on Linux, so comparable with the daemon's monotonic clock); "wall" values are Unix seconds.
    The simulated clock ("sim", Unix seconds; RFC 3339 in answers) is the wall clock plus an
    offset: 0 unless --clock or POST /_control/clock sets one. It dates what Partner Center
    dates: activity-log records (operationDate, and their visibility lag), the "today" of the
    activity log's 90-day limit, and order creation dates. Moving it moves nothing else:
    scripted steps, visible_after, placed_at, token lifetimes and rate-limit windows keep
    running on "t", and token expires_on/not_before stay on the wall clock. Records already
    visible stay visible when the clock moves back. To let records fall on both sides of
    midnight UTC, set {"now": "<date>T23:59:30Z"} and place orders before and after it. A
    client under test reads its own clock: keep the offset within about a day of the wall
    clock, or the client's startDate (its now minus its lookback) may fall outside the 90 days
    of the simulated today.

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
    400 invalid_grant (unknown, superseded or revoked refresh token) with the body
    {"error":"invalid_grant","error_description":"AADSTS700082: ...","error_codes":[700082]},
    or the one POST /_control/config {"invalid_grant_body": {...}} sets.
    Requests are recorded with kind and op "token" (counted apart from the API).
    A refresh token that has expired for good, then a new one by consent (auth alerts):
        POST /_control/config {"invalid_grant_body": BODY}   (e.g. the fixture
                                       token-error-refresh-expired.json)
        POST /_control/refresh-token {"refresh_token": null}  every grant now answers 400 BODY
        ... later: POST /_control/refresh-token {"refresh_token": "new-rt"}: only new-rt is
        valid; a grant with it succeeds and rotates as usual.
    For n requests only: POST /_control/fault {"target":"token","kind":"invalid_grant",
    "body":BODY,"count":n} (or kind "status" with "status" and "body").

API  (every Partner Center operation below, op = the name in the request log)
    Needs "Authorization: Bearer <valid unexpired access token>", else 401 with
    {"code":401,"description":..,"data":[],"source":"PartnerFD"} and WWW-Authenticate. GET
    only (else 405). The tenant of a request is the tenant path segment its token was issued
    for. Each tenant gets --tenant-limit requests per sliding 60 s over all operations (401s
    and 429s do not count); beyond that: 429, Retry-After: <seconds until a slot frees, >= 1>,
    {"statusCode":429,"message":"Rate limit is exceeded. Try again in N seconds."}.
    Every answer, error answers and faults included (not a reset connection), carries
    "MS-CV: <22 base64 characters>.<digit>", random per answer, recorded as "ms_cv".
    MS-CorrelationId and MS-RequestId are echoed in the response headers. Bodies are
    application/json; charset=utf-8; error bodies {"code","description","data":[],"source"}.
    Paged collections (activity log, customers; provisioningstatus with the paginate fault)
    carry, while more remains, links.next = {"uri": "<this collection's uri>&seekOperation=Next"
    (or ?seekOperation=Next), "method":"GET","headers":[{"key":"MS-ContinuationToken",
    "value":TOKEN}]}; the next page is GET /v{N}<uri> with that header; a missing or unknown
    token: 400 {"code":"800002","description":"Invalid request input",..}. links.self is
    this page's uri. The result is fixed at the first page, so what is added meanwhile never
    shifts or repeats a page; "totalCount" counts the whole result on every page.

  GET /v{N}/customers/{customer}/orders/{order}/provisioningstatus    op "provisioningstatus"
    200: {"totalCount":n,"items":[{"orderLineItemId":..,"lineItemNumber":..,"status":..,
          "quantityProvisioningInformation":[{"quantity":q,"status":..}]}],
          "attributes":{"objectType":"Collection"}}.
    Unknown, removed or not yet visible order (visible_after, placed_at): 404
    {"code":20000,"description":"Order ID not found","data":[],"source":"PartnerFD"}.

  GET /v{N}/auditrecords?startDate=D[&endDate=D][&size=S][&filter=F][&seekOperation=Next]
                                                                        op "auditrecords"
    The activity log (ACTIVITY LOG below). D is YYYY-MM-DD; S 1..500, default 500; F the
    URL-encoded JSON {"Field":..,"Value":..,"Operator":..}:
        {"Field":"ResourceType","Value":"Order","Operator":"equals"}  resourceType, any case
        {"Field":"CustomerId","Value":ID,"Operator":"equals"}          customerId, any case
        {"Field":"CompanyName","Value":TEXT,"Operator":"substring"}    within customerName
    (Operator in any case); no filter: every record. Answers the visible records with
    startDate 00:00:00Z <= operationDate < (endDate + 1 day) 00:00:00Z, oldest first (by
    operationDate, then as written; newest first with audit_order "desc"), size per page:
    {"totalCount":n,"items":[AUDIT_RECORD...],"links":{"self":..[,"next":..]},
     "attributes":{"objectType":"Collection"}}; the first page's links.self is
    "/auditrecords?startDate=D[&endDate=D]&size=S[&filter=F]" (F re-encoded compactly).
    400 {"code":400,"description":..,"data":[],"source":"PartnerFD"} (result "bad_request")
    for a missing or malformed startDate, a malformed endDate or one before startDate, a
    size outside 1..500, a filter that is not such an object or has another field or
    operator. A startDate more than 90 days before the simulated today: 400 exactly
    {"code":400,"description":"Start date must be within the last 90 days.","data":[],
    "source":"PartnerFD"} (result "too_old").

  GET /v{N}/customers[?size=S][&seekOperation=Next]                     op "customers"
    Every customer (CUSTOMERS AND ORDER DETAILS), in the order they became known (those of
    --customers first), S per page (1..500, default 500, else 400):
    {"totalCount":n,"items":[{"id":ID,"companyProfile":{"tenantId":ID,
    "domain":"<name's letters and digits>.onmicrosoft.com","companyName":NAME},
    "relationshipToPartner":"reseller","attributes":{"objectType":"Customer"}}...],
    "links":{"self":{"uri":"/customers?size=S",..}[,"next":..]},"attributes":..}.

  GET /v{N}/customers/{customer}/orders                                 op "customer-orders"
    The customer's orders that provisioningstatus answers (not removed, visible, placed),
    newest creationDate first, unpaged: {"totalCount":n,"items":[{"id","referenceCustomerId",
    "billingCycle":"monthly","lineItems":[{"lineItemNumber","offerId","friendlyName",
    "quantity","links":{}}],"creationDate","status","transactionType":"UserPurchase",
    "links","attributes":{"objectType":"Order"}}],"links":{"self":{"uri":
    "/customers/{customer}/orders",..}},"attributes":{"objectType":"Collection"}}.
    status is "pending" while a line item is absent or not fulfilled/unfulfilled, else
    "completed"; a pending order's links are {"provisioningStatus":..,"self":..}, a completed
    one's {}. Unknown customer: 404 {"code":600008,"description":"The requested customer was
    not found.","data":[],"source":"PartnerFD"}.

ACTIVITY LOG
    Records are written by placing orders (POST /_control/place, --place, scenario "placed"
    or "placed_at": a succeeded create_order dated when placed) and by POST
    /_control/auditrecords. A record has a date, which orders and filters it: its
    operationDate (for a raw record the "date"/"offset" given, else its operationDate if
    that parses, else the time it was written). It becomes visible when the simulated clock
    reaches its date + the lag (--audit-lag, config "audit_lag"; a change of the lag applies
    to records not yet visible) or the time given for it. Once visible it stays visible;
    that moment is logged as a change of kind "audit_visible" (CHANGE).
    AUDIT_RECORD (as auditrecords-orders-1.json):
        {"id":"<partnerId>_<customerId>_<orderId>_<operationType without _>_<.NET ticks of
               operationDate>",
         "partnerId":"5c0e2f1a-7d3b-4c8e-9a61-2b4d6f8e0a13","participants":[partnerId],
         "customerId","customerName","userPrincipalName":"agent@partner.onmicrosoft.com",
         "applicationId":"Partner Center Web","resourceType":"order",
         "resourceNewValue": the order when written, as a JSON string: {"Id","AlternateId",
             "ReferenceCustomerId","BillingCycle":"monthly","CurrencyCode","CurrencySymbol",
             "LineItems":[{"LineItemNumber","OfferId","FriendlyName","Quantity",
             "TermDuration":"P1Y","TransactionType":"New",.. (nulls), "Links":{}}],
             "CreationDate","Status":"pending"|"completed","TransactionType":"UserPurchase",
             "Links":{"ProvisioningStatus":{"Uri":"/customers/C/orders/O/provisioningstatus",
             "Method":"GET","Body":null,"Headers":[]}},"Attributes":{"ObjectType":"Order"}},
         "operationType":"create_order"|"update_order"|..,"originalCorrelationId":UUID,
         "operationDate":"YYYY-MM-DDTHH:MM:SS.fffffffZ","operationStatus":"succeeded"|..,
         "customizedData":[{"key":"OrderId","value":O},{"key":"BillingCycle","value":"Monthly"},
             and per line item N {"key":"OfferId-N"},{"key":"SubscriptionName-N"},
             {"key":"Quantity-N","value":"<quantity>"}],
         "attributes":{"objectType":"AuditRecord"}}
    A record of an unknown order holds an order without line items (null when "failed");
    other resource types hold {"Id":..,"Attributes":{"ObjectType":..}} (a customer: its
    company profile) and no customizedData entries.

CUSTOMERS AND ORDER DETAILS
    Customers: those of scenario and generated orders (at start), of /_control/set and
    /_control/place, POST /_control/customer, --place and --customers. A customer without a
    name is "Customer <first 8 characters of its id>"; "customer_name" (scenario, place,
    auditrecords) names or renames it. A line item's offer id, friendly name and ordered
    quantity are those placed or given in the scenario; defaults: the catalog offer at
    (line item number % 14) and the first step's total quantity (at least 1). Creation
    date: a placed order's is the date of its create_order record; a scenario or generated
    order's the simulated time at start; a /_control/set order's the time it was created.

SCENARIO FILE
    {"orders": [{"customer": "c1", "order": "o1",
                 "customer_name": "Fabrikam Ltd",  # optional
                 "visible_after": 0,      # seconds answering 404 (new-order lag); default 0;
                                          # for a placed order counted from placed_at
                 "placed": false,         # true: its create_order record is written at start
                 "placed_at": 30,         # or at this second; 404 and unlisted before it
                 "manual": false,         # true: steps advance only through /_control/advance
                 "line_items": [{"number": 0, "olid": 0,      # olid optional: omitted if absent
                                 "offer_id": "..", "friendly_name": "..", "quantity": 5,
                                                              # optional (defaults above)
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
    Errors: 400 {"error": "what is wrong"} for an invalid request (nothing is changed),
    404 for an unknown endpoint or object, 409 for a conflict.
    GET    /_control/health          -> {"ok":true}
    GET    /_control/orders[?customer=C&order=O]  -> {"orders":[ORDER_STATE...]}
    POST   /_control/advance {"customer","order"} | {}  -> {"orders":[ORDER_STATE...]}
           (one manual order, or every manual order; 409 for a time-driven order)
    POST   /_control/set {"customer","order","line_items":[{"number","olid"?,"status",
           "quantities"?,"qpi"?}],"visible_after"?} -> {"order":ORDER_STATE}
           replaces the current state (creates the order if unknown). The order becomes
           manual: its pending scheduled/generated changes are cancelled.
    POST   /_control/remove {"customer","order"} -> {"removed":bool}; 404 from now on
    POST   /_control/place {"customer", "customer_name"?, "order"? (default: random
           24 characters), "line_items": [LINE...] (non-empty), "manual"? (default false),
           "visible_after"? (seconds of 404 from now, default 0), "fulfil_after"? (default
           config fulfil_after; null: stays pending), "date"? (RFC 3339) | "offset"? (seconds
           before now)} -> {"order":ORDER_STATE,"record":AUDIT_RECORD,"audit":AUDIT_INFO}
           creates the order (409 if it exists) and its succeeded create_order record dated
           now, or at date/offset (also its creation date). LINE = {"number"? (default: next
           free), "olid"?, "offer_id"?, "friendly_name"?, "quantity"?} and either scenario
           "status"/"quantities"/"qpi" or "steps" (their "at" counted from now), or neither:
           prefulfillmentpending for the whole quantity (default 1) now, fulfilled after
           fulfil_after (a manual order reaches that step by /_control/advance). The new line
           items are changes of kind "added", cause "place".
    GET    /_control/auditrecords -> {"records":[AUDIT_INFO + {"record":AUDIT_RECORD}...]}
           every record, visible or not, as written
    POST   /_control/auditrecords  writes one record -> {"record","audit":AUDIT_INFO,
           "order"?:ORDER_STATE (when the order exists)}:
           {"raw": {any JSON object}, "date"?|"offset"?, "visible_at"?|"visible_after"?}
               appended as it is (malformed records: no id, unparseable resourceNewValue,
               other resource types); its date is "date"/"offset", else its operationDate if
               that parses, else now.
           {"operation": "create_order"|"update_order"|.. (any string), "customer",
            "order" (required for resource type order), "customer_name"?,
            "status"? (operationStatus, default "succeeded"), "resource_type"? (default
            "order"), "omit_id"?, "omit_customized"? (drop "id" / "customizedData"),
            "resource_new_value"? (string used as is, other JSON serialized, null),
            "add_line_items"? [LINE...] (update_order of an existing order only: the line
            items are added first (changes cause "update") and the record holds the order
            with them), "fulfil_after"?, "date"?|"offset"?, "visible_at"?|"visible_after"?}
               a record built like the placed ones, holding the order as it is now.
           "visible_at": RFC 3339 or simulated Unix seconds; "visible_after": seconds from
           now; default: date + lag.
    GET    /_control/customers -> {"customers":[CUSTOMER + {"orders": n}...]} (CUSTOMER as
           the API lists it)
    POST   /_control/customer {"id","name"?} -> {"customer":CUSTOMER}  adds or renames
    GET    /_control/clock -> CLOCK = {"now": RFC 3339 with 7 fractional digits, "unix":
           simulated Unix seconds, "offset": seconds ahead of the wall clock, "today":
           "YYYY-MM-DD" (UTC)}
    POST   /_control/clock {"offset": s} | {"now": RFC 3339} | {"advance": s} -> CLOCK
           exactly one: set the offset, set the simulated now, or add s (may be < 0)
    POST   /_control/fault {FAULT} -> {"id":n};  GET /_control/fault -> {"faults":[...]}
    DELETE /_control/fault  (all) -> {"deleted":n};  DELETE /_control/fault/{id} -> {"deleted":0|1}
    GET    /_control/requests[?since=I][&limit=L][&kind=api|token|other][&op=OP]
           -> {"next":I,"dropped":D,"requests":[RECORD...]}   (limit default 100000)
    GET    /_control/changes[?since=I][&limit=L] -> {"next":I,"dropped":D,"changes":[CHANGE...]}
    GET    /_control/stats -> {"uptime","requests","by_status":{"200":n,..},
           "by_kind":{"api","token","control","other"},"by_kind_status":{"api":{"200":n}..},
           "by_op":{op:n},"rate_limited","tokens_issued","refresh_tokens_issued",
           "valid_refresh_tokens","valid_access_tokens","faults_applied":{kind:n},
           "tls_handshake_failures","orders","changes","active_faults","audit_records",
           "audit_visible","customers","clock_offset"}
    POST   /_control/tokens/expire -> {"expired":n}   every access token is expired now
    GET    /_control/refresh-token -> {"refresh_token":current|null}
    POST   /_control/refresh-token {"refresh_token":"x"|null} -> only x is valid (null: none)
    POST   /_control/config {"tenant_limit"?,"token_ttl"?,"strict_rotation"?,"audit_lag"?,
           "audit_order"?: "asc"|"desc","fulfil_after"?,"invalid_grant_body"?: {..}|null
           (null: the default)} -> the current values of all of them
           (turning strict_rotation on leaves only the current refresh token valid)

    ORDER_STATE = {"customer","customer_name","order","manual","visible","visible_at",
        "placed_at" ("t", null if not placed),"created" (RFC 3339 or null before placement),
        "status" ("pending"|"completed"),"line_items":[{"number","olid","status",
        "quantities","qpi","step","steps","offer_id","friendly_name","quantity"}]};
        "quantities" is the normalized map (statuses lowercased, summed, zero sums dropped),
        "qpi" what is sent ([[status,q],...] or null when omitted); a line item not yet
        present has status null.
    AUDIT_INFO = {"index" (order of writing),"visible","date","visible_at" (RFC 3339,
        simulated clock),"customer","order"}
    RECORD = {"index","t","mono","wall","sim","method","path" (with query),"query" ({name:
        value}, decoded),"kind":"api|token|other","op":"provisioningstatus|auditrecords|
        customers|customer-orders" (kind api) | "token" | null,"tenant","status" (0 =
        connection reset, no answer),"auth":"valid|expired|unknown|malformed|missing",
        "customer","order","faults":[kind...] (applied to this request),"ms_cv" (the MS-CV
        answered; null for token, other and reset),
        "result": api: ok|not_found|bad_continuation|bad_request|too_old|fault|unauthorized|
        rate_limited|method; token: ok|invalid_grant|invalid_client|unauthorized_client|
        invalid_request|not_form|unsupported_grant_type|fault|method;
        other: no_route|plain_http_on_tls, "tls",
        "headers":{"MS-CorrelationId","MS-RequestId","X-Locale","Accept","User-Agent",
        "MS-ContinuationToken","Content-Type"} (null when absent; never Authorization),
        "token":{"grant_type","client_id","resource","refresh_token":"valid|superseded|
        unknown|missing","refresh_token_seq"} (token requests; seq 0 = the initial token),
        "change_index" (the index the next CHANGE had when the answer was decided: the answer
        shows every change with a lower index and none from it on; answers are decided when
        the request arrives, before any delay),
        "done_mono" (when the answer was done: taken just before its last bytes were written,
        so no client can have had it whole earlier, or when the connection was reset or
        writing failed; null while the answer is pending, e.g. during a slow fault)}.
        A client that waits for each answer before its next request to an order never has a
        request arrive ("mono") before the "done_mono" of its previous one.
    CHANGE = {"index","t","mono","wall","sim","customer","order","number","olid",
        "kind":"added|changed|removed|order_removed","status","quantities","old_status",
        "old_quantities","cause":"schedule|generate|advance|set|remove|place|update"}.
        Recorded only when the normalized state (lowercased status + quantity map) differs,
        i.e. exactly when a correct client would emit an event. Initial states and an order
        becoming visible (visible_after, placed_at) are not changes.
        An activity-log record becoming visible is {"index","t","mono","wall","sim",
        "kind":"audit_visible","customer","order","record" (its id, null if none),
        "operation","operation_status","resource_type","operation_date","audit_index",
        "cause":"audit"}, logged when it happens (the scheduler wakes for it).

FAULTS  POST /_control/fault
    {"kind": K, "target": "api"|"auditrecords"|"customers"|"customer-orders"|"token"
     (default api = provisioningstatus), "customer"? (api, customer-orders), "order"? (api),
     "count": n (default -1 = until deleted), "skip": n (let n matching requests pass first),
     ...kind parameters}
    Matching faults apply in installation order, each consuming one of its count; the first
    fault that replaces the answer ends the chain (later ones are not consumed). JSON
    transforms are not consumed by requests that answer 404/400; delays and byte transforms
    apply to any answer. Faults apply after the auth and rate-limit checks (a faulted request
    counts toward the tenant's limit). Targets auditrecords, customers and customer-orders
    take the kinds status, 429, malformed, garbage, reset, down, slow, huge, bom, truncated,
    slowloris and wrong-type (field items|totalCount); a status 404 without a body answers
    the operation's 404 (order, customer not found; else {"code":404,"description":
    "Resource not found"}).
    Replacing the answer:
      status       {"status":500|503|400|403|401|404|..,"body"?:str|json,"content_type"?,"retry_after"?}
      429          {"retry_after"?: seconds|str (default 1; null = no header)}, body as Partner Center
      malformed    200 with invalid JSON ("body"? overrides)
      garbage      200 with non-JSON text/html ("body"? overrides)
      reset, down  close the connection with a TCP RST, no answer
      invalid_grant  (token only) {"status"? (default 400), "body"? (default: the
                   invalid_grant body, see TOKEN ENDPOINT)}
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
                           item fields change in the first line item (one is added if none);
                           items and totalCount also on the other API targets
      paginate             {"page_size": n (default 1), "extra_headers": k (default 0)}:
                           links.next as Partner Center sends it; the next page
                           (?seekOperation=Next) needs the given MS-ContinuationToken header
                           (and with k > 0 the k more headers X-Page-Extra-1..k the link
                           names, each with its value), else 400 (code "800002")
      huge                 (every target) a valid JSON body over 9 MiB
    Transforms of the bytes (every target):
      bom                  prefix a UTF-8 byte-order mark
      truncated            only the first half of the body, Content-Length matching it
      slowloris            {"delay": s (default 0.05)} headers, then one body byte every s
"""

from __future__ import annotations

import argparse
import base64
import calendar
import collections
import datetime
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
import uuid
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
MAX_PAGE_SIZE = 500  # activity log and customers: size=1..500, default 500
AUDIT_MAX_DAYS = 90  # a startDate further back than this is refused
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


class ApiError(Exception):
    """A Partner Center API request the simulator refuses (answered, recorded as result)."""

    def __init__(self, status: int, body: Any, result: str) -> None:
        super().__init__(result)
        self.status, self.body, self.result = status, body, result


# ---------------------------------------------------------------------------------------
# The simulated wall clock: integer ticks of 100 ns since the Unix epoch, as .NET counts

TICKS = 10_000_000
DOTNET_EPOCH_TICKS = 621355968000000000  # .NET DateTime ticks of 1970-01-01T00:00:00Z
TICKS_PER_DAY = 86400 * TICKS
MAX_TICKS = 253402300799 * TICKS  # 9999-12-31T23:59:59Z
RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                     r"([Zz]|[+-]\d{2}:\d{2})$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(text: Any) -> int:
    """RFC 3339 date-time (any number of fractional digits, 7 kept) -> ticks."""
    m = RFC3339.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not an RFC 3339 time such as 2026-12-06T23:59:30Z")
    zone = "+00:00" if m[6] in "Zz" else m[6]
    dt = datetime.datetime.fromisoformat(f"{m[1]}T{m[2]}:{m[3]}:{m[4]}{zone}")
    return calendar.timegm(dt.utctimetuple()) * TICKS + int((m[5] or "")[:7].ljust(7, "0"))


def in_range(ticks: int, where: str) -> int:
    """Simulated times stay within 1970..9999, which every date function handles."""
    if not 0 <= ticks <= MAX_TICKS:
        raise SimError(f"{where}: the time falls outside 1970-01-01..9999-12-31")
    return ticks


def time_arg(obj: dict[str, Any], key: str, where: str) -> int:
    """A control request's RFC 3339 member -> ticks; a clear error naming it."""
    try:
        ticks = parse_time(obj[key])
    except ValueError as e:
        raise SimError(f"{where}: {key!r}: {e}") from None
    return in_range(ticks, where)


def parse_day(text: Any) -> datetime.date:
    """YYYY-MM-DD, strictly."""
    if not isinstance(text, str) or not DAY.match(text):
        raise ValueError(f"{text!r} is not a date YYYY-MM-DD")
    return datetime.date.fromisoformat(text)


def fmt_ticks(ticks: int) -> str:
    """Partner Center's operationDate form: seven fractional digits and Z."""
    secs, frac = divmod(ticks, TICKS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:07d}Z"


def day_of(ticks: int) -> datetime.date:
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=ticks // TICKS_PER_DAY)


def day_ticks(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days * TICKS_PER_DAY


# ---------------------------------------------------------------------------------------
# Names the activity log and the customer list show

PARTNER_ID = "5c0e2f1a-7d3b-4c8e-9a61-2b4d6f8e0a13"
AGENT_UPN = "agent@partner.onmicrosoft.com"
TERMINAL = ("fulfilled", "unfulfilled")
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
CATALOG: tuple[tuple[str, str], ...] = (  # (offer id, friendly name), Microsoft 365 offers
    ("CFQ7TTC0LH18:0001:CFQ7TTC0KHS4", "Microsoft 365 Business Premium"),
    ("CFQ7TTC0LF8Q:0001:CFQ7TTC0J1FV", "Microsoft 365 E3"),
    ("CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF", "Microsoft Defender for Endpoint P1"),
    ("CFQ7TTC0LCHC:0002:CFQ7TTC0KDLJ", "Exchange Online (Plan 1)"),
    ("CFQ7TTC0LH0R:0002:CFQ7TTC0KRRT", "Microsoft Teams Essentials"),
    ("CFQ7TTC0LHRP:0001:CFQ7TTC0KV2N", "Microsoft 365 Business Basic"),
    ("CFQ7TTC0LDPB:0001:CFQ7TTC0K5HZ", "Microsoft 365 Business Standard"),
    ("CFQ7TTC0LFLZ:0002:CFQ7TTC0J1G1", "Microsoft 365 E5"),
    ("CFQ7TTC0LF8R:0001:CFQ7TTC0J1FW", "Office 365 E1"),
    ("CFQ7TTC0LH1G:0001:CFQ7TTC0K6FN", "Microsoft 365 Apps for business"),
    ("CFQ7TTC0LFK5:0001:CFQ7TTC0J4Q3", "Microsoft Entra ID P1"),
    ("CFQ7TTC0HDKS:0001:CFQ7TTC0KC4V", "Power BI Pro"),
    ("CFQ7TTC0HD33:0001:CFQ7TTC0KD3G", "Visio Plan 2"),
    ("CFQ7TTC0HDB0:0001:CFQ7TTC0KD9J", "Project Plan 3"),
)
CATALOG_NAMES = dict(CATALOG)
CUSTOMER_NAMES = (
    "Fabrikam Ltd", "Northwind Traders", "Contoso Pharmaceuticals", "Adventure Works Cycles",
    "Tailspin Toys", "Woodgrove Bank", "Litware Inc", "Proseware Inc", "Wide World Importers",
    "Alpine Ski House", "Coho Winery", "Fourth Coffee", "Lamna Healthcare", "Margie's Travel",
    "Trey Research", "Wingtip Toys", "Relecloud", "Lucerne Publishing", "A. Datum Corporation",
    "Blue Yonder Airlines", "Graphic Design Institute", "Humongous Insurance",
    "Southridge Video", "Consolidated Messenger", "VanArsdel Ltd", "Bellows College",
)


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Customer:
    id: str
    name: str

    def wire(self) -> dict[str, Any]:
        domain = re.sub(r"[^a-z0-9]", "", self.name.lower())[:27] or "customer"
        return {"id": self.id, "companyProfile": {
                    "tenantId": self.id, "domain": f"{domain}.onmicrosoft.com",
                    "companyName": self.name},
                "relationshipToPartner": "reseller", "attributes": {"objectType": "Customer"}}


@dataclass
class AuditEntry:
    """One activity-log record; visible (latched) once the simulated clock reaches due()."""
    seq: int
    ticks: int  # its operationDate: the sort and date-filter key
    record: dict[str, Any]
    visible_at: int | None  # explicit, in ticks; None: operationDate + the current lag
    customer: Any
    order: Any
    visible: bool = False

    def due(self, lag_ticks: int) -> int:
        return self.visible_at if self.visible_at is not None else self.ticks + lag_ticks

    def info(self, lag_ticks: int) -> dict[str, Any]:
        return {"index": self.seq, "visible": self.visible, "date": fmt_ticks(self.ticks),
                "visible_at": fmt_ticks(self.due(lag_ticks)), "customer": self.customer,
                "order": self.order}


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
    offer_id: str | None = None
    friendly_name: str | None = None
    quantity: int | None = None  # ordered quantity

    def offer(self) -> tuple[str, str]:
        """Offer id and friendly name; defaults from the catalog by line item number."""
        if self.offer_id is None:
            oid, name = CATALOG[self.number % len(CATALOG)]
        else:
            oid, name = self.offer_id, CATALOG_NAMES.get(self.offer_id, self.offer_id)
        return oid, self.friendly_name or name

    def ordered(self) -> int:
        """The ordered quantity; default: the first step's total quantity, at least 1."""
        if self.quantity is not None:
            return self.quantity
        first = self.steps[0][1] if self.steps else self.state
        if first is None or not first.qpi:
            return 1
        return max(1, sum(q for _, q in first.qpi))

    def terminal(self) -> bool:
        return self.state is not None and self.state.status.lower() in TERMINAL

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
        oid, name = self.offer()
        return {"number": self.number, "olid": self.olid,
                "status": st.status if st else None,
                "quantities": st.quantities() if st else None,
                "qpi": [list(p) for p in st.qpi] if st and st.qpi is not None else None,
                "step": self.step, "steps": len(self.steps),
                "offer_id": oid, "friendly_name": name, "quantity": self.ordered()}


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
    customer_name: str | None = None  # scenario/place input; the customer list holds names
    placed_at: float | None = None  # "t" of its create_order record (None: not placed)
    created: int | None = None  # creation date, ticks on the simulated clock

    @property
    def key(self) -> tuple[str, str]:
        return self.customer, self.order

    def status(self) -> str:
        """Partner Center's order status: pending until every line item is terminal."""
        return "completed" if all(li.terminal() for li in self.items) else "pending"

    def _links(self) -> tuple[str, str]:
        base = f"/customers/{quote(self.customer, safe='')}/orders/{quote(self.order, safe='')}"
        return base, base + "/provisioningstatus"

    def document(self) -> dict[str, Any]:
        """The order as the activity log's resourceNewValue holds it (PascalCase)."""
        _, status_uri = self._links()
        items: list[dict[str, Any]] = []
        for li in self.items:
            oid, name = li.offer()
            items.append({"LineItemNumber": li.number, "ProvisioningContext": None,
                          "OfferId": oid, "SubscriptionId": None, "ParentSubscriptionId": None,
                          "TermDuration": "P1Y", "TransactionType": "New", "FriendlyName": name,
                          "Quantity": li.ordered(), "Pricing": None, "PartnerIdOnRecord": None,
                          "RenewsTo": None, "Links": {}})
        return {"Id": self.order, "AlternateId": self.order[:12].lower(),
                "ReferenceCustomerId": self.customer, "BillingCycle": "monthly",
                "CurrencyCode": "EUR", "CurrencySymbol": "\u20ac", "LineItems": items,
                "CreationDate": fmt_ticks(self.created or 0), "Status": self.status(),
                "TransactionType": "UserPurchase",
                "Links": {"ProvisioningStatus": {"Uri": status_uri, "Method": "GET",
                                                 "Body": None, "Headers": []}},
                "Attributes": {"ObjectType": "Order"}}

    def listing(self) -> dict[str, Any]:
        """The order as GET /customers/{id}/orders lists it (camelCase)."""
        self_uri, status_uri = self._links()
        status = self.status()
        links = {"provisioningStatus": {"uri": status_uri, "method": "GET", "headers": []},
                 "self": {"uri": self_uri, "method": "GET", "headers": []}
                 } if status == "pending" else {}
        items: list[dict[str, Any]] = []
        for li in self.items:
            oid, name = li.offer()
            items.append({"lineItemNumber": li.number, "offerId": oid, "friendlyName": name,
                          "quantity": li.ordered(), "links": {}})
        return {"id": self.order, "referenceCustomerId": self.customer, "billingCycle": "monthly",
                "lineItems": items, "creationDate": fmt_ticks(self.created or 0),
                "status": status, "transactionType": "UserPurchase", "links": links,
                "attributes": {"objectType": "Order"}}

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
                "line_items": [li.to_json() for li in self.items],
                "placed_at": self.placed_at, "status": self.status(),
                "created": fmt_ticks(self.created) if self.created is not None else None}


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
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0 \
            or not math.isfinite(value):
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


OFFER_KEYS = ("offer_id", "friendly_name", "quantity")


def parse_offer(obj: dict[str, Any], where: str) -> tuple[str | None, str | None, int | None]:
    """A line item's optional offer_id, friendly_name and (ordered) quantity."""
    names = [obj.get(k) for k in ("offer_id", "friendly_name")]
    for k, v in zip(("offer_id", "friendly_name"), names):
        if v is not None and (not isinstance(v, str) or not v):
            raise SimError(f"{where}: {k!r} must be a non-empty string")
    quantity = _int(obj, "quantity", where, None)
    if quantity is not None and quantity < 1:
        raise SimError(f"{where}: 'quantity' must be >= 1")
    return names[0], names[1], quantity


def parse_line_item(obj: Any, manual: bool, where: str) -> LineItem:
    step_keys = ("at", "status", "quantities", "qpi")
    _check_keys(obj, ("number", "olid", "steps") + step_keys + OFFER_KEYS, where)
    number = _int(obj, "number", where)
    olid = _int(obj, "olid", where, None)
    offer = parse_offer(obj, where)
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
    return LineItem(number, olid, steps, offer_id=offer[0], friendly_name=offer[1],
                    quantity=offer[2])


def parse_order(obj: Any, where: str) -> Order:
    _check_keys(obj, ("customer", "order", "visible_after", "manual", "line_items",
                      "customer_name", "placed", "placed_at"), where)
    manual = obj.get("manual", False)
    if not isinstance(manual, bool):
        raise SimError(f"{where}: 'manual' must be true or false")
    name = obj.get("customer_name")
    if name is not None and (not isinstance(name, str) or not name):
        raise SimError(f"{where}: 'customer_name' must be a non-empty string")
    placed = obj.get("placed", False)
    if not isinstance(placed, bool):
        raise SimError(f"{where}: 'placed' must be true or false")
    if placed and "placed_at" in obj:
        raise SimError(f"{where}: give 'placed' or 'placed_at', not both")
    placed_at = _number(obj, "placed_at", where, 0.0) if "placed_at" in obj else (
        0.0 if placed else None)
    raw_items = obj.get("line_items", [])
    if not isinstance(raw_items, list):
        raise SimError(f"{where}: 'line_items' must be a list")
    items = [parse_line_item(li, manual, f"{where}.line_items[{i}]")
             for i, li in enumerate(raw_items)]
    numbers = [li.number for li in items]
    if len(set(numbers)) != len(numbers):
        raise SimError(f"{where}: duplicate line item number (use the duplicate-line-item fault)")
    visible_after = _number(obj, "visible_after", where, 0.0)
    return Order(_str(obj, "customer", where), _str(obj, "order", where), manual,
                 visible_after + (placed_at or 0.0), items, customer_name=name,
                 placed_at=placed_at)


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
    extra = ("status", "body", "content_type", "retry_after", "delay", "page_size", "extra_headers",
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
        extra = params.setdefault("extra_headers", 0)
        if not isinstance(extra, int) or isinstance(extra, bool) or not 0 <= extra <= 100:
            raise SimError("fault: 'extra_headers' must be an integer from 0 to 100")
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
    record_index: int | None = None  # set when the request is recorded

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
    index: int  # type: ignore[assignment]  # shadows tuple.index, named as in the JSON
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
    change_index: int

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
    extra_headers: int = 0  # X-Page-Extra-1..n in links.next, each required back with its value


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
        self.place_rng = random.Random(None if cfg.seed is None else cfg.seed + 4)
        self.clock_offset_ticks = 0  # simulated clock = wall clock + this
        self.clock_offset = 0.0  # the same in seconds
        self.customers: dict[str, Customer] = {}
        self.customer_orders: dict[str, dict[tuple[str, str], Order]] = {}
        self.audit: list[AuditEntry] = []
        self.audit_pending: list[tuple[int, int, AuditEntry]] = []  # heap by (due, seq)
        self.audit_visible = 0
        self.audit_wake_gen = 0
        self.audit_wake_due: int | None = None
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
        self.done_mono: dict[int, float] = {}  # request index -> when its answer was done
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
        self.answers: dict[str, Callable[[Request, str | None, str | None, float],
                                         tuple[Plan, list[Fault], str]]] = {
            "provisioningstatus": self._status_answer, "auditrecords": self._audit_answer,
            "customers": self._customers_answer,
            "customer-orders": self._customer_orders_answer}

    # -- time and scheduling --------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.start_mono

    def start(self) -> None:
        """Set time zero, apply initial states, schedule steps, placements and changes."""
        with self.lock:
            self.start_mono = time.monotonic()
            start_ticks = self.sim_ticks()
            for o in self.orders.values():
                self._index_order(o)
                for idx in range(len(o.items)):
                    self._start_line(o, idx, 0.0, None)
                if o.placed_at is None:
                    o.created = start_ticks
                elif o.placed_at <= 0:
                    self._place_record(o)
                else:
                    self._schedule(o.placed_at, self._ev_placed, (o.key, o.generation))
            for o in self.orders.values():
                if o.cycle is not None:
                    self._schedule(self._next_change(0.0), self._ev_cycle, (o.key, o.generation))
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def _start_line(self, o: Order, idx: int, base: float, cause: str | None) -> None:
        """Apply a line item's initial step and schedule the later ones ("at" + base).

        cause None: an initial state (no change recorded), else a change with that cause."""
        li = o.items[idx]

        def apply(step: int, state: LineState) -> None:
            li.step = step
            if cause is None:
                li.state = state
                o.body_cache = None
            else:
                self._set_line(o, li, state, cause)

        if o.manual or o.cycle is not None:
            apply(0, li.steps[0][1])
            return
        for s, (at, state) in enumerate(li.steps):
            if at <= 0:
                apply(s, state)
            else:
                self._schedule(base + at, self._ev_step, (o.key, o.generation, idx, s))

    def _ev_placed(self, at: float, key: tuple[str, str], gen: int) -> None:
        o = self._live(key, gen)
        if o is not None:
            self._place_record(o)

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
            "wall": time.time(), "sim": self.sim_ticks() / TICKS, "customer": o.customer,
            "order": o.order, "number": number,
            "olid": olid, "kind": kind,
            "status": new.status.lower() if new else None,
            "quantities": new.quantities() if new else None,
            "old_status": old.status.lower() if old else None,
            "old_quantities": old.quantities() if old else None, "cause": cause})
        self.change_count += 1

    # -- the simulated clock ----------------------------------------------------------------

    def sim_ticks(self) -> int:
        return time.time_ns() // 100 + self.clock_offset_ticks

    def set_clock_offset(self, ticks: int) -> None:
        self.clock_offset_ticks = ticks
        self.clock_offset = ticks / TICKS
        self._release_audit()
        self._audit_wake(force=True)

    def _clock_json(self) -> dict[str, Any]:
        ticks = self.sim_ticks()
        return {"now": fmt_ticks(ticks), "unix": ticks / TICKS, "offset": self.clock_offset,
                "today": day_of(ticks).isoformat()}

    # -- customers and orders -------------------------------------------------------------

    def register_customer(self, cid: str, name: str | None = None) -> Customer:
        c = self.customers.get(cid)
        if c is None:
            c = self.customers[cid] = Customer(cid, name or f"Customer {cid[:8]}")
            self.customer_orders.setdefault(cid, {})
        elif name:
            c.name = name
        return c

    def _index_order(self, o: Order) -> None:
        self.register_customer(o.customer, o.customer_name)
        self.customer_orders[o.customer][o.key] = o

    def _customer_name(self, cid: str) -> str:
        c = self.customers.get(cid)
        return c.name if c else f"Customer {cid[:8]}"

    def _order_state(self, o: Order, now: float) -> dict[str, Any]:
        return {**o.to_json(now), "customer_name": self._customer_name(o.customer)}

    def _random_order_id(self, customer: str) -> str:
        while True:
            oid = "".join(self.id_rng.choice(ID_ALPHABET) for _ in range(24))
            if (customer, oid) not in self.orders:
                return oid

    def generate_customers(self, n: int) -> None:
        """--customers: n customers without orders."""
        for i in range(n):
            base = CUSTOMER_NAMES[i % len(CUSTOMER_NAMES)]
            self.register_customer(random_uuid(self.place_rng),
                                   f"{base} {i // len(CUSTOMER_NAMES) + 1}")

    def generate_placed(self, n: int, over: float, fulfil_after: float) -> list[Order]:
        """--place: n orders placed at uniformly random times in [0, over), each with 1-3
        line items of distinct catalog offers, quantities 1-300, that go pending -> (part
        fulfilled) -> fulfilled over fulfil_after seconds, jittered by +-50 % per item."""
        rng = self.place_rng
        names = CUSTOMER_NAMES[:max(1, min(n, len(CUSTOMER_NAMES)))]
        pool = [(random_uuid(rng), name) for name in names]
        orders = []
        for at in sorted(rng.uniform(0.0, over) for _ in range(n)):
            cid, name = rng.choice(pool)
            items: list[LineItem] = []
            for number, (offer, fname) in enumerate(rng.sample(CATALOG, rng.randint(1, 3))):
                q = rng.randint(1, 300)
                span = fulfil_after * rng.uniform(0.5, 1.5)
                steps = [(at, LineState("prefulfillmentpending", (("prefulfillmentpending", q),)))]
                if q > 1:
                    done = rng.randint(1, q - 1)
                    steps.append((at + span * rng.uniform(0.3, 0.7), LineState(
                        "prefulfillmentpending",
                        (("fulfilled", done), ("prefulfillmentpending", q - done)))))
                steps.append((at + span, LineState("fulfilled", (("fulfilled", q),))))
                items.append(LineItem(number, number, steps, offer_id=offer,
                                      friendly_name=fname, quantity=q))
            oid = "".join(rng.choice(ID_ALPHABET) for _ in range(24))
            orders.append(Order(cid, oid, False, at, items, customer_name=name, placed_at=at))
        return orders

    # -- the activity log -------------------------------------------------------------------

    def _lag_ticks(self) -> int:
        return round(self.cfg.audit_lag * TICKS)

    def _make_record(self, *, operation: str, customer: str, order_id: str | None,
                     status: str, ticks: int, resource_type: str = "order",
                     new_value: Any = ..., omit_id: bool = False,
                     omit_customized: bool = False) -> dict[str, Any]:
        """An activity-log record shaped as Partner Center's (auditrecords-orders-1.json)."""
        o = self.orders.get((customer, order_id)) if order_id is not None else None
        rtype = resource_type.lower()
        object_id = order_id or "".join(self.id_rng.choice(ID_ALPHABET) for _ in range(24))
        if new_value is ...:
            if rtype == "order" and o is not None:
                new_value = compact(o.document())
            elif rtype == "order" and status.lower() != "failed":
                empty = Order(customer, object_id, True, 0.0, [], created=ticks)
                new_value = compact(empty.document())
            elif rtype == "customer":
                new_value = compact({"Id": customer, "CompanyProfile": {
                    "TenantId": customer, "CompanyName": self._customer_name(customer)},
                    "RelationshipToPartner": "Reseller", "Attributes": {"ObjectType": "Customer"}})
            elif rtype != "order":
                new_value = compact({"Id": object_id, "Attributes": {
                    "ObjectType": resource_type[:1].upper() + resource_type[1:]}})
            else:
                new_value = None
        elif new_value is not None and not isinstance(new_value, str):
            new_value = compact(new_value)
        custom: list[dict[str, Any]] = []
        if rtype == "order":
            custom = [{"key": "OrderId", "value": object_id},
                      {"key": "BillingCycle", "value": "Monthly"}]
            for li in o.items if o is not None else ():
                oid, name = li.offer()
                custom += [{"key": f"OfferId-{li.number}", "value": oid},
                           {"key": f"SubscriptionName-{li.number}", "value": name},
                           {"key": f"Quantity-{li.number}", "value": str(li.ordered())}]
        rec: dict[str, Any] = {
            "id": f"{PARTNER_ID}_{customer}_{object_id}_{operation.replace('_', '')}_"
                  f"{ticks + DOTNET_EPOCH_TICKS}",
            "partnerId": PARTNER_ID, "participants": [PARTNER_ID], "customerId": customer,
            "customerName": self._customer_name(customer), "userPrincipalName": AGENT_UPN,
            "applicationId": "Partner Center Web", "resourceType": resource_type,
            "resourceNewValue": new_value, "operationType": operation,
            "originalCorrelationId": random_uuid(self.id_rng),
            "operationDate": fmt_ticks(ticks), "operationStatus": status,
            "customizedData": custom, "attributes": {"objectType": "AuditRecord"}}
        if omit_id:
            del rec["id"]
        if omit_customized:
            del rec["customizedData"]
        return rec

    def _place_record(self, o: Order, ticks: int | None = None) -> AuditEntry:
        """The succeeded create_order record of a placed order, dated ticks (default now)."""
        o.created = self.sim_ticks() if ticks is None else ticks
        rec = self._make_record(operation="create_order", customer=o.customer,
                                order_id=o.order, status="succeeded", ticks=o.created)
        return self._add_audit(rec, o.created, o.customer, o.order, None)

    def _add_audit(self, record: dict[str, Any], ticks: int, customer: Any, order: Any,
                   visible_at: int | None) -> AuditEntry:
        e = AuditEntry(len(self.audit), ticks, record, visible_at, customer, order)
        self.audit.append(e)
        heapq.heappush(self.audit_pending, (e.due(self._lag_ticks()), e.seq, e))
        self._release_audit()
        self._audit_wake()
        return e

    def _release_audit(self) -> None:
        """Make every record whose time has come visible, and log that as a change."""
        now = self.sim_ticks()
        while self.audit_pending and self.audit_pending[0][0] <= now:
            _, _, e = heapq.heappop(self.audit_pending)
            e.visible = True
            self.audit_visible += 1
            rec = e.record
            self.changes.append({
                "index": self.change_count, "t": round(self.now(), 6), "mono": time.monotonic(),
                "wall": time.time(), "sim": now / TICKS, "kind": "audit_visible",
                "customer": e.customer, "order": e.order, "record": rec.get("id"),
                "operation": rec.get("operationType"),
                "operation_status": rec.get("operationStatus"),
                "resource_type": rec.get("resourceType"), "operation_date": fmt_ticks(e.ticks),
                "audit_index": e.seq, "cause": "audit"})
            self.change_count += 1

    def _requeue_audit(self) -> None:
        """The lag changed: recompute when each hidden record is due."""
        lag = self._lag_ticks()
        self.audit_pending = [(e.due(lag), e.seq, e) for _, _, e in self.audit_pending]
        heapq.heapify(self.audit_pending)
        self._release_audit()
        self._audit_wake(force=True)

    def _audit_wake(self, force: bool = False) -> None:
        """Have the scheduler release the next hidden record on time (for the change log)."""
        if not self.audit_pending:
            self.audit_wake_due = None
            return
        due = self.audit_pending[0][0]
        if not force and self.audit_wake_due is not None and self.audit_wake_due <= due:
            return
        self.audit_wake_gen += 1
        self.audit_wake_due = due
        delay = max(0.0, (due - self.sim_ticks()) / TICKS)
        self._schedule(self.now() + delay + 0.001, self._ev_audit, (self.audit_wake_gen,))

    def _ev_audit(self, at: float, gen: int) -> None:
        self._release_audit()
        if gen == self.audit_wake_gen:
            self.audit_wake_due = None
            self._audit_wake()

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
            round(req.wall + self.clock_offset, 6), self.change_count)
        req.record_index = self.request_count
        self.request_count += 1
        self.requests.append(rec)
        if self.log.requests:
            fl = ",".join(rec.faults) or "-"
            self.log(f"{req.method} {rec.path} -> {status_key} kind={kind} op={op} "
                     f"tenant={tenant} auth={auth} result={result} faults={fl}")

    def answered(self, index: int, mono: float) -> None:
        """The answer to the recorded request `index` is written (or the connection reset)."""
        with self.lock:
            self.done_mono[index] = mono
            while len(self.done_mono) > max(1, self.cfg.history_max):
                del self.done_mono[next(iter(self.done_mono))]

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
        bits = self.cv_rng.getrandbits(132)
        base = base64.b64encode((bits >> 4).to_bytes(16, "big")).decode()
        return f"{base[:22]}.{(bits & 15) % 10}"

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
            plan, faults, result = self.answers[op](req, customer, order_id, now)
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
        token = req.header("MS-ContinuationToken") or ""
        session = self.pages.get(token)
        if session is None or session.op != op or session.key != key:
            return None
        extra = range(1, session.extra_headers + 1)
        if any(req.header(f"X-Page-Extra-{i}") != f"{token}-{i}" for i in extra):
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
            data = self._paginate(customer, order_id, data, pager.params["page_size"],
                                  pager.params["extra_headers"])
        return self._finish(Plan(200), faults, data), faults, result

    # -- activity log, customers, customer orders ---------------------------------------

    def _collection_answer(self, target: str, customer: str | None, req: Request,
                           build: Callable[[dict[str, str]], PageSession | dict[str, Any]]
                           ) -> tuple[Plan, list[Fault], str]:
        """Continuation or first page (build), then faults, as for provisioningstatus."""
        continuation = self._continuation(req)
        data: PageSession | dict[str, Any] | None = None
        error: ApiError | None = None
        if continuation:
            data = self._session(req, target, None)
            if data is None:
                error = ApiError(400, BAD_INPUT, "bad_continuation")
        else:
            params = {k: v[-1] for k, v in parse_qs(req.query, keep_blank_values=True).items()}
            try:
                data = build(params)
            except ApiError as e:
                error = e
        faults = self._take_faults(target, customer, None, error is None, continuation)
        result = "fault" if faults else error.result if error else "ok"
        if faults and FAULT_CLASS[faults[-1].kind] == "terminal":
            return self._finish(self._terminal_plan(faults[-1]), faults, None), faults, result
        if error is not None:
            return self._finish(Plan(error.status), faults, error.body), faults, result
        body = self._page(data) if isinstance(data, PageSession) else data
        for f in faults:
            if FAULT_CLASS[f.kind] == "data":
                transform(f, body)  # type: ignore[arg-type]
        return self._finish(Plan(200), faults, body), faults, result

    @staticmethod
    def _page_size(params: dict[str, str]) -> int:
        raw = params.get("size", str(MAX_PAGE_SIZE))
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ApiError(400, pc_error(400, f"The size must be between 1 and {MAX_PAGE_SIZE}."),
                           "bad_request")
        return size

    def _audit_answer(self, req: Request, customer: str | None, order_id: str | None,
                      now: float) -> tuple[Plan, list[Fault], str]:
        return self._collection_answer("auditrecords", None, req, self._audit_query)

    def _audit_query(self, params: dict[str, str]) -> PageSession:
        def bad(description: str) -> ApiError:
            return ApiError(400, pc_error(400, description), "bad_request")

        if "startDate" not in params:
            raise bad("The startDate parameter is required.")
        try:
            start = parse_day(params["startDate"])
        except ValueError:
            raise bad("The startDate must be a date, YYYY-MM-DD.") from None
        if (day_of(self.sim_ticks()) - start).days > AUDIT_MAX_DAYS:
            raise ApiError(400, AUDIT_TOO_OLD, "too_old")
        end = None
        if "endDate" in params:
            try:
                end = parse_day(params["endDate"])
            except ValueError:
                raise bad("The endDate must be a date, YYYY-MM-DD.") from None
            if end < start:
                raise bad("The endDate must not be before the startDate.")
        size = self._page_size(params)
        match, flt = self._audit_filter(params.get("filter"))
        lo = day_ticks(start)
        hi = day_ticks(end + datetime.timedelta(days=1)) if end is not None else None
        self._release_audit()
        found = [e for e in self.audit if e.visible and e.ticks >= lo
                 and (hi is None or e.ticks < hi) and match(e.record)]
        found.sort(key=lambda e: (e.ticks, e.seq), reverse=self.cfg.audit_order == "desc")
        records = [e.record for e in found]
        base = f"/auditrecords?startDate={start.isoformat()}"
        if end is not None:
            base += f"&endDate={end.isoformat()}"
        base += f"&size={size}"
        if flt is not None:
            base += "&filter=" + quote(compact(flt), safe="")
        pages = [records[i:i + size] for i in range(0, len(records), size)] or [[]]
        return PageSession("auditrecords", None, base, pages, 0, len(records))

    @staticmethod
    def _audit_filter(raw: str | None) -> tuple[Callable[[dict[str, Any]], bool], Any]:
        """The filter parameter: {"Field","Value","Operator"} JSON -> a record predicate."""
        if raw is None:
            return (lambda rec: True), None
        try:
            flt = json.loads(raw)
        except ValueError:
            flt = None
        if (not isinstance(flt, dict) or set(flt) != {"Field", "Value", "Operator"}
                or not isinstance(flt["Value"], str) or not isinstance(flt["Operator"], str)):
            raise ApiError(400, pc_error(400, "Invalid filter: expected a JSON object with "
                                              "Field, Value and Operator."), "bad_request")
        fld, value, op = flt["Field"], flt["Value"].lower(), flt["Operator"].lower()
        if fld in ("ResourceType", "CustomerId") and op == "equals":
            key = "resourceType" if fld == "ResourceType" else "customerId"
            return (lambda rec: isinstance(rec.get(key), str)
                    and rec[key].lower() == value), flt
        if fld == "CompanyName" and op == "substring":
            return (lambda rec: isinstance(rec.get("customerName"), str)
                    and value in rec["customerName"].lower()), flt
        raise ApiError(400, pc_error(400, f"Unsupported filter: field {fld!r} with operator "
                                          f"{flt['Operator']!r}."), "bad_request")

    def _customers_answer(self, req: Request, customer: str | None, order_id: str | None,
                          now: float) -> tuple[Plan, list[Fault], str]:
        def build(params: dict[str, str]) -> PageSession:
            size = self._page_size(params)
            items = [c.wire() for c in self.customers.values()]
            pages = [items[i:i + size] for i in range(0, len(items), size)] or [[]]
            return PageSession("customers", None, f"/customers?size={size}", pages, 0,
                               len(items))
        return self._collection_answer("customers", None, req, build)

    def _customer_orders_answer(self, req: Request, customer: str | None,
                                order_id: str | None, now: float
                                ) -> tuple[Plan, list[Fault], str]:
        assert customer is not None

        def build(params: dict[str, str]) -> dict[str, Any]:
            if customer not in self.customers:
                raise ApiError(404, CUSTOMER_NOT_FOUND, "not_found")
            shown = [o for o in self.customer_orders.get(customer, {}).values()
                     if now >= o.visible_at and o.created is not None]
            shown.sort(key=lambda o: -(o.created or 0))  # newest first, as Partner Center
            items = [o.listing() for o in shown]
            return {"totalCount": len(items), "items": items, "links": {"self": {
                        "uri": f"/customers/{quote(customer, safe='')}/orders",
                        "method": "GET", "headers": []}},
                    "attributes": {"objectType": "Collection"}}
        return self._collection_answer("customer-orders", customer, req, build)

    def _paginate(self, customer: str, order_id: str, data: dict[str, Any],
                  size: int, extra_headers: int = 0) -> dict[str, Any]:
        items = data.get("items")
        if not isinstance(items, list):
            return data
        pages = [items[i:i + size] for i in range(0, len(items), size)] or [[]]
        base = f"/customers/{quote(customer, safe='')}/orders/{quote(order_id, safe='')}" \
               "/provisioningstatus"
        return self._page(PageSession("provisioningstatus", (customer, order_id), base, pages,
                                      0, data.get("totalCount"), extra_headers))

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
                                            session.index + 1, session.total, session.extra_headers)
            if len(self.pages) > MAX_PAGE_SESSIONS:
                self.pages.popitem(last=False)
            links["next"] = {"uri": next_uri, "method": "GET",
                             "headers": [{"key": "MS-ContinuationToken", "value": token}]
                             + [{"key": f"X-Page-Extra-{i}", "value": f"{token}-{i}"}
                                for i in range(1, session.extra_headers + 1)]}
        # data faults edit provisioning items in place; other collections' faults do not
        if session.op == "provisioningstatus":
            items = json.loads(json.dumps(items))
        else:
            items = list(items)
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
            ("GET", "/clock"): lambda r, b, q: (200, self._clock_json()),
            ("POST", "/clock"): self._c_clock,
            ("POST", "/place"): self._c_place,
            ("GET", "/auditrecords"): self._c_audit_list,
            ("POST", "/auditrecords"): self._c_audit_add,
            ("GET", "/customers"): self._c_customers,
            ("POST", "/customer"): self._c_customer,
        }.get((method, route))

    def _order_arg(self, body: dict[str, Any]) -> tuple[str, str]:
        return _str(body, "customer", "control"), _str(body, "order", "control")

    def _c_orders(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        now = self.now()
        return 200, {"orders": [self._order_state(o, now) for o in self.orders.values()
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
        return 200, {"orders": [self._order_state(o, now) for o in targets]}

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
            o = Order(key[0], key[1], True, now, [], created=self.sim_ticks())
            self.orders[key] = o
            self._index_order(o)
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
        return 200, {"order": self._order_state(o, now)}

    # -- control: clock, placing orders, activity log, customers ------------------------------

    def _c_clock(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        _check_keys(body, ("offset", "now", "advance"), "clock")
        given = [k for k in ("offset", "now", "advance") if k in body]
        if len(given) != 1:
            raise SimError("clock: give exactly one of 'offset', 'now', 'advance'")
        if "now" in body:
            ticks = time_arg(body, "now", "clock") - time.time_ns() // 100
        else:
            value = body[given[0]]
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value):
                raise SimError(f"clock: {given[0]!r} must be a number of seconds")
            ticks = round(value * TICKS)
            if given[0] == "advance":
                ticks += self.clock_offset_ticks
        in_range(time.time_ns() // 100 + ticks, "clock")
        self.set_clock_offset(ticks)
        return 200, self._clock_json()

    def _when(self, body: dict[str, Any], where: str) -> int:
        """"date" (RFC 3339) or "offset" (seconds before now) -> ticks; default now."""
        if "date" in body and "offset" in body:
            raise SimError(f"{where}: give 'date' or 'offset', not both")
        if "date" in body:
            return time_arg(body, "date", where)
        return in_range(self.sim_ticks() - round(_number(body, "offset", where, 0.0) * TICKS),
                        where)

    def _visible_at(self, body: dict[str, Any], where: str) -> int | None:
        """"visible_at" (RFC 3339 or simulated Unix seconds) or "visible_after" (seconds
        from now) -> ticks; None: the record's operationDate + the lag."""
        if "visible_at" in body and "visible_after" in body:
            raise SimError(f"{where}: give 'visible_at' or 'visible_after', not both")
        if "visible_after" in body:
            return in_range(self.sim_ticks()
                        + round(_number(body, "visible_after", where, 0.0) * TICKS), where)
        value = body.get("visible_at")
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise SimError(f"{where}: 'visible_at' must be finite")
            return in_range(round(value * TICKS), where)
        return time_arg(body, "visible_at", where)

    def _fulfil_after(self, body: dict[str, Any], where: str) -> float | None:
        if "fulfil_after" in body and body["fulfil_after"] is None:
            return None
        return _number(body, "fulfil_after", where, self.cfg.fulfil_after)

    def _new_line_items(self, raw: Any, manual: bool, fulfil_after: float | None,
                        taken: Iterable[int], where: str) -> list[LineItem]:
        """Line items of /place and add_line_items. Without status or steps, a line item
        is prefulfillmentpending for its whole quantity, then fulfilled after fulfil_after
        (None: stays pending)."""
        if not isinstance(raw, list) or not raw:
            raise SimError(f"{where}: must be a non-empty list")
        numbers = set(taken)
        items: list[LineItem] = []
        for i, obj in enumerate(raw):
            w = f"{where}[{i}]"
            if isinstance(obj, dict) and "number" not in obj:
                obj = {**obj, "number": max(numbers, default=-1) + 1}
            if isinstance(obj, dict) and "steps" not in obj and "status" not in obj:
                _check_keys(obj, ("number", "olid") + OFFER_KEYS, w)
                offer = parse_offer(obj, w)
                q = offer[2] or 1
                steps = [(0.0, LineState("prefulfillmentpending",
                                         (("prefulfillmentpending", q),)))]
                if fulfil_after is not None:
                    steps.append((fulfil_after, LineState("fulfilled", (("fulfilled", q),))))
                li = LineItem(_int(obj, "number", w), _int(obj, "olid", w, None), steps,
                              offer_id=offer[0], friendly_name=offer[1], quantity=q)
            else:
                li = parse_line_item(obj, manual, w)
            if li.number in numbers:
                raise SimError(f"{w}: line item number {li.number} exists already")
            numbers.add(li.number)
            items.append(li)
        return items

    def _c_place(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        _check_keys(body, ("customer", "customer_name", "order", "line_items", "visible_after",
                           "date", "offset", "manual", "fulfil_after"), "place")
        customer = _str(body, "customer", "place")
        order_id = _str(body, "order", "place") if "order" in body else None
        name = _str(body, "customer_name", "place") if "customer_name" in body else None
        manual = body.get("manual", False)
        if not isinstance(manual, bool):
            raise SimError("place: 'manual' must be true or false")
        ticks = self._when(body, "place")
        visible_after = _number(body, "visible_after", "place", 0.0)
        items = self._new_line_items(body.get("line_items"), manual,
                                     self._fulfil_after(body, "place"), (), "place.line_items")
        if order_id is None:
            order_id = self._random_order_id(customer)
        elif (customer, order_id) in self.orders:
            return 409, {"error": f"order {customer}/{order_id} exists already"}
        now = self.now()
        o = Order(customer, order_id, manual, now + visible_after, items, customer_name=name,
                  placed_at=now)
        self.orders[o.key] = o
        self._index_order(o)
        for idx in range(len(o.items)):
            self._start_line(o, idx, now, "place")
        e = self._place_record(o, ticks)
        return 200, {"order": self._order_state(o, now), "record": e.record,
                     "audit": e.info(self._lag_ticks())}

    def _c_audit_list(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        self._release_audit()
        lag = self._lag_ticks()
        return 200, {"records": [{**e.info(lag), "record": e.record} for e in self.audit]}

    def _c_audit_add(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        where = "auditrecords"
        if "raw" in body:
            _check_keys(body, ("raw", "date", "offset", "visible_at", "visible_after"), where)
            raw = body["raw"]
            if not isinstance(raw, dict):
                raise SimError(f"{where}: 'raw' must be a JSON object")
            visible_at = self._visible_at(body, where)
            if "date" in body or "offset" in body:
                ticks = self._when(body, where)
            else:
                try:
                    ticks = in_range(parse_time(raw.get("operationDate")), where)
                except (ValueError, SimError):
                    ticks = self.sim_ticks()
            custom = raw.get("customizedData")
            order = next((d.get("value") for d in custom
                          if isinstance(d, dict) and d.get("key") == "OrderId"),
                         None) if isinstance(custom, list) else None
            e = self._add_audit(raw, ticks, raw.get("customerId"), order, visible_at)
            return 200, {"record": raw, "audit": e.info(self._lag_ticks())}
        _check_keys(body, ("operation", "customer", "customer_name", "order", "status",
                           "resource_type", "omit_id", "omit_customized", "resource_new_value",
                           "add_line_items", "fulfil_after", "date", "offset", "visible_at",
                           "visible_after"), where)
        operation = _str(body, "operation", where)
        customer = _str(body, "customer", where)
        rtype = _str(body, "resource_type", where) if "resource_type" in body else "order"
        status = _str(body, "status", where) if "status" in body else "succeeded"
        order_id = body.get("order")
        if rtype.lower() == "order" or order_id is not None:
            order_id = _str(body, "order", where)
        flags = {}
        for k in ("omit_id", "omit_customized"):
            flags[k] = body.get(k, False)
            if not isinstance(flags[k], bool):
                raise SimError(f"{where}: {k!r} must be true or false")
        ticks = self._when(body, where)
        visible_at = self._visible_at(body, where)
        o = self.orders.get((customer, order_id)) if order_id is not None else None
        added: list[LineItem] = []
        if "add_line_items" in body:
            if operation.lower() != "update_order" or rtype.lower() != "order":
                raise SimError(f"{where}: 'add_line_items' goes with operation update_order "
                               "of an order")
            if o is None:
                return 404, {"error": f"unknown order {customer}/{order_id}"}
            added = self._new_line_items(body["add_line_items"], o.manual,
                                         self._fulfil_after(body, where),
                                         (li.number for li in o.items),
                                         f"{where}.add_line_items")
        if "customer_name" in body:
            self.register_customer(customer, _str(body, "customer_name", where))
        if added and o is not None:
            now = self.now()
            for li in added:
                o.items.append(li)
                self._start_line(o, len(o.items) - 1, now, "update")
        kwargs: dict[str, Any] = {"new_value": body["resource_new_value"]} \
            if "resource_new_value" in body else {}
        rec = self._make_record(operation=operation, customer=customer, order_id=order_id,
                                status=status, ticks=ticks, resource_type=rtype, **flags,
                                **kwargs)
        e = self._add_audit(rec, ticks, customer, order_id, visible_at)
        answer: dict[str, Any] = {"record": rec, "audit": e.info(self._lag_ticks())}
        if o is not None:
            answer["order"] = self._order_state(o, self.now())
        return 200, answer

    def _c_customers(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        return 200, {"customers": [{**c.wire(), "orders": len(self.customer_orders.get(c.id, {}))}
                                   for c in self.customers.values()]}

    def _c_customer(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        _check_keys(body, ("id", "name"), "customer")
        name = _str(body, "name", "customer") if "name" in body else None
        return 200, {"customer": self.register_customer(_str(body, "id", "customer"),
                                                        name).wire()}

    def _c_remove(self, r: str, body: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        o = self.orders.pop(self._order_arg(body), None)
        if o is not None:
            self.customer_orders.get(o.customer, {}).pop(o.key, None)
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
        out: list[Any] = []
        for i in range(nxt - first, len(records)):
            if len(out) >= limit:
                break
            nxt += 1
            if keep(records[i]):
                out.append(records[i])
        return min(max(nxt, since), total), max(0, first - since), out

    def _c_requests(self, r: str, b: dict[str, Any], q: dict[str, str]) -> tuple[int, Any]:
        kind, op = q.get("kind"), q.get("op")
        nxt, dropped, out = self._history(
            self.requests, self.request_count, q,
            lambda rec: (kind is None or rec.kind == kind) and (op is None or rec.op == op),
            100000)
        return 200, {"next": nxt, "dropped": dropped, "requests": [
            dict(rec.to_json(), done_mono=self.done_mono.get(rec.index)) for rec in out]}

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
            "changes": self.change_count, "by_op": dict(self.by_op),
            "audit_records": len(self.audit), "audit_visible": self.audit_visible,
            "customers": len(self.customers), "clock_offset": self.clock_offset}

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
        _check_keys(body, ("tenant_limit", "token_ttl", "strict_rotation", "audit_lag",
                           "audit_order", "fulfil_after", "invalid_grant_body"), "config")
        cfg = self.cfg
        tenant_limit = _int(body, "tenant_limit", "config", cfg.tenant_limit)
        token_ttl = _int(body, "token_ttl", "config", cfg.token_ttl)
        strict = body.get("strict_rotation", cfg.strict_rotation)
        if not isinstance(strict, bool):
            raise SimError("config: 'strict_rotation' must be true or false")
        order = body.get("audit_order", cfg.audit_order)
        if order not in ("asc", "desc"):
            raise SimError("config: 'audit_order' must be \"asc\" or \"desc\"")
        lag = _number(body, "audit_lag", "config", cfg.audit_lag)
        fulfil_after = _number(body, "fulfil_after", "config", cfg.fulfil_after)
        igb = body.get("invalid_grant_body", cfg.invalid_grant_body)
        if igb is not None and not isinstance(igb, dict):
            raise SimError("config: 'invalid_grant_body' must be a JSON object or null")
        cfg.tenant_limit, cfg.token_ttl = tenant_limit, token_ttl
        cfg.audit_order, cfg.fulfil_after, cfg.invalid_grant_body = order, fulfil_after, igb
        if "strict_rotation" in body:
            cfg.strict_rotation = strict
            if strict:  # strict from now on: only the current one is valid
                cur = self.refresh_current
                self.refresh_valid = {cur: self.refresh_seen[cur]} if cur is not None else {}
        if lag != cfg.audit_lag:
            cfg.audit_lag = lag
            self._requeue_audit()
        return 200, {"tenant_limit": cfg.tenant_limit, "token_ttl": cfg.token_ttl,
                     "strict_rotation": cfg.strict_rotation, "audit_lag": cfg.audit_lag,
                     "audit_order": cfg.audit_order, "fulfil_after": cfg.fulfil_after,
                     "invalid_grant_body": cfg.invalid_grant_body}


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
            chunks: list[bytes] = []
            total = 0
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
        done = self._send(plan)
        if req.record_index is not None:
            sim.answered(req.record_index, done)

    def _send(self, plan: Plan) -> float:
        """Carries out the plan; returns the monotonic time at which the answer was done: taken
        just before its last bytes are written (no client can have it whole any earlier), or when
        the connection was reset or writing failed."""
        done: float | None = None
        try:
            if plan.delay > 0:
                time.sleep(plan.delay)
            if plan.reset:
                done = time.monotonic()
                self._reset()
                return done
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
                    if i == len(body) - 1:
                        done = time.monotonic()
                    self.wfile.write(body[i:i + 1])
                if done is None:  # an empty body
                    done = time.monotonic()
            else:
                done = time.monotonic()
                self.wfile.write(head + body)
        except OSError:
            self.close_connection = True
        return done if done is not None else time.monotonic()

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
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]

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
    p.add_argument("--clock", metavar="RFC3339",
                   help="start the simulated clock at this time (default: the wall clock)")
    p.add_argument("--audit-lag", type=float, default=0.0, metavar="SECONDS",
                   help="activity-log records become visible this long after their date")
    p.add_argument("--audit-order", choices=("asc", "desc"), default="asc",
                   help="activity-log order: oldest first (default) or newest first")
    p.add_argument("--place", type=int, default=0, metavar="N",
                   help="place N generated orders (with create_order records)")
    p.add_argument("--place-over", type=float, default=60.0, metavar="SECONDS",
                   help="spread --place orders over the first SECONDS (default 60)")
    p.add_argument("--fulfil-after", type=float, default=60.0, metavar="SECONDS",
                   help="placed line items are fulfilled after about SECONDS (default 60)")
    p.add_argument("--customers", type=int, default=0, metavar="N",
                   help="add N generated customers without orders")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.generate < 0 or args.token_ttl < 1 or args.change_every <= 0:
        p.error("--generate must be >= 0, --token-ttl >= 1, --change-every > 0")
    if args.place < 0 or args.customers < 0 or args.place_over < 0 or args.fulfil_after < 0 \
            or args.audit_lag < 0:
        p.error("--place, --customers, --place-over, --fulfil-after, --audit-lag must be >= 0")
    if args.clock is not None:
        try:
            args.clock = in_range(parse_time(args.clock), "--clock")
        except ValueError as e:
            p.error(f"--clock: {e}")
        except SimError as e:
            p.error(str(e))
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
                     args.history_max, args.seed, args.audit_lag, args.audit_order,
                     args.fulfil_after)
        sim = Simulator(cfg, [], log)
        orders += generate_orders(args.generate, args.in_flight, sim.rng)
        orders += sim.generate_placed(args.place, args.place_over, args.fulfil_after)
        for o in orders:
            if o.key in sim.orders:
                raise SimError(f"order {o.customer}/{o.order} defined twice")
            sim.orders[o.key] = o
        sim.generate_customers(args.customers)
        if args.clock is not None:
            sim.set_clock_offset(args.clock - time.time_ns() // 100)
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
