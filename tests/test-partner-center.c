/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "partner-center.h"

/* Bodies are handed over in an exact-size heap copy without a terminating NUL, so that ASan
 * catches any read past the end. */
typedef struct Body {
        char *data;
        size_t size;
} Body;

static void body_done(Body *b) {
        free(b->data);
}

static Body body_from(const char *s, size_t size) {
        Body b = { .data = malloc(size ? size : 1), .size = size };
        assert_non_null(b.data);
        memcpy(b.data, s, size);
        return b;
}

static Body fixture(const char *name) {
        const char *dir = getenv("FIXTURES") ?: "tests/fixtures";
        _cleanup_free_ char *path = strdup_printf("%s/%s", dir, name);
        _cleanup_free_ char *data = NULL;
        size_t size;

        int r = read_full_file(path, PC_MAX_BODY, &data, &size);
        if (r < 0)
                fail_msg("cannot read %s: %s", path, strerror(-r));
        return body_from(data, size);
}

static int parse_page(const char *s, Snapshot *snap, PcPage *page, const char **reason) {
        _cleanup_(body_done) Body b = body_from(s, strlen(s));
        return pc_parse_provisioning_page(b.data, b.size, snap, page, reason);
}

static void test_docs_sample_bom(void **state) {
        _cleanup_(body_done) Body b = fixture("provisioningstatus-docs-sample-bom.json");
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        _cleanup_(pc_page_done) PcPage page = {};
        const char *reason = "unset";

        assert_true(b.size > 3 && memcmp(b.data, "\xEF\xBB\xBF", 3) == 0);
        assert_int_equal(pc_parse_provisioning_page(b.data, b.size, snap, &page, &reason), 0);
        assert_null(reason);
        assert_null(page.next_uri);
        assert_null(page.next_headers);
        assert_int_equal(snap->n_items, 1);
        const LineItem *li = &snap->items[0];
        assert_int_equal(li->number, 0);
        assert_true(li->has_order_line_item_id);
        assert_int_equal(li->order_line_item_id, 0);
        assert_string_equal(li->status, "fulfilled");
        assert_int_equal(li->n_quantities, 1);
        assert_string_equal(li->quantities[0].status, "fulfilled");
        assert_int_equal(li->quantities[0].quantity, 1);

        /* the same without BOM, and with surrounding whitespace */
        _cleanup_(snapshot_freep) Snapshot *snap2 = snapshot_new();
        _cleanup_free_ char *ws = strdup_printf(" \r\n%.*s\n\t ", (int) (b.size - 3), b.data + 3);
        assert_int_equal(parse_page(ws, snap2, NULL, NULL), 0);
        assert_int_equal(snap2->n_items, 1);
        assert_true(line_item_equal(&snap2->items[0], li));
}

static void test_two_pages(void **state) {
        _cleanup_(body_done) Body p1 = fixture("provisioningstatus-two-pages-1.json");
        _cleanup_(body_done) Body p2 = fixture("provisioningstatus-two-pages-2.json");
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        _cleanup_(pc_page_done) PcPage page = {};
        const char *reason = NULL;

        assert_int_equal(pc_parse_provisioning_page(p1.data, p1.size, snap, &page, &reason), 0);
        assert_string_equal(page.next_uri, "/customers/0c39d6d5-c70d-4c55-bc02-f620844f3fd1/orders/"
                                           "YxH1q4KScfvfkJQjgRI8QY1DznnUWZTH1/provisioningstatus?seekOperation=Next");
        assert_non_null(page.next_headers);
        assert_string_equal(page.next_headers[0], "MS-ContinuationToken: AQAAAA==");
        assert_null(page.next_headers[1]);
        pc_page_done(&page);

        assert_int_equal(pc_parse_provisioning_page(p2.data, p2.size, snap, &page, &reason), 0);
        assert_null(page.next_uri);

        assert_int_equal(snap->n_items, 2);
        const LineItem *a = snapshot_find(snap, 0), *b = snapshot_find(snap, 1);
        assert_non_null(a);
        assert_non_null(b);
        /* uppercase statuses arrive lowercased */
        assert_string_equal(a->status, "prefulfillmentpending");
        assert_int_equal(a->n_quantities, 2);
        assert_string_equal(a->quantities[0].status, "fulfilled");
        assert_int_equal(a->quantities[0].quantity, 3);
        assert_string_equal(a->quantities[1].status, "prefulfillmentpending");
        assert_int_equal(a->quantities[1].quantity, 2);
        assert_true(a->has_order_line_item_id);
        assert_false(b->has_order_line_item_id);
        assert_string_equal(b->status, "fulfilled");
        assert_int_equal(b->quantities[0].quantity, 10);

        /* page 2 again: its line item is a duplicate across pages; snap stays as it was */
        assert_int_equal(pc_parse_provisioning_page(p2.data, p2.size, snap, &page, &reason), -EEXIST);
        assert_string_equal(reason, "duplicate lineItemNumber 1");
        assert_int_equal(snap->n_items, 2);
}

