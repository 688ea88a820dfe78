/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <syslog.h>

#include "event.h"

/* SPEC §4 example times */
#define T_POLL (UINT64_C(1795470856) * USEC_PER_SEC)     /* 2026-11-23T21:54:16Z */
#define T_PREVIOUS (UINT64_C(1795470730) * USEC_PER_SEC) /* 2026-11-23T21:52:10Z */

static LineItem *item(int64_t number, bool has_olid, int64_t olid, const char *status, size_t n_q,
                      const char *const *qs, const int64_t *qn) {
        LineItem tmp;
        assert_int_equal(line_item_init(&tmp, number, has_olid, olid, status, qs, qn, n_q), 0);
        LineItem *li = line_item_dup(&tmp);
        assert_non_null(li);
        line_item_done(&tmp);
        return li;
}

static Event *changed_event(const char *customer, const char *order, uint64_t t, uint64_t prev,
                            int64_t new_fulfilled, int64_t new_pending) {
        const char *qs[] = { "fulfilled", "prefulfillmentpending" };
        const int64_t old_q[] = { 0, 5 };
        const int64_t new_q[] = { new_fulfilled, new_pending };
        Event *e = event_new(EVENT_LINEITEM_CHANGED, customer, order, t, prev);
        assert_non_null(e);
        e->old = item(0, true, 0, "prefulfillmentpending", 2, qs, old_q);
        e->new = item(0, true, 0, "fulfilled", 2, qs, new_q);
        return e;
}

static void test_spec_example(void **state) {
        _cleanup_(event_freep) Event *e = changed_event("CUSTOMER_ID", "ORDER_ID", T_POLL, T_PREVIOUS, 3, 2);
        strcpy(e->id, "8c3d2e5a-8f1e-4b8e-9d3c-1a2b3c4d5e6f");

        _cleanup_free_ char *json = event_to_json(e, "HOSTNAME");
        assert_non_null(json);
        assert_string_equal(json,
                            "{\"specversion\":\"1.0\","
                            "\"id\":\"8c3d2e5a-8f1e-4b8e-9d3c-1a2b3c4d5e6f\","
                            "\"source\":\"provwatch://HOSTNAME\","
                            "\"type\":\"provwatch.lineitem.changed\","
                            "\"subject\":\"customers/CUSTOMER_ID/orders/ORDER_ID/lineitems/0\","
                            "\"time\":\"2026-11-23T21:54:16Z\","
                            "\"datacontenttype\":\"application/json\","
                            "\"data\":{\"customer_id\":\"CUSTOMER_ID\",\"customer_name\":null,\"order_id\":\"ORDER_ID\","
                            "\"line_item_number\":0,\"order_line_item_id\":0,\"offer_id\":null,\"friendly_name\":null,"
                            "\"old\":{\"status\":\"prefulfillmentpending\",\"quantities\":{\"prefulfillmentpending\":5}},"
                            "\"new\":{\"status\":\"fulfilled\",\"quantities\":{\"fulfilled\":3,\"prefulfillmentpending\":2}},"
                            "\"previous_poll\":\"2026-11-23T21:52:10Z\"}}");

        _cleanup_free_ char *summary = event_summary(e);
        assert_string_equal(summary, "Order ORDER_ID (customer CUSTOMER_ID) line item 0: prefulfillmentpending → "
                                     "fulfilled (fulfilled 3, prefulfillmentpending 2)");
}

