/* SPDX-License-Identifier: MIT */
/* The activity log reader's pure parts: the records of the documented pages, unusable records,
 * the request, the cursor arithmetic, the sweep's lists, and the names kept with an order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "audit-log.h"

#define DAY (24 * 3600 * USEC_PER_SEC)
#define MIN (60 * USEC_PER_SEC)

static char *fixture(const char *name, size_t *ret_size) {
        const char *dir = getenv("FIXTURES") ?: "tests/fixtures";
        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, name);
        char *text = NULL;
        assert_int_equal(read_full_file(path, 1 << 20, &text, ret_size), 0);
        return text;
}

static uint64_t rfc3339(const char *s) {
        uint64_t u = 0;
        assert_int_equal(parse_rfc3339(s, &u), 0);
        return u;
}

static AuditPage parse(const char *body) {
        AuditPage p = {};
        const char *why = NULL;
        assert_int_equal(audit_parse_page(body, strlen(body), &p, &why), 0);
        return p;
}

static void test_documented_pages(void **state) {
        size_t size;
        _cleanup_free_ char *one = fixture("auditrecords-orders-1.json", &size);
        AuditPage p = {};
        const char *why = NULL;
        assert_int_equal(audit_parse_page(one, size, &p, &why), 0);
        assert_int_equal(p.n_records, 2);

        const AuditRecord *r = &p.records[0];
        assert_int_equal(r->verdict, AUDIT_CREATE_ORDER);
        assert_string_equal(r->customer_id, "7b21e0c4-58d9-4f0a-b3e6-91c2d4a6f8e0");
        assert_string_equal(r->order_id, "q9XkT2mW7pL4vN8rB3sY6hJ1");
        assert_true(strstr(r->key, "_createorder_639005360425531200") != NULL);
        assert_int_equal(r->operation_usec, rfc3339("2026-12-01T09:14:02.553120Z"));
        assert_string_equal(r->names->customer_name, "Fabrikam Ltd");
        assert_int_equal(r->names->n_items, 2);
        assert_string_equal(r->names->items[0].offer_id, "CFQ7TTC0LH18:0001:CFQ7TTC0KHS4");
        assert_string_equal(r->names->items[0].friendly_name, "Microsoft 365 Business Premium");
        assert_int_equal(r->names->items[0].quantity, 25);
        assert_string_equal(r->names->items[1].friendly_name, "Microsoft Defender for Endpoint P1");

        /* a short customizedData: the order id is still there, the names come from the order JSON */
        r = &p.records[1];
        assert_int_equal(r->verdict, AUDIT_CREATE_ORDER);
        assert_string_equal(r->order_id, "Zr4nQ8wE1tY5uI9oP2aS6dF3");
        assert_string_equal(r->names->customer_name, "Northwind Traders");
        assert_int_equal(r->names->n_items, 1);
        assert_int_equal(r->names->items[0].quantity, 120);

        /* the continuation, with its header */
        assert_non_null(p.next.next_uri);
        assert_true(strncmp(p.next.next_uri, "/auditrecords?startDate=2026-12-01&size=2&filter=", 49) == 0);
        assert_string_equal(p.next.next_headers[0], "MS-ContinuationToken: a2V5PTIwMjYtMTItMDFUMDk6MzM6MzEuNzAwNDQwMFp8Mg==");
        assert_null(p.next.next_headers[1]);
        audit_page_done(&p);

        _cleanup_free_ char *two = fixture("auditrecords-orders-2.json", &size);
        assert_int_equal(audit_parse_page(two, size, &p, &why), 0);
        assert_int_equal(p.n_records, 2);
        /* update_order without an id: the fallback key */
        r = &p.records[0];
        assert_int_equal(r->verdict, AUDIT_UPDATE_ORDER);
        assert_string_equal(r->order_id, "q9XkT2mW7pL4vN8rB3sY6hJ1");
        assert_string_equal(r->key, "7b21e0c4-58d9-4f0a-b3e6-91c2d4a6f8e0|q9XkT2mW7pL4vN8rB3sY6hJ1|update_order|"
                                    "2026-12-01T10:02:45.1180000Z");
        assert_int_equal(r->names->n_items, 3);
        assert_string_equal(r->names->items[2].friendly_name, "Exchange Online (Plan 1)");
        /* failed: not used, not a problem */
        r = &p.records[1];
        assert_int_equal(r->verdict, AUDIT_IGNORED);
        assert_string_equal(r->why, "the operation failed");
        assert_null(p.next.next_uri);
        audit_page_done(&p);
}