static void test_pages_out_of_order(void **state) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();

        assert_int_equal(parse_page("{\"items\":[{\"lineItemNumber\":5,\"status\":\"a\"},"
                                    "{\"lineItemNumber\":3,\"status\":\"b\"}]}",
                                    snap, NULL, NULL),
                         0);
        assert_int_equal(parse_page("{\"items\":[{\"lineItemNumber\":4,\"status\":\"c\"},"
                                    "{\"lineItemNumber\":0,\"status\":\"d\"}]}",
                                    snap, NULL, NULL),
                         0);
        assert_int_equal(snap->n_items, 4);
        assert_int_equal(snap->items[0].number, 0);
        assert_int_equal(snap->items[1].number, 3);
        assert_int_equal(snap->items[2].number, 4);
        assert_int_equal(snap->items[3].number, 5);
}

static void test_accepted_variants(void **state) {
        static const char *const ok[] = {
                "{\"items\":[]}",
                "{'items':[]}", /* json-c accepts single-quoted keys even in strict mode; harmless */
                "{\"items\":[],\"totalCount\":0,\"links\":null,\"attributes\":{\"objectType\":\"Collection\"}}",
                "{\"items\":[{\"lineItemNumber\":0,\"status\":\"x\",\"orderLineItemId\":null,"
                "\"quantityProvisioningInformation\":null}]}",
                "{\"items\":[{\"lineItemNumber\":0,\"status\":\"x\",\"quantityProvisioningInformation\":[]}]}",
                "{\"items\":[{\"lineItemNumber\":-3,\"status\":\"x\",\"extra\":{\"deep\":[1,2,3]}}]}",
                "{\"items\":[{\"lineItemNumber\":9223372036854775807,\"status\":\"x\"}]}",
                "{\"items\":[],\"links\":{\"self\":{\"uri\":\"/x\"},\"next\":null}}",
                "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\"}}}",
                "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[]}}}",
                "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"A\",\"value\":\"b\\tc\"}]}}}",
                "{\"items\":[{\"lineItemNumber\":0,\"status\":\"x\",\"quantityProvisioningInformation\":"
                "[{\"quantity\":0,\"status\":\"y\"}]}]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
                _cleanup_(pc_page_done) PcPage page = {};
                const char *reason = NULL;
                int r = parse_page(ok[i], snap, &page, &reason);
                if (r != 0)
                        fail_msg("%s: %d (%s)", ok[i], r, reason);
                if (page.next_uri)
                        assert_non_null(page.next_headers);
        }

        /* zero quantities are left out; quantities sum per lowercased status */
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        assert_int_equal(parse_page("{\"items\":[{\"lineItemNumber\":0,\"status\":\"x\",\"quantityProvisioningInformation\":"
                                    "[{\"quantity\":0,\"status\":\"y\"},{\"quantity\":2,\"status\":\"Z\"},"
                                    "{\"quantity\":5,\"status\":\"z\"},{\"quantity\":1,\"status\":\"b\"}]}]}",
                                    snap, NULL, NULL),
                         0);
        assert_int_equal(snap->items[0].n_quantities, 2);
        assert_string_equal(snap->items[0].quantities[0].status, "b");
        assert_string_equal(snap->items[0].quantities[1].status, "z");
        assert_int_equal(snap->items[0].quantities[1].quantity, 7);
}

typedef struct Hostile {
        const char *body;
        int error;
        const char *reason; /* exact, or NULL to only check the error */
} Hostile;

#define ITEM0 "{\"lineItemNumber\":0,\"status\":\"fulfilled\""
#define QPI(x) "{\"items\":[" ITEM0 ",\"quantityProvisioningInformation\":" x "}]}"