/* The body signed in tests/fixtures/webhook-signature.json is a CloudEvent of ours: reproduce it. */
static void test_webhook_fixture_body(void **state) {
        const char *dir = getenv("FIXTURES") ?: "tests/fixtures";
        _cleanup_free_ char *path = strdup_printf("%s/webhook-signature.json", dir);
        _cleanup_free_ char *data = NULL;
        json_object *root, *body;

        assert_int_equal(read_full_file(path, 1 << 20, &data, NULL), 0);
        root = json_tokener_parse(data);
        assert_non_null(root);
        assert_true(json_object_object_get_ex(root, "body", &body));

        _cleanup_(event_freep) Event *e = changed_event("c1", "o1", UINT64_C(1795470913) * USEC_PER_SEC,
                                                        UINT64_C(1795470793) * USEC_PER_SEC, 5, 0);
        strcpy(e->id, "0b6e1d7e-5b4f-4c0e-9a51-3f3c2a9d7e10");
        _cleanup_free_ char *json = event_to_json(e, "host");
        /* the fixture predates the names of SPEC §8: without them the rest is byte for byte ours */
        json_object *ours = json_tokener_parse(json), *odata;
        assert_non_null(ours);
        assert_true(json_object_object_get_ex(ours, "data", &odata));
        json_object_object_del(odata, "customer_name");
        json_object_object_del(odata, "offer_id");
        json_object_object_del(odata, "friendly_name");
        assert_string_equal(json_object_to_json_string_ext(ours, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                            json_object_get_string(body));
        json_object_put(ours);
        json_object_put(root);
}

static void test_types(void **state) {
        static const struct {
                EventType type;
                const char *name, *message_id;
                int priority;
        } table[] = {
                { EVENT_LINEITEM_ADDED, "provwatch.lineitem.added", "bf2330ea95c54fa49007020cb6e9d4c3", 5 },
                { EVENT_LINEITEM_CHANGED, "provwatch.lineitem.changed", "a7f82c6270604890a88e115ceceb40be", 5 },
                { EVENT_LINEITEM_REMOVED, "provwatch.lineitem.removed", "14f36a7dd41a4f1fadeaa7da5b2b6d5e", 5 },
                { EVENT_ORDER_COMPLETED, "provwatch.order.completed", "60261fa439a94750832e641382fb7cbd", 5 },
                { EVENT_ORDER_NOT_FOUND, "provwatch.order.not_found", "457a2aae1c2649c3b35b315d9f21aa04", 4 },
                { EVENT_ORDER_FETCH_FAILED, "provwatch.order.fetch_failed", "9f6401e29ab34fa58a166f2524d21044", 4 },
                { EVENT_ORDER_RECOVERED, "provwatch.order.recovered", "f75a4c18c8bc4bdfb7a63e572c4941a0", 6 },
                { EVENT_ORDER_DISCOVERED, "provwatch.order.discovered", "1b9a567f1b054a309e6973d14f08cb02", 5 },
                { EVENT_ORDER_STALLED, "provwatch.order.stalled", "a01feaffc91f4f0bae59061c924aa064", 4 },
                { EVENT_AUTH_FAILED, "provwatch.auth.failed", "72cf64fa0c5d4857ade3893b87143305", 3 },
                { EVENT_AUTH_RECOVERED, "provwatch.auth.recovered", "1e7e721cd05349ccbbb1bcb900514e8a", 6 },
        };
        assert_int_equal(ELEMENTSOF(table), _EVENT_TYPE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                assert_string_equal(event_type_to_string(table[i].type), table[i].name);
                assert_int_equal(event_type_from_string(table[i].name), table[i].type);
                assert_string_equal(event_type_message_id(table[i].type), table[i].message_id);
                assert_int_equal(strlen(event_type_message_id(table[i].type)), 32);
                assert_int_equal(event_type_priority(table[i].type), table[i].priority);
        }
        assert_int_equal(LOG_NOTICE, 5);
        assert_int_equal(event_type_from_string("provwatch.lineitem"), _EVENT_TYPE_INVALID);
        assert_int_equal(event_type_from_string("PROVWATCH.LINEITEM.ADDED"), _EVENT_TYPE_INVALID);
        assert_int_equal(event_type_from_string(NULL), _EVENT_TYPE_INVALID);
        assert_null(event_type_to_string(_EVENT_TYPE_MAX));
        assert_null(event_type_to_string(_EVENT_TYPE_INVALID));
        assert_null(event_type_message_id(_EVENT_TYPE_MAX));
        assert_int_equal(event_type_priority(_EVENT_TYPE_MAX), -EINVAL);
        assert_null(event_new(_EVENT_TYPE_MAX, "c", "o", 0, 0));
        assert_null(event_new(EVENT_ORDER_RECOVERED, NULL, "o", 0, 0));
}

static void test_ids(void **state) {
        _cleanup_(event_freep) Event *a = event_new(EVENT_ORDER_RECOVERED, "c", "o", T_POLL, 0);
        _cleanup_(event_freep) Event *b = event_new(EVENT_ORDER_RECOVERED, "c", "o", T_POLL, 0);

        assert_int_equal(a->id[0], 0);
        errno = 0;
        assert_null(event_to_json(a, "h"));
        assert_int_equal(errno, EINVAL);

        assert_int_equal(event_assign_id(a), 0);
        assert_int_equal(event_assign_id(b), 0);
        assert_int_equal(strlen(a->id), 36);
        assert_null(strchr(a->id, '.'));
        assert_string_not_equal(a->id, b->id);
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23)
                        assert_int_equal(a->id[i], '-');
                else
                        assert_non_null(strchr("0123456789abcdef", a->id[i]));
        }
        assert_int_equal(a->id[14], '4');
}