static void test_unusable_records(void **state) {
        AuditPage p = parse(
                "{\"items\":["
                /* 0: no customer */
                "{\"id\":\"a\",\"resourceType\":\"order\",\"operationType\":\"create_order\","
                "\"operationDate\":\"2026-12-01T10:00:00Z\",\"customizedData\":[{\"key\":\"OrderId\",\"value\":\"o1\"}]},"
                /* 1: resourceNewValue not JSON */
                "{\"id\":\"b\",\"customerId\":\"c1\",\"resourceType\":\"Order\",\"operationType\":\"CREATE_ORDER\","
                "\"operationDate\":\"2026-12-01T10:00:00Z\",\"resourceNewValue\":\"{not json\","
                "\"customizedData\":[{\"key\":\"OrderId\",\"value\":\"o1\"}]},"
                /* 2: no order id anywhere, no id either */
                "{\"customerId\":\"c1\",\"resourceType\":\"order\",\"operationType\":\"create_order\","
                "\"operationDate\":\"2026-12-01T10:00:00Z\",\"resourceNewValue\":\"{\\\"LineItems\\\":[]}\"},"
                /* 3: another resource */
                "{\"id\":\"d\",\"customerId\":\"c1\",\"resourceType\":\"customer\",\"operationType\":\"update_customer\"},"
                /* 4: an id that cannot be one */
                "{\"id\":\"e\",\"customerId\":\"c1\",\"resourceType\":\"order\",\"operationType\":\"create_order\","
                "\"operationDate\":\"2026-12-01T10:00:00Z\",\"customizedData\":[{\"key\":\"OrderId\",\"value\":\"a/b\"}]},"
                /* 5: no date */
                "{\"id\":\"f\",\"customerId\":\"c1\",\"resourceType\":\"order\",\"operationType\":\"create_order\","
                "\"customizedData\":[{\"key\":\"OrderId\",\"value\":\"o2\"}]},"
                /* 6: usable, names from customizedData, resourceNewValue null */
                "{\"id\":\"g\",\"customerId\":\"c1\",\"resourceType\":\"order\",\"operationType\":\"create_order\","
                "\"operationDate\":\"2026-12-01T10:00:00+01:00\",\"resourceNewValue\":null,\"customizedData\":["
                "{\"key\":\"OrderId\",\"value\":\"o3\"},{\"key\":\"OfferId-0\",\"value\":\"X:1\"},"
                "{\"key\":\"SubscriptionName-0\",\"value\":\"Teams\"},{\"key\":\"Quantity-0\",\"value\":\"7\"}]},"
                /* 7: not an object */
                "42"
                "]}");
        assert_int_equal(p.n_records, 8);
        const AuditVerdict expect[] = { AUDIT_UNUSABLE, AUDIT_UNUSABLE, AUDIT_UNUSABLE, AUDIT_IGNORED,
                                        AUDIT_UNUSABLE, AUDIT_UNUSABLE, AUDIT_CREATE_ORDER, AUDIT_UNUSABLE };
        for (size_t i = 0; i < p.n_records; i++) {
                print_message("record %zu: %s\n", i, p.records[i].why ? p.records[i].why : "used");
                assert_int_equal(p.records[i].verdict, expect[i]);
                assert_non_null(p.records[i].key);
                assert_non_null(p.records[i].label);
        }
        assert_string_equal(p.records[0].why, "no customerId");
        assert_string_equal(p.records[1].why, "resourceNewValue is not an order as JSON");
        assert_string_equal(p.records[0].label, "'a'");
        /* no id, no order id: the record is still named and keyed (by a digest), so it is said once */
        assert_true(strncmp(p.records[2].label, "#3 on the page (customer 'c1'", 29) == 0);
        assert_true(strncmp(p.records[2].key, "sha256:", 7) == 0);
        assert_string_equal(p.records[4].why, "the order id is not an id");
        assert_string_equal(p.records[5].why, "no readable operationDate");
        const AuditRecord *g = &p.records[6];
        assert_string_equal(g->order_id, "o3");
        assert_int_equal(g->operation_usec, rfc3339("2026-12-01T09:00:00Z"));
        assert_null(g->names->customer_name);
        assert_int_equal(g->names->n_items, 1);
        assert_string_equal(g->names->items[0].offer_id, "X:1");
        assert_string_equal(g->names->items[0].friendly_name, "Teams");
        assert_int_equal(g->names->items[0].quantity, 7);
        audit_page_done(&p);

        /* the same unusable record keys the same way on every read */
        const char *rec = "{\"items\":[{\"customerId\":\"c1\",\"resourceType\":\"order\",\"operationType\":\"create_order\"}]}";
        AuditPage a = parse(rec), b = parse(rec);
        assert_string_equal(a.records[0].key, b.records[0].key);
        audit_page_done(&a);
        audit_page_done(&b);

        /* a page that is not a collection fails as a whole */
        const char *why = NULL;
        assert_int_equal(audit_parse_page("{\"items\":{}}", 12, &p, &why), -EBADMSG);
        assert_string_equal(why, "items is not an array");
        assert_int_equal(audit_parse_page("[]", 2, &p, &why), -EBADMSG);
}