static const Hostile hostile[] = {
        /* not JSON, or not the expected JSON */
        { "nope", -EBADMSG, NULL },
        { "{\"items\":[]", -EBADMSG, "truncated JSON" },
        { "{\"items\":[" ITEM0, -EBADMSG, "truncated JSON" },
        { "{\"items\":[]} x", -EBADMSG, NULL },
        { "{\"items\":[]}{}", -EBADMSG, NULL },
        { "{\"items\":[]}]", -EBADMSG, NULL },
        { "   ", -EBADMSG, "empty body" },
        { "\xEF\xBB\xBF", -EBADMSG, "empty body" },
        { "\xEF\xBB\xBF\xEF\xBB\xBF{\"items\":[]}", -EBADMSG, NULL },
        { "null", -EBADMSG, NULL },
        { "[]", -EBADMSG, "body is not a JSON object" },
        { "\"items\"", -EBADMSG, "body is not a JSON object" },
        { "{\"items\":[],}", -EBADMSG, NULL },
        { "{\"items\":[\"\xff\"]}", -EBADMSG, NULL },
        { "{}", -EBADMSG, "missing items" },
        { "{\"Items\":[]}", -EBADMSG, "missing items" },
        { "{\"items\":null}", -EBADMSG, "items is not an array" },
        { "{\"items\":{}}", -EBADMSG, "items is not an array" },
        { "{\"items\":\"[]\"}", -EBADMSG, "items is not an array" },
        { "{\"items\":[1]}", -EBADMSG, "items[0] is not an object" },
        { "{\"items\":[" ITEM0 "},null]}", -EBADMSG, "items[1] is not an object" },
        { "{\"items\":[[]]}", -EBADMSG, "items[0] is not an object" },
        /* totalCount */
        { "{\"totalCount\":\"1\",\"items\":[]}", -EBADMSG, "totalCount is not an integer" },
        { "{\"totalCount\":1.5,\"items\":[]}", -EBADMSG, "totalCount is not an integer" },
        { "{\"totalCount\":18446744073709551616,\"items\":[]}", -EBADMSG, "totalCount is out of range" },
        /* lineItemNumber */
        { "{\"items\":[{\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is missing" },
        { "{\"items\":[{\"lineItemNumber\":null,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is missing" },
        { "{\"items\":[{\"lineItemNumber\":\"0\",\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is not an integer" },
        { "{\"items\":[{\"lineItemNumber\":0.0,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is not an integer" },
        { "{\"items\":[{\"lineItemNumber\":1e3,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is not an integer" },
        { "{\"items\":[{\"lineItemNumber\":true,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is not an integer" },
        { "{\"items\":[{\"lineItemNumber\":[0],\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is not an integer" },
        { "{\"items\":[{\"lineItemNumber\":9223372036854775808,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is out of range" },
        { "{\"items\":[{\"lineItemNumber\":99999999999999999999999999,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is out of range" },
        { "{\"items\":[{\"lineItemNumber\":-99999999999999999999999999,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is out of range" },
        { "{\"items\":[{\"lineItemNumber\":NaN,\"status\":\"a\"}]}", -EBADMSG, "items[0].lineItemNumber is not an integer" },
        /* orderLineItemId */
        { "{\"items\":[" ITEM0 ",\"orderLineItemId\":\"0\"}]}", -EBADMSG, "items[0].orderLineItemId is not an integer" },
        { "{\"items\":[" ITEM0 ",\"orderLineItemId\":0.5}]}", -EBADMSG, "items[0].orderLineItemId is not an integer" },
        { "{\"items\":[" ITEM0 ",\"orderLineItemId\":{}}]}", -EBADMSG, "items[0].orderLineItemId is not an integer" },
        { "{\"items\":[" ITEM0 ",\"orderLineItemId\":18446744073709551615}]}", -EBADMSG, "items[0].orderLineItemId is out of range" },
        /* status */
        { "{\"items\":[{\"lineItemNumber\":0}]}", -EBADMSG, "items[0].status is missing" },
        { "{\"items\":[{\"lineItemNumber\":0,\"status\":null}]}", -EBADMSG, "items[0].status is missing" },
        { "{\"items\":[" ITEM0 "},{\"lineItemNumber\":1,\"status\":1}]}", -EBADMSG, "items[1].status is not a string" },
        { "{\"items\":[{\"lineItemNumber\":0,\"status\":[\"a\"]}]}", -EBADMSG, "items[0].status is not a string" },
        { "{\"items\":[{\"lineItemNumber\":0,\"status\":\"\"}]}", -EBADMSG, "items[0].status is not a valid status" },
        { "{\"items\":[{\"lineItemNumber\":0,\"status\":\"\"}]}", -EBADMSG, "items[0].status is not a valid status" },
        { "{\"items\":[{\"lineItemNumber\":0,\"status\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}", -EBADMSG,
          "items[0].status is not a valid status" },
        { "{\"items\":[{\"lineItemNumber\":0,\"status\":\"a\\u0000b\"}]}", -EBADMSG, "items[0].status is not a string" },
        /* quantityProvisioningInformation */
        { QPI("{}"), -EBADMSG, "items[0].quantityProvisioningInformation is not an array" },
        { QPI("\"\""), -EBADMSG, "items[0].quantityProvisioningInformation is not an array" },
        { QPI("[1]"), -EBADMSG, "items[0].quantityProvisioningInformation[0] is not an object" },
        { QPI("[{\"quantity\":1,\"status\":\"a\"},null]"), -EBADMSG, "items[0].quantityProvisioningInformation[1] is not an object" },
        { QPI("[{\"status\":\"a\"}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].quantity is missing" },
        { QPI("[{\"quantity\":\"1\",\"status\":\"a\"}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].quantity is not an integer" },
        { QPI("[{\"quantity\":1.0,\"status\":\"a\"}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].quantity is not an integer" },
        { QPI("[{\"quantity\":-1,\"status\":\"a\"}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].quantity is negative" },
        { QPI("[{\"quantity\":1e400,\"status\":\"a\"}]"), -EBADMSG, NULL },
        { QPI("[{\"quantity\":9223372036854775808,\"status\":\"a\"}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].quantity is out of range" },
        { QPI("[{\"quantity\":9223372036854775807,\"status\":\"a\"},{\"quantity\":1,\"status\":\"A\"}]"), -EBADMSG,
          "items[0].quantityProvisioningInformation: sum of quantities overflows" },
        { QPI("[{\"quantity\":1}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].status is missing" },
        { QPI("[{\"quantity\":1,\"status\":2}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].status is not a string" },
        { QPI("[{\"quantity\":1,\"status\":\"\"}]"), -EBADMSG, "items[0].quantityProvisioningInformation[0].status is not a valid status" },
        /* duplicates */
        { "{\"items\":[" ITEM0 "}," ITEM0 "}]}", -EEXIST, "duplicate lineItemNumber 0" },
        { "{\"items\":[{\"lineItemNumber\":7,\"status\":\"a\"},{\"lineItemNumber\":3,\"status\":\"a\"},"
          "{\"lineItemNumber\":7,\"status\":\"b\"}]}", -EEXIST, "duplicate lineItemNumber 7" },
        /* links */
        { "{\"items\":[],\"links\":[]}", -EBADMSG, "links is not an object" },
        { "{\"items\":[],\"links\":{\"next\":\"/x\"}}", -EBADMSG, "links.next is not an object" },
        { "{\"items\":[],\"links\":{\"next\":{}}}", -EBADMSG, "links.next.uri is missing" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":5}}}", -EBADMSG, "links.next.uri is not a string" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"https://evil.example/x\"}}}", -EBADMSG, "links.next.uri is not a path starting with '/'" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\\r\\nHost: evil\"}}}", -EBADMSG, "links.next.uri is not a path starting with '/'" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x y\"}}}", -EBADMSG, "links.next.uri is not a path starting with '/'" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":{}}}}", -EBADMSG, "links.next.headers is not an array" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[\"A: b\"]}}}", -EBADMSG, "links.next.headers[0] is not an object" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":1,\"value\":\"b\"}]}}}", -EBADMSG,
          "links.next.headers[0].key is not a string" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"A\"}]}}}", -EBADMSG,
          "links.next.headers[0].value is not a string" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"A\\r\\nB\",\"value\":\"b\"}]}}}", -EBADMSG,
          "links.next.headers[0].key is not a valid header name" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"A: c\",\"value\":\"b\"}]}}}", -EBADMSG,
          "links.next.headers[0].key is not a valid header name" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"\",\"value\":\"b\"}]}}}", -EBADMSG,
          "links.next.headers[0].key is not a valid header name" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"A\",\"value\":\"b\\r\\nX-Evil: 1\"}]}}}", -EBADMSG,
          "links.next.headers[0].value contains control characters" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"A\",\"value\":\"b\\n\"}]}}}", -EBADMSG,
          "links.next.headers[0].value contains control characters" },
        { "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/x\",\"headers\":[{\"key\":\"A\",\"value\":\"b\\u0000c\"}]}}}", -EBADMSG,
          "links.next.headers[0].value is not a string" },
};

static void test_hostile(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(hostile); i++) {
                _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
                PcPage page = { .next_uri = (char *) "sentinel" };
                const char *reason = NULL;

                assert_int_equal(snapshot_add_item(snap, 100, false, 0, "kept", NULL, NULL, 0), 0);
                int r = parse_page(hostile[i].body, snap, &page, &reason);
                if (r != hostile[i].error)
                        fail_msg("#%zu %s: expected %d, got %d (%s)", i, hostile[i].body, hostile[i].error, r, reason);
                if (!reason)
                        fail_msg("#%zu %s: no reason", i, hostile[i].body);
                if (hostile[i].reason && !streq(reason, hostile[i].reason))
                        fail_msg("#%zu %s: reason '%s', expected '%s'", i, hostile[i].body, reason, hostile[i].reason);
                /* untouched on failure */
                assert_string_equal(page.next_uri, "sentinel");
                assert_int_equal(snap->n_items, 1);
                assert_int_equal(snap->items[0].number, 100);
        }
}

static void test_empty_and_nul(void **state) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        const char *reason = NULL;
        static const char with_nul[] = "{\"items\":[]}\0{}";
        static const char nul_inside[] = "{\"items\":[{\"lineItemNumber\":0,\"status\":\"a\0b\"}]}";

        assert_int_equal(pc_parse_provisioning_page(NULL, 0, snap, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "empty body");
        assert_int_equal(pc_parse_provisioning_page("", 0, snap, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "empty body");
        assert_int_equal(pc_parse_provisioning_page(NULL, 5, snap, NULL, &reason), -EINVAL);
        assert_string_equal(reason, "invalid argument");
        assert_int_equal(pc_parse_provisioning_page("{}", 2, snap, NULL, NULL), -EBADMSG);

        _cleanup_(body_done) Body b1 = body_from(with_nul, sizeof with_nul - 1);
        assert_int_equal(pc_parse_provisioning_page(b1.data, b1.size, snap, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "body contains a NUL byte");
        _cleanup_(body_done) Body b2 = body_from(nul_inside, sizeof nul_inside - 1);
        assert_int_equal(pc_parse_provisioning_page(b2.data, b2.size, snap, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "body contains a NUL byte");

        /* a body that is fine when only its first bytes are read */
        _cleanup_(body_done) Body b3 = body_from("{\"items\":[]}garbage", 12);
        assert_int_equal(pc_parse_provisioning_page(b3.data, b3.size, snap, NULL, &reason), 0);
        _cleanup_(body_done) Body b4 = body_from("{\"items\":[]}", 11);
        assert_int_equal(pc_parse_provisioning_page(b4.data, b4.size, snap, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "truncated JSON");
        assert_int_equal(snap->n_items, 0);
}

static void test_too_big(void **state) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        const char *reason = NULL;
        size_t size = PC_MAX_BODY + 1;
        _cleanup_free_ char *big = malloc(size);

        assert_non_null(big);
        memset(big, ' ', size);
        memcpy(big, "{\"items\":[]}", 12);
        assert_int_equal(pc_parse_provisioning_page(big, size, snap, NULL, &reason), -E2BIG);
        assert_non_null(reason);
        /* exactly at the limit is fine */
        assert_int_equal(pc_parse_provisioning_page(big, size - 1, snap, NULL, &reason), 0);
}

static void test_deep_nesting(void **state) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        const char *reason = NULL;
        size_t depth = 100000;
        _cleanup_free_ char *s = malloc(10 + 2 * depth + 2);
        char *p = s;

        p = stpcpy(p, "{\"items\":");
        memset(p, '[', depth);
        p += depth;
        memset(p, ']', depth);
        p += depth;
        *p++ = '}';

        assert_int_equal(pc_parse_provisioning_page(s, (size_t) (p - s), snap, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "JSON nested too deeply");

        p = stpcpy(s, "{\"items\":[], \"x\":");
        for (size_t i = 0; i < 1000; i++)
                p = stpcpy(p, "{\"a\":");
        assert_int_equal(pc_parse_provisioning_page(s, (size_t) (p - s), snap, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "JSON nested too deeply");
}

static void test_many_items(void **state) {
        /* descending numbers over two pages: stays fast and sorted */
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        for (int page = 0; page < 2; page++) {
                char *buf = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&buf, &size);
                assert_non_null(f);
                fputs("{\"items\":[", f);
                for (int i = 20000; i > 0; i--)
                        fprintf(f, "%s{\"lineItemNumber\":%d,\"status\":\"s\","
                                   "\"quantityProvisioningInformation\":[{\"quantity\":1,\"status\":\"s\"}]}",
                                i == 20000 ? "" : ",", i * 2 + page);
                fputs("]}", f);
                assert_int_equal(fclose(f), 0);
                const char *reason = NULL;
                int r = pc_parse_provisioning_page(buf, size, snap, NULL, &reason);
                free(buf);
                assert_int_equal(r, 0);
        }
        assert_int_equal(snap->n_items, 40000);
        for (size_t i = 0; i < snap->n_items; i++)
                assert_int_equal(snap->items[i].number, (int64_t) i + 2);
}

/* SPEC §3: a status is any non-empty string of at most 256 bytes; an unexpected one is a change to
 * report, never a failed poll. Only ASCII letters are lowered. */
static void test_odd_statuses(void **state) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        const char *reason = NULL;
        const char *body = "{\"items\":[{\"lineItemNumber\":0,\"status\":\"Pending Activation\","
                           "\"quantityProvisioningInformation\":[{\"quantity\":2,\"status\":\"Waiting = Yes\"},"
                           "{\"quantity\":1,\"status\":\"CAF\\u00c9\"}]},"
                           "{\"lineItemNumber\":1,\"status\":\"a\\nb\"}]}";
        assert_int_equal(parse_page(body, snap, NULL, &reason), 0);
        assert_int_equal(snap->n_items, 2);
        assert_string_equal(snap->items[0].status, "pending activation");
        assert_int_equal(snap->items[0].n_quantities, 2);
        assert_string_equal(snap->items[0].quantities[0].status, "caf\xc3\x89");
        assert_string_equal(snap->items[0].quantities[1].status, "waiting = yes");
        assert_string_equal(snap->items[1].status, "a\nb");
        _cleanup_free_ char *q = quantities_format(&snap->items[0]);
        assert_string_equal(q, "caf\xc3\x89=1 waiting\\x20\\x3d\\x20yes=2");
}

static int parse_token(const char *s, TokenResponse *t, const char **reason);

static void test_token_fixtures(void **state) {
        _cleanup_(body_done) Body ok = fixture("token-refresh-v1.json");
        _cleanup_(body_done) Body bad = fixture("token-error-invalid-grant.json");
        _cleanup_(token_response_done) TokenResponse t = {}, e = {};
        const char *reason = NULL;

        assert_int_equal(pc_parse_token_response(ok.data, ok.size, &t, &reason), 0);
        assert_string_equal(t.access_token, "AccessTokenValue");
        assert_string_equal(t.refresh_token, "RotatedRefreshTokenValue");
        assert_int_equal(t.expires_in_usec, 3600 * USEC_PER_SEC);
        assert_null(t.error);

        assert_int_equal(pc_parse_token_response(bad.data, bad.size, &e, &reason), 0);
        assert_string_equal(e.error, "invalid_grant");
        assert_string_equal(e.error_description, "AADSTS700082: The refresh token has expired due to inactivity.");
        assert_null(e.access_token);
        assert_null(e.refresh_token);
        assert_int_equal(e.n_error_codes, 1);

        _cleanup_(body_done) Body expired = fixture("token-error-refresh-expired.json");
        _cleanup_(token_response_done) TokenResponse x = {};
        assert_int_equal(pc_parse_token_response(expired.data, expired.size, &x, &reason), 0);
        assert_string_equal(x.error, "invalid_grant");
        assert_int_equal(x.n_error_codes, 1);
        assert_int_equal(x.error_codes[0], 700082);
        assert_true(strncmp(x.error_description, "AADSTS700082: The refresh token has expired due to inactivity.", 62) == 0);

        /* codes that are not numbers are left out, not an error */
        _cleanup_(token_response_done) TokenResponse y = {};
        assert_int_equal(parse_token("{\"error\":\"invalid_client\",\"error_codes\":[7000215,\"x\",null]}", &y, &reason), 0);
        assert_int_equal(y.n_error_codes, 1);
        assert_int_equal(y.error_codes[0], 7000215);
}

static int parse_token(const char *s, TokenResponse *t, const char **reason) {
        _cleanup_(body_done) Body b = body_from(s, strlen(s));
        return pc_parse_token_response(b.data, b.size, t, reason);
}

static void test_token_variants(void **state) {
        static const struct {
                const char *body;
                uint64_t expires_sec;
                bool refresh;
        } ok[] = {
                { "{\"access_token\":\"a.b-c_d\",\"expires_in\":3599}", 3599, false },
                { "{\"access_token\":\"a\",\"expires_in\":\"1\",\"refresh_token\":\"r\"}", 1, true },
                { "{\"access_token\":\"a\",\"expires_in\":3600.0,\"refresh_token\":null}", 3600, false },
                { "\xEF\xBB\xBF{\"access_token\":\"a\",\"expires_in\":315360000}", 315360000, false },
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_(token_response_done) TokenResponse t = {};
                const char *reason = NULL;
                int r = parse_token(ok[i].body, &t, &reason);
                if (r != 0)
                        fail_msg("%s: %d (%s)", ok[i].body, r, reason);
                assert_non_null(t.access_token);
                assert_int_equal(t.expires_in_usec, ok[i].expires_sec * USEC_PER_SEC);
                assert_int_equal(!!t.refresh_token, ok[i].refresh);
        }

        static const struct {
                const char *body;
                const char *reason;
        } bad[] = {
                { "{\"expires_in\":3600}", "access_token is missing" },
                { "{\"access_token\":null,\"expires_in\":3600}", "access_token is missing" },
                { "{\"access_token\":1,\"expires_in\":3600}", "access_token is not a string" },
                { "{\"access_token\":\"\",\"expires_in\":3600}", "access_token is empty or has invalid characters" },
                { "{\"access_token\":\"a\\r\\nX: y\",\"expires_in\":3600}", "access_token is empty or has invalid characters" },
                { "{\"access_token\":\"a b\",\"expires_in\":3600}", "access_token is empty or has invalid characters" },
                { "{\"access_token\":\"a\",\"refresh_token\":5,\"expires_in\":3600}", "refresh_token is not a string" },
                { "{\"access_token\":\"a\",\"refresh_token\":\"\\n\",\"expires_in\":3600}",
                  "refresh_token is empty or has invalid characters" },
                { "{\"access_token\":\"a\"}", "expires_in is missing" },
                { "{\"access_token\":\"a\",\"expires_in\":\"\"}", "expires_in is not a number" },
                { "{\"access_token\":\"a\",\"expires_in\":\"36x\"}", "expires_in is not a number" },
                { "{\"access_token\":\"a\",\"expires_in\":\"-1\"}", "expires_in is not a number" },
                { "{\"access_token\":\"a\",\"expires_in\":\" 1\"}", "expires_in is not a number" },
                { "{\"access_token\":\"a\",\"expires_in\":\"99999999999999999999\"}", "expires_in is not a number" },
                { "{\"access_token\":\"a\",\"expires_in\":true}", "expires_in is not a number" },
                { "{\"access_token\":\"a\",\"expires_in\":[]}", "expires_in is not a number" },
                { "{\"access_token\":\"a\",\"expires_in\":0}", "expires_in is out of range" },
                { "{\"access_token\":\"a\",\"expires_in\":\"0\"}", "expires_in is out of range" },
                { "{\"access_token\":\"a\",\"expires_in\":-5}", "expires_in is out of range" },
                { "{\"access_token\":\"a\",\"expires_in\":NaN}", "expires_in is out of range" },
                { "{\"access_token\":\"a\",\"expires_in\":1e300}", "expires_in is out of range" },
                { "{\"access_token\":\"a\",\"expires_in\":999999999999}", "expires_in is out of range" },
                { "{\"access_token\":\"a\",\"expires_in\":\"999999999999\"}", "expires_in is out of range" },
                { "{\"access_token\":\"a\",\"expires_in\":18446744073709551615}", "expires_in is out of range" },
                { "{\"error\":5}", "error is not a non-empty string" },
                { "[]", "body is not a JSON object" },
                { "", "empty body" },
                { "{\"access_token\":\"a\",\"expires_in\":1", "truncated JSON" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                TokenResponse t = {};
                const char *reason = NULL;
                int r = parse_token(bad[i].body, &t, &reason);
                if (r != -EBADMSG || !streq_ptr(reason, bad[i].reason))
                        fail_msg("%s: %d (%s), expected '%s'", bad[i].body, r, reason, bad[i].reason);
                assert_null(t.access_token);
        }

        /* an error answer wins over anything else and needs no access_token */
        _cleanup_(token_response_done) TokenResponse t = {};
        assert_int_equal(parse_token("{\"error\":\"invalid_client\",\"access_token\":5}", &t, NULL), 0);
        assert_string_equal(t.error, "invalid_client");
        assert_null(t.error_description);
        assert_null(t.access_token);
}

static void test_error_bodies(void **state) {
        static const struct {
                const char *fixture;
                const char *code, *description;
        } fixtures[] = {
                { "error-404-order-not-found.json", "20000", "Order ID not found" },
                { "error-400-code-as-string.json", "800002", "Invalid request input" },
                { "error-429-rate-limit.json", "429", "Rate limit is exceeded. Try again in 57 seconds." },
        };
        for (size_t i = 0; i < ELEMENTSOF(fixtures); i++) {
                _cleanup_(body_done) Body b = fixture(fixtures[i].fixture);
                _cleanup_free_ char *code = NULL, *description = NULL;
                assert_int_equal(pc_parse_error(b.data, b.size, &code, &description), 0);
                assert_string_equal(code, fixtures[i].code);
                assert_string_equal(description, fixtures[i].description);
        }

        static const struct {
                const char *body;
                int r;
                const char *code, *description;
        } cases[] = {
                { "\xEF\xBB\xBF{\"code\":800007,\"description\":\"x\"}", 0, "800007", "x" },
                { "{\"code\":-1}", 0, "-1", NULL },
                { "{\"description\":\"only\"}", 0, NULL, "only" },
                { "{\"code\":{},\"description\":\"d\"}", 0, NULL, "d" },
                { "{\"error\":{\"code\":\"InvalidAuthenticationToken\",\"message\":\"expired\"}}", 0,
                  "InvalidAuthenticationToken", "expired" },
                { "{}", -EBADMSG, NULL, NULL },
                { "{\"data\":[]}", -EBADMSG, NULL, NULL },
                { "[]", -EBADMSG, NULL, NULL },
                { "<html>Bad Gateway</html>", -EBADMSG, NULL, NULL },
                { "", -EBADMSG, NULL, NULL },
                { "{\"code\":1} x", -EBADMSG, NULL, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(body_done) Body b = body_from(cases[i].body, strlen(cases[i].body));
                char *code = (char *) "unset", *description = (char *) "unset";
                int r = pc_parse_error(b.data, b.size, &code, &description);
                if (r != cases[i].r)
                        fail_msg("%s: %d", cases[i].body, r);
                if (r < 0) {
                        assert_string_equal(code, "unset");
                        continue;
                }
                assert_true(streq_ptr(code, cases[i].code));
                assert_true(streq_ptr(description, cases[i].description));
                free(code);
                free(description);
        }
        _cleanup_free_ char *big = calloc(1, PC_MAX_BODY + 1);
        assert_int_equal(pc_parse_error(big, PC_MAX_BODY + 1, NULL, NULL), -E2BIG);
}

static void test_token_request_body(void **state) {
        _cleanup_free_ char *a = pc_token_request_body("refresh_token", "0.AX/y+z=", "c1d-2", "s3cr&t ~!",
                                                       "https://api.partnercenter.microsoft.com");
        assert_string_equal(a, "grant_type=refresh_token&refresh_token=0.AX%2Fy%2Bz%3D&client_id=c1d-2"
                               "&client_secret=s3cr%26t%20~%21&resource=https%3A%2F%2Fapi.partnercenter.microsoft.com");

        _cleanup_free_ char *b = pc_token_request_body("client_credentials", NULL, "id", "caf\xc3\xa9\n", "r");
        assert_string_equal(b, "grant_type=client_credentials&client_id=id&client_secret=caf%C3%A9%0A&resource=r");

        _cleanup_free_ char *c = pc_token_request_body("x", NULL, NULL, NULL, NULL);
        assert_string_equal(c, "grant_type=x");
}

static void test_provisioning_url(void **state) {
        _cleanup_free_ char *a = pc_provisioning_url("https://api.partnercenter.microsoft.com", "1",
                                                     "0c39d6d5-c70d-4c55-bc02-f620844f3fd1",
                                                     "YxH1q4KScfvfkJQjgRI8QY1DznnUWZTH1");
        assert_string_equal(a, "https://api.partnercenter.microsoft.com/v1/customers/0c39d6d5-c70d-4c55-bc02-f620844f3fd1"
                               "/orders/YxH1q4KScfvfkJQjgRI8QY1DznnUWZTH1/provisioningstatus");

        _cleanup_free_ char *b = pc_provisioning_url("http://127.0.0.1:8080/pc//", "1", "a/../b", "o?x=1#f");
        assert_string_equal(b, "http://127.0.0.1:8080/pc/v1/customers/a%2F..%2Fb/orders/o%3Fx%3D1%23f/provisioningstatus");
}

/* The fast path for plain answers gives exactly what the full parser gives, also on bodies it leaves
 * to json-c: each of these either way, and every prefix of the plain ones. */
static void test_fast_path_agrees(void **state) {
        static const char *const bodies[] = {
                "{\"totalCount\":1,\"items\":[{\"orderLineItemId\":0,\"lineItemNumber\":0,\"status\":\"Fulfilled\","
                "\"quantityProvisioningInformation\":[{\"quantity\":2,\"status\":\"fulfilled\"},{\"quantity\":3,\"status\":\"Pending\"}]}],"
                "\"links\":{\"self\":{\"uri\":\"/x\",\"method\":\"GET\",\"headers\":[]}},\"attributes\":{\"objectType\":\"Collection\"}}",
                "\xEF\xBB\xBF {\"items\":[{\"lineItemNumber\":3,\"status\":\"pending\"},{\"lineItemNumber\":1,\"status\":\"x\","
                "\"extra\":[true,false,null,{\"a\":[1,-2,{}]},\"s\"]}]} \r\n",
                "{\"items\":[]}",
                "{\"items\":[],\"links\":{\"next\":{\"uri\":\"/next\",\"headers\":[{\"key\":\"MS-ContinuationToken\",\"value\":\"t\"}]}}}",
                "{\"items\":[{\"lineItemNumber\":0,\"status\":\"a\\u0062\"}]}",
                "{\"items\":[{\"lineItemNumber\":0,\"status\":\"caf\xC3\xA9\"}]}",
                "{\"items\":[{\"lineItemNumber\":-0,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":01,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":1.0,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":1e2,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":9223372036854775807,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":9223372036854775808,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"orderLineItemId\":null,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\",\"quantityProvisioningInformation\":null}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"lineItemNumber\":2,\"status\":\"a\"}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\"}],\"items\":5}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\"},{\"lineItemNumber\":1,\"status\":\"b\"}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a b\"}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"\"}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\",\"quantityProvisioningInformation\":[{\"quantity\":-1,\"status\":\"a\"}]}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\",\"quantityProvisioningInformation\":[{\"quantity\":1}]}]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\",\"quantityProvisioningInformation\":[{\"quantity\":9000000000000000000,\"status\":\"a\"},{\"quantity\":900000000000000000,\"status\":\"a\"}]}]}",
                "{\"items\":[{\"lineItemNumber\":1}]}",
                "{\"items\":{}}",
                "{\"items\":[1]}",
                "{\"links\":[],\"items\":[]}",
                "{\"totalCount\":\"1\",\"items\":[]}",
                "{\"items\":[],}",
                "{\"items\":[]} x",
                "[{\"items\":[]}]",
                "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],\"items\":[]}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\"}] \f}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\"}],\"x\":tru}",
                "{\"items\":[{\"lineItemNumber\":1,\"status\":\"a\"}],\"x\":\"\x01\"}",
                "",
                " ",
        };
        for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
                size_t size = strlen(bodies[i]);
                for (size_t cut = i < 2 ? 0 : size; cut <= size; cut++) {
                        _cleanup_(body_done) Body b = body_from(bodies[i], cut);
                        _cleanup_(snapshot_freep) Snapshot *fast = snapshot_new(), *full = snapshot_new();
                        PcPage pf = {}, pl = {};
                        const char *rf = NULL, *rl = NULL;
                        int r1 = pc_parse_provisioning_page(b.data, b.size, fast, &pf, &rf);
                        int r2 = pc_parse_provisioning_page_full(b.data, b.size, full, &pl, &rl);
                        assert_int_equal(r1, r2);
                        assert_true(snapshot_equal(fast, full));
                        if (r1 < 0)
                                assert_string_equal(rf, rl);
                        else {
                                assert_true(!pf.next_uri == !pl.next_uri);
                                if (pf.next_uri)
                                        assert_string_equal(pf.next_uri, pl.next_uri);
                        }
                        pc_page_done(&pf);
                        pc_page_done(&pl);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_docs_sample_bom),
                cmocka_unit_test(test_two_pages),
                cmocka_unit_test(test_pages_out_of_order),
                cmocka_unit_test(test_accepted_variants),
                cmocka_unit_test(test_hostile),
                cmocka_unit_test(test_empty_and_nul),
                cmocka_unit_test(test_too_big),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_many_items),
                cmocka_unit_test(test_odd_statuses),
                cmocka_unit_test(test_token_fixtures),
                cmocka_unit_test(test_token_variants),
                cmocka_unit_test(test_error_bodies),
                cmocka_unit_test(test_token_request_body),
                cmocka_unit_test(test_provisioning_url),
                cmocka_unit_test(test_fast_path_agrees),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