static void test_subjects(void **state) {
        _cleanup_(event_freep) Event *o = event_new(EVENT_ORDER_NOT_FOUND, "c-1", "O2", T_POLL, 0);
        _cleanup_(event_freep) Event *li = event_new(EVENT_LINEITEM_REMOVED, "c-1", "O2", T_POLL, 0);
        _cleanup_(event_freep) Event *none = event_new(EVENT_LINEITEM_ADDED, "c-1", "O2", T_POLL, 0);
        _cleanup_free_ char *a = event_subject(o), *b = NULL;

        assert_string_equal(a, "customers/c-1/orders/O2");
        li->old = item(12, false, 0, "fulfilled", 0, NULL, NULL);
        b = event_subject(li);
        assert_string_equal(b, "customers/c-1/orders/O2/lineitems/12");
        assert_null(event_subject(none)); /* a line item event without its line item */
        strcpy(none->id, "x");
        assert_null(event_to_json(none, "h"));
        assert_null(event_summary(none));
}

static char *json_of(Event *e) {
        strcpy(e->id, "id-1");
        char *j = event_to_json(e, "h");
        assert_non_null(j);
        return j;
}

#define HEAD(type, subject)                                                                          \
        "{\"specversion\":\"1.0\",\"id\":\"id-1\",\"source\":\"provwatch://h\",\"type\":\"" type "\"," \
        "\"subject\":\"" subject "\",\"time\":\"2026-11-23T21:54:16Z\",\"datacontenttype\":\"application/json\","

static void test_lineitem_added_removed(void **state) {
        const char *qs[] = { "prefulfillmentpending" };
        const int64_t qn[] = { 5 };
        _cleanup_(event_freep) Event *a = event_new(EVENT_LINEITEM_ADDED, "C", "O", T_POLL, 0);
        _cleanup_(event_freep) Event *r = event_new(EVENT_LINEITEM_REMOVED, "C", "O", T_POLL, T_PREVIOUS);
        _cleanup_free_ char *ja = NULL, *jr = NULL, *sa = NULL, *sr = NULL;

        a->new = item(0, false, 0, "PrefulfillmentPending", 1, qs, qn);
        ja = json_of(a);
        assert_string_equal(ja, HEAD("provwatch.lineitem.added", "customers/C/orders/O/lineitems/0")
                                "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O\",\"line_item_number\":0,"
                                "\"order_line_item_id\":null,\"offer_id\":null,\"friendly_name\":null,\"old\":null,"
                                "\"new\":{\"status\":\"prefulfillmentpending\",\"quantities\":{\"prefulfillmentpending\":5}},"
                                "\"previous_poll\":null}}");
        sa = event_summary(a);
        assert_string_equal(sa, "Order O (customer C) line item 0 added: prefulfillmentpending (prefulfillmentpending 5)");

        r->old = item(3, true, 42, "fulfilled", 0, NULL, NULL);
        jr = json_of(r);
        assert_string_equal(jr, HEAD("provwatch.lineitem.removed", "customers/C/orders/O/lineitems/3")
                                "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O\",\"line_item_number\":3,"
                                "\"order_line_item_id\":42,\"offer_id\":null,\"friendly_name\":null,\"old\":{\"status\":\"fulfilled\",\"quantities\":{}},"
                                "\"new\":null,\"previous_poll\":\"2026-11-23T21:52:10Z\"}}");
        sr = event_summary(r);
        assert_string_equal(sr, "Order O (customer C) line item 3 removed (was fulfilled)");
}

static void test_lineitem_changed_no_quantities(void **state) {
        _cleanup_(event_freep) Event *e = event_new(EVENT_LINEITEM_CHANGED, "C", "O", T_POLL, T_PREVIOUS);
        _cleanup_free_ char *s = NULL, *j = NULL;

        e->old = item(1, true, 9, "prefulfillmentpending", 0, NULL, NULL);
        e->new = item(1, false, 0, "unfulfilled", 0, NULL, NULL);
        s = event_summary(e);
        assert_string_equal(s, "Order O (customer C) line item 1: prefulfillmentpending → unfulfilled");
        j = json_of(e);
        /* the new state has no id: the old one still names the line item */
        assert_non_null(strstr(j, "\"line_item_number\":1,\"order_line_item_id\":9,\"offer_id\":null,\"friendly_name\":null,"));
}