static void test_request_and_cursor(void **state) {
        uint64_t now = rfc3339("2026-12-06T10:00:00Z");
        bool clamped = true;

        _cleanup_free_ char *url = audit_log_url("https://pc.example/", "1", rfc3339("2026-12-01T00:10:00Z"));
        assert_string_equal(url, "https://pc.example/v1/auditrecords?startDate=2026-12-01&size=500&filter="
                                 "%7B%22Field%22%3A%22ResourceType%22%2C%22Value%22%3A%22Order%22%2C%22Operator%22"
                                 "%3A%22equals%22%7D");

        /* 15 minutes of overlap, also across midnight */
        assert_int_equal(audit_log_start(rfc3339("2026-12-06T09:30:00Z"), now, &clamped), rfc3339("2026-12-06T09:15:00Z"));
        assert_false(clamped);
        uint64_t s = audit_log_start(rfc3339("2026-12-06T00:05:00Z"), now, &clamped);
        _cleanup_free_ char *u2 = audit_log_url("https://pc.example", "1", s);
        assert_non_null(strstr(u2, "startDate=2026-12-05&"));
        /* never more than 89 days back */
        s = audit_log_start(now - 200 * DAY, now, &clamped);
        assert_true(clamped);
        assert_int_equal(s, now - 89 * DAY);
        s = audit_log_start(now - 89 * DAY + 15 * MIN, now, &clamped);
        assert_false(clamped);
        assert_int_equal(audit_log_start(0, now, &clamped), now - 89 * DAY);
}

static void test_sweep_lists(void **state) {
        size_t size, n = 0;
        const char *why = NULL;
        PcPage page = {};

        _cleanup_free_ char *customers = fixture("customers.json", &size);
        Customer *c = NULL;
        assert_int_equal(pc_parse_customers(customers, size, &c, &n, &page, &why), 0);
        assert_int_equal(n, 2);
        assert_string_equal(c[0].id, "7b21e0c4-58d9-4f0a-b3e6-91c2d4a6f8e0");
        assert_string_equal(c[0].name, "Fabrikam Ltd");
        assert_string_equal(c[1].name, "Northwind Traders");
        customers_free(c, n);
        pc_page_done(&page);

        _cleanup_free_ char *orders = fixture("customer-orders.json", &size);
        CustomerOrder *o = NULL;
        assert_int_equal(pc_parse_customer_orders(orders, size, &o, &n, &page, &why), 0);
        assert_int_equal(n, 2);
        assert_string_equal(o[0].order_id, "Zr4nQ8wE1tY5uI9oP2aS6dF3");
        assert_true(o[0].pending);
        assert_string_equal(o[0].names->items[0].friendly_name, "Microsoft 365 E3");
        assert_int_equal(o[0].names->items[0].quantity, 120);
        assert_false(o[1].pending);
        customer_orders_free(o, n);
        pc_page_done(&page);
}