static void test_completed(void **state) {
        const char *qs[] = { "fulfilled" };
        const int64_t qn[] = { 2 };
        _cleanup_(event_freep) Event *e = event_new(EVENT_ORDER_COMPLETED, "C", "O", T_POLL, T_PREVIOUS);
        _cleanup_free_ char *j = NULL, *s1 = NULL, *s2 = NULL, *s3 = NULL;

        e->line_items = snapshot_new();
        assert_int_equal(snapshot_add_item(e->line_items, 0, true, 0, "fulfilled", qs, qn, 1), 0);
        assert_int_equal(snapshot_add_item(e->line_items, 1, false, 0, "fulfilled", NULL, NULL, 0), 0);
        j = json_of(e);
        assert_string_equal(j, HEAD("provwatch.order.completed", "customers/C/orders/O")
                               "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O\",\"line_items\":["
                               "{\"line_item_number\":0,\"status\":\"fulfilled\",\"quantities\":{\"fulfilled\":2}},"
                               "{\"line_item_number\":1,\"status\":\"fulfilled\",\"quantities\":{}}],"
                               "\"previous_poll\":\"2026-11-23T21:52:10Z\"}}");
        s1 = event_summary(e);
        assert_string_equal(s1, "Order O (customer C) completed: 2 line items fulfilled");

        assert_int_equal(snapshot_add_item(e->line_items, 2, false, 0, "unfulfilled", NULL, NULL, 0), 0);
        assert_int_equal(snapshot_add_item(e->line_items, 3, false, 0, "fulfilled", NULL, NULL, 0), 0);
        s2 = event_summary(e);
        assert_string_equal(s2, "Order O (customer C) completed: 4 line items (fulfilled 3, unfulfilled 1)");

        e->line_items = snapshot_free(e->line_items);
        e->line_items = snapshot_new();
        assert_int_equal(snapshot_add_item(e->line_items, 7, false, 0, "unfulfilled", NULL, NULL, 0), 0);
        s3 = event_summary(e);
        assert_string_equal(s3, "Order O (customer C) completed: 1 line item unfulfilled");
}

static void test_not_found(void **state) {
        _cleanup_(event_freep) Event *e = event_new(EVENT_ORDER_NOT_FOUND, "C", "O", T_POLL, 0);
        _cleanup_free_ char *j = NULL, *s = NULL, *s2 = NULL, *j2 = NULL;

        e->code = strdup("20000");
        e->description = strdup("Order ID not found");
        j = json_of(e);
        assert_string_equal(j, HEAD("provwatch.order.not_found", "customers/C/orders/O")
                               "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O\",\"code\":\"20000\","
                               "\"description\":\"Order ID not found\"}}");
        s = event_summary(e);
        assert_string_equal(s, "Order O (customer C) not found: 20000 Order ID not found");

        e->code = mfree(e->code);
        e->description = mfree(e->description);
        j2 = json_of(e);
        assert_non_null(strstr(j2, "\"code\":null,\"description\":null}}"));
        s2 = event_summary(e);
        assert_string_equal(s2, "Order O (customer C) not found");
}

static void test_fetch_failed(void **state) {
        _cleanup_(event_freep) Event *e = event_new(EVENT_ORDER_FETCH_FAILED, "C", "O", T_POLL, 0);
        _cleanup_free_ char *j = NULL, *s = NULL, *j2 = NULL, *s2 = NULL;

        e->http_status = 500;
        e->reason = strdup("items[2].status is not a string");
        j = json_of(e);
        assert_string_equal(j, HEAD("provwatch.order.fetch_failed", "customers/C/orders/O")
                               "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O\",\"http_status\":500,"
                               "\"reason\":\"items[2].status is not a string\",\"correlation_id\":null,\"request_id\":null,"
                               "\"ms_cv\":null}}");
        s = event_summary(e);
        assert_string_equal(s, "Order O (customer C) cannot be fetched: HTTP 500: items[2].status is not a string");

        e->http_status = 0;
        free(e->reason);
        e->reason = strdup("Connection refused\r\nsecond line");
        j2 = json_of(e);
        assert_non_null(strstr(j2, "\"http_status\":null,\"reason\":\"Connection refused\\r\\nsecond line\","));
        s2 = event_summary(e);
        assert_string_equal(s2, "Order O (customer C) cannot be fetched: Connection refused  second line");
}