static void test_names(void **state) {
        _cleanup_(order_names_freep) OrderNames *a = order_names_new(), *b = order_names_new(), *c = NULL;
        assert_non_null(a);
        a->customer_name = strdup("Fabrikam Ltd");
        assert_int_equal(order_names_set_item(a, 2, "O:2", NULL, -1), 0);
        assert_int_equal(order_names_set_item(a, 0, "O:0", "Microsoft 365 E3", 5), 0);
        assert_int_equal(a->items[0].number, 0);
        _cleanup_free_ char *json = order_names_to_json(a);
        assert_string_equal(json, "{\"items\":[{\"n\":0,\"offer\":\"O:0\",\"name\":\"Microsoft 365 E3\",\"q\":5},"
                                  "{\"n\":2,\"offer\":\"O:2\"}],\"customer\":\"Fabrikam Ltd\"}");
        assert_int_equal(order_names_from_json(json, &c), 0);
        _cleanup_free_ char *again = order_names_to_json(c);
        assert_string_equal(json, again);

        /* an update naming fewer items, or fewer fields, keeps what is known */
        assert_int_equal(order_names_set_item(b, 2, NULL, "Exchange Online (Plan 1)", 3), 0);
        assert_int_equal(order_names_merge(a, b), 0);
        assert_string_equal(a->customer_name, "Fabrikam Ltd");
        const LineItemName *li = order_names_find(a, 2);
        assert_string_equal(li->offer_id, "O:2");
        assert_string_equal(li->friendly_name, "Exchange Online (Plan 1)");
        assert_int_equal(li->quantity, 3);
        assert_non_null(order_names_find(a, 0));
        assert_null(order_names_find(a, 1));

        OrderNames *bad = NULL;
        assert_int_equal(order_names_from_json("{\"items\":[{\"n\":0},{\"n\":0}]}", &bad), -EBADMSG);
        assert_int_equal(order_names_from_json("{\"items\":[{\"n\":\"x\"}]}", &bad), -EBADMSG);
        assert_int_equal(order_names_from_json("{\"customer\":1,\"items\":[]}", &bad), -EBADMSG);
        assert_int_equal(order_names_from_json("[]", &bad), -EBADMSG);
        assert_null(bad);
}

static void test_rfc3339(void **state) {
        uint64_t u;
        assert_int_equal(parse_rfc3339("1970-01-01T00:00:01Z", &u), 0);
        assert_int_equal(u, USEC_PER_SEC);
        assert_int_equal(parse_rfc3339("2026-12-01T10:02:45.1180000Z", &u), 0);
        assert_int_equal(u % USEC_PER_SEC, 118000);
        assert_int_equal(parse_rfc3339("2026-12-01T10:02:45-02:30", &u), 0);
        assert_int_equal(u, rfc3339("2026-12-01T12:32:45Z"));
        assert_int_equal(parse_rfc3339("2026-12-01T10:02:45", &u), -EINVAL);
        assert_int_equal(parse_rfc3339("2026-12-01T10:02:45.Z", &u), -EINVAL);
        assert_int_equal(parse_rfc3339("2026-12-01T10:02:45Zx", &u), -EINVAL);
        assert_int_equal(parse_rfc3339("yesterday", &u), -EINVAL);
        assert_int_equal(parse_rfc3339(NULL, &u), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_documented_pages), cmocka_unit_test(test_unusable_records),
                cmocka_unit_test(test_request_and_cursor), cmocka_unit_test(test_sweep_lists),
                cmocka_unit_test(test_names), cmocka_unit_test(test_rfc3339),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