static void test_recovered(void **state) {
        _cleanup_(event_freep) Event *e = event_new(EVENT_ORDER_RECOVERED, "C", "O/x\"y", T_POLL, T_PREVIOUS);
        _cleanup_free_ char *j = NULL, *s = NULL;

        j = json_of(e);
        assert_string_equal(j, HEAD("provwatch.order.recovered", "customers/C/orders/O/x\\\"y")
                               "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O/x\\\"y\"}}");
        s = event_summary(e);
        assert_string_equal(s, "Order O/x\"y (customer C) recovered");
}

static OrderNames *fabrikam(void) {
        OrderNames *n = order_names_new();
        assert_non_null(n);
        n->customer_name = strdup("Fabrikam Ltd");
        assert_int_equal(order_names_set_item(n, 0, "CFQ7TTC0LH18:0001:CFQ7TTC0KHS4", "Microsoft 365 Business Premium", 25), 0);
        assert_int_equal(order_names_set_item(n, 1, "CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF", NULL, 25), 0);
        return n;
}

static void test_names(void **state) {
        _cleanup_(order_names_freep) OrderNames *n = fabrikam();
        _cleanup_(event_freep) Event *e = changed_event("C", "O", T_POLL, T_PREVIOUS, 3, 2);
        _cleanup_free_ char *j = NULL, *s = NULL, *s1 = NULL, *j1 = NULL;

        assert_int_equal(event_set_names(e, n), 0);
        j = json_of(e);
        assert_non_null(strstr(j, "\"data\":{\"customer_id\":\"C\",\"customer_name\":\"Fabrikam Ltd\",\"order_id\":\"O\","
                                  "\"line_item_number\":0,\"order_line_item_id\":0,"
                                  "\"offer_id\":\"CFQ7TTC0LH18:0001:CFQ7TTC0KHS4\","
                                  "\"friendly_name\":\"Microsoft 365 Business Premium\",\"old\":"));
        s = event_summary(e);
        assert_string_equal(s, "Order O (Fabrikam Ltd) line item 0 Microsoft 365 Business Premium: prefulfillmentpending "
                               "→ fulfilled (fulfilled 3, prefulfillmentpending 2)");
        /* only the offer known: it names the product */
        e->old->number = e->new->number = 1;
        s1 = event_summary(e);
        assert_string_equal(s1, "Order O (Fabrikam Ltd) line item 1 CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF: prefulfillmentpending "
                                "→ fulfilled (fulfilled 3, prefulfillmentpending 2)");
        j1 = json_of(e);
        assert_non_null(strstr(j1, "\"offer_id\":\"CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF\",\"friendly_name\":null,"));
        /* empty names are no names */
        _cleanup_(order_names_freep) OrderNames *empty = order_names_new();
        assert_int_equal(event_set_names(e, empty), 0);
        assert_null(e->names);
}

static void test_discovered(void **state) {
        _cleanup_(order_names_freep) OrderNames *n = fabrikam();
        _cleanup_(event_freep) Event *e = event_new(EVENT_ORDER_DISCOVERED, "C", "O", T_POLL, 0);
        _cleanup_free_ char *j = NULL, *s = NULL;

        e->operation_usec = T_PREVIOUS;
        assert_int_equal(event_set_names(e, n), 0);
        j = json_of(e);
        assert_string_equal(j, HEAD("provwatch.order.discovered", "customers/C/orders/O")
                               "\"data\":{\"customer_id\":\"C\",\"customer_name\":\"Fabrikam Ltd\",\"order_id\":\"O\","
                               "\"operation_date\":\"2026-11-23T21:52:10Z\",\"line_items\":["
                               "{\"line_item_number\":0,\"offer_id\":\"CFQ7TTC0LH18:0001:CFQ7TTC0KHS4\","
                               "\"friendly_name\":\"Microsoft 365 Business Premium\",\"quantity\":25},"
                               "{\"line_item_number\":1,\"offer_id\":\"CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF\","
                               "\"friendly_name\":null,\"quantity\":25}]}}");
        s = event_summary(e);
        assert_string_equal(s, "Order O (Fabrikam Ltd) discovered: 2 line items (Microsoft 365 Business Premium × 25, "
                               "CFQ7TTC0LHSF:0001:CFQ7TTC0K8QF × 25)");
}

static void test_stalled(void **state) {
        _cleanup_(order_names_freep) OrderNames *n = fabrikam();
        _cleanup_(event_freep) Event *e = event_new(EVENT_ORDER_STALLED, "C", "O", T_POLL, T_PREVIOUS);
        _cleanup_free_ char *j = NULL, *s = NULL;
        const char *qs[] = { "prefulfillmentpending" };
        const int64_t qn[] = { 25 };

        e->since_usec = T_PREVIOUS;
        e->line_items = snapshot_new();
        assert_int_equal(snapshot_add_item(e->line_items, 0, true, 0, "prefulfillmentpending", qs, qn, 1), 0);
        assert_int_equal(event_set_names(e, n), 0);
        j = json_of(e);
        assert_string_equal(j, HEAD("provwatch.order.stalled", "customers/C/orders/O")
                               "\"data\":{\"customer_id\":\"C\",\"customer_name\":\"Fabrikam Ltd\",\"order_id\":\"O\","
                               "\"since\":\"2026-11-23T21:52:10Z\",\"line_items\":[{\"line_item_number\":0,"
                               "\"status\":\"prefulfillmentpending\",\"quantities\":{\"prefulfillmentpending\":25},"
                               "\"offer_id\":\"CFQ7TTC0LH18:0001:CFQ7TTC0KHS4\","
                               "\"friendly_name\":\"Microsoft 365 Business Premium\"}]}}");
        s = event_summary(e);
        assert_string_equal(s, "Order O (Fabrikam Ltd) has not changed since 2026-11-23T21:52:10Z: line item 0 "
                               "Microsoft 365 Business Premium prefulfillmentpending");
}

static void test_auth(void **state) {
        _cleanup_(event_freep) Event *e = event_new(EVENT_AUTH_FAILED, NULL, NULL, T_POLL, 0);
        _cleanup_(event_freep) Event *r = event_new(EVENT_AUTH_RECOVERED, NULL, NULL, T_POLL, 0);
        _cleanup_free_ char *j = NULL, *s = NULL, *jr = NULL, *sr = NULL;
        static const int64_t codes[] = { 700082 };

        assert_non_null(e);
        e->tenant_id = strdup("t1");
        e->grant = strdup("refresh_token");
        e->http_status = 400;
        e->error = strdup("invalid_grant");
        e->error_codes = malloc(sizeof codes);
        memcpy(e->error_codes, codes, sizeof codes);
        e->n_error_codes = 1;
        e->description = strdup("AADSTS700082: The refresh token has expired due to inactivity.");
        e->action = strdup("Obtain a new refresh token by consent.");
        j = json_of(e);
        assert_string_equal(j, HEAD("provwatch.auth.failed", "tenants/t1")
                               "\"data\":{\"grant\":\"refresh_token\",\"http_status\":400,\"error\":\"invalid_grant\","
                               "\"error_codes\":[700082],\"description\":\"AADSTS700082: The refresh token has expired "
                               "due to inactivity.\",\"action\":\"Obtain a new refresh token by consent.\"}}");
        s = event_summary(e);
        assert_string_equal(s, "Partner Center sign-in fails for tenant t1: invalid_grant (700082). Obtain a new refresh "
                               "token by consent.");

        r->grant = strdup("token_file");
        jr = json_of(r);
        assert_string_equal(jr, HEAD("provwatch.auth.recovered", "tenants/-") "\"data\":{\"grant\":\"token_file\"}}");
        sr = event_summary(r);
        assert_string_equal(sr, "Partner Center sign-in works again for tenant -");
        assert_null(event_new(EVENT_ORDER_STALLED, NULL, NULL, 0, 0));
}

static void test_events_free(void **state) {
        Event **l = calloc(2, sizeof(Event *));
        assert_non_null(l);
        l[0] = event_new(EVENT_ORDER_RECOVERED, "c", "o", 0, 0);
        l[1] = changed_event("c", "o", 0, 0, 1, 1);
        events_free(l, 2);
        events_free(NULL, 0);
        assert_null(event_free(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spec_example),
                cmocka_unit_test(test_webhook_fixture_body),
                cmocka_unit_test(test_types),
                cmocka_unit_test(test_ids),
                cmocka_unit_test(test_subjects),
                cmocka_unit_test(test_lineitem_added_removed),
                cmocka_unit_test(test_lineitem_changed_no_quantities),
                cmocka_unit_test(test_completed),
                cmocka_unit_test(test_not_found),
                cmocka_unit_test(test_fetch_failed),
                cmocka_unit_test(test_recovered),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_discovered),
                cmocka_unit_test(test_stalled),
                cmocka_unit_test(test_auth),
                cmocka_unit_test(test_events_free),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
