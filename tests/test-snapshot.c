/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "snapshot.h"

static char *const terminal[] = { "fulfilled", "unfulfilled", NULL };

static int add(Snapshot *s, int64_t n, const char *status, size_t n_q, const char *const *qs, const int64_t *qn) {
        return snapshot_add_item(s, n, false, 0, status, qs, qn, n_q);
}

static void test_add_sum_sort(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        const char *qs[] = { "Fulfilled", "pending", "fulfilled", "Zero", "ZERO", "a" };
        const int64_t qn[] = { 3, 0, 2, 0, 0, 1 };

        assert_non_null(s);
        assert_int_equal(add(s, 2, "Fulfilled", 6, qs, qn), 0);
        assert_int_equal(add(s, 0, "PrefulfillmentPending", 0, NULL, NULL), 0);
        assert_int_equal(snapshot_add_item(s, 1, true, 77, "unfulfilled", NULL, NULL, 0), 0);
        assert_int_equal(add(s, -5, "x", 0, NULL, NULL), 0);
        snapshot_finish(s);
        snapshot_finish(s);

        assert_int_equal(s->n_items, 4);
        assert_int_equal(s->items[0].number, -5);
        assert_int_equal(s->items[1].number, 0);
        assert_int_equal(s->items[2].number, 1);
        assert_int_equal(s->items[3].number, 2);

        assert_string_equal(s->items[1].status, "prefulfillmentpending");
        assert_int_equal(s->items[1].n_quantities, 0);
        assert_null(s->items[1].quantities);
        assert_false(s->items[1].has_order_line_item_id);

        assert_true(s->items[2].has_order_line_item_id);
        assert_int_equal(s->items[2].order_line_item_id, 77);

        const LineItem *li = snapshot_find(s, 2);
        assert_ptr_equal(li, &s->items[3]);
        assert_string_equal(li->status, "fulfilled");
        assert_int_equal(li->n_quantities, 2);
        assert_string_equal(li->quantities[0].status, "a");
        assert_int_equal(li->quantities[0].quantity, 1);
        assert_string_equal(li->quantities[1].status, "fulfilled");
        assert_int_equal(li->quantities[1].quantity, 5);

        assert_null(snapshot_find(s, 3));
        assert_null(snapshot_find(s, -6));
        assert_null(snapshot_find(NULL, 0));
}

static void test_add_errors(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        const char *qs[] = { "fulfilled", "fulfilled" };
        const int64_t neg[] = { 1, -1 };
        const int64_t big[] = { INT64_MAX, 1 };
        const char *bad_qs[] = { "ok", "" };
        const int64_t ones[] = { 1, 1 };

        assert_int_equal(add(s, 5, "fulfilled", 0, NULL, NULL), 0);
        assert_int_equal(add(s, 5, "pending", 0, NULL, NULL), -EEXIST);
        assert_int_equal(add(s, 1, "fulfilled", 0, NULL, NULL), 0);
        assert_int_equal(add(s, 1, "pending", 0, NULL, NULL), -EEXIST);
        assert_int_equal(add(s, 2, "fulfilled", 2, qs, neg), -EINVAL);
        assert_int_equal(add(s, 2, "fulfilled", 2, qs, big), -EOVERFLOW);
        assert_int_equal(add(s, 2, "fulfilled", 2, bad_qs, ones), -EINVAL);
        assert_int_equal(add(s, 2, "", 0, NULL, NULL), -EINVAL);
        assert_int_equal(add(s, 2, NULL, 0, NULL, NULL), -EINVAL);
        char too_long[300];
        memset(too_long, 's', sizeof too_long - 1);
        too_long[sizeof too_long - 1] = 0;
        assert_int_equal(add(s, 2, too_long, 0, NULL, NULL), -EINVAL);
        assert_int_equal(s->n_items, 2);
        assert_int_equal(s->items[0].number, 1);
        assert_int_equal(s->items[1].number, 5);
}

static void test_status_is_valid(void **state) {
        char long_ok[257], long_bad[258];
        memset(long_ok, 'a', 256);
        long_ok[256] = 0;
        memset(long_bad, 'a', 257);
        long_bad[257] = 0;

        assert_true(status_is_valid("fulfilled"));
        assert_true(status_is_valid("PrefulfillmentPending"));
        assert_true(status_is_valid("x"));
        assert_true(status_is_valid("a-b_c.d"));
        assert_true(status_is_valid(long_ok));
        assert_false(status_is_valid(long_bad));
        assert_false(status_is_valid(NULL));
        assert_false(status_is_valid(""));
        /* SPEC §3: statuses are undocumented; whatever comes is a status to report */
        assert_true(status_is_valid("Pending Activation"));
        assert_true(status_is_valid("a=b"));
        assert_true(status_is_valid("a\nb"));
        assert_true(status_is_valid("a\tb"));
        assert_true(status_is_valid("caf\xc3\xa9"));
        assert_true(status_is_valid("a\x7f"));
        assert_true(status_is_valid(" "));
        /* a JSON string is UTF-8 */
        assert_false(status_is_valid("caf\xe9"));
        assert_false(status_is_valid("\xc3"));
        assert_false(status_is_valid("\xed\xa0\x80")); /* a surrogate */
}

static void test_merge_items(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        LineItem items[3] = {};
        int64_t dup = -1;

        assert_int_equal(add(s, 10, "fulfilled", 0, NULL, NULL), 0);
        assert_int_equal(add(s, 20, "fulfilled", 0, NULL, NULL), 0);

        assert_int_equal(line_item_init(&items[0], 30, false, 0, "a", NULL, NULL, 0), 0);
        assert_int_equal(line_item_init(&items[1], 5, false, 0, "b", NULL, NULL, 0), 0);
        assert_int_equal(line_item_init(&items[2], 20, false, 0, "c", NULL, NULL, 0), 0);
        assert_int_equal(snapshot_merge_items(s, items, 3, &dup), -EEXIST);
        assert_int_equal(dup, 20);
        assert_int_equal(s->n_items, 2);

        /* items was sorted in place: 5, 20, 30 */
        assert_int_equal(items[1].number, 20);
        line_item_done(&items[1]);
        assert_int_equal(line_item_init(&items[1], 15, false, 0, "c", NULL, NULL, 0), 0);
        assert_int_equal(snapshot_merge_items(s, items, 3, &dup), 0);
        for (size_t i = 0; i < 3; i++) {
                assert_null(items[i].status);
                line_item_done(&items[i]);
        }
        assert_int_equal(s->n_items, 5);
        const int64_t expect[] = { 5, 10, 15, 20, 30 };
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(s->items[i].number, expect[i]);
        assert_string_equal(snapshot_find(s, 15)->status, "c");

        /* duplicate inside the batch */
        LineItem twice[2] = {};
        assert_int_equal(line_item_init(&twice[0], 40, false, 0, "a", NULL, NULL, 0), 0);
        assert_int_equal(line_item_init(&twice[1], 40, false, 0, "b", NULL, NULL, 0), 0);
        assert_int_equal(snapshot_merge_items(s, twice, 2, NULL), -EEXIST);
        line_item_done(&twice[0]);
        line_item_done(&twice[1]);
        assert_int_equal(s->n_items, 5);

        assert_int_equal(snapshot_merge_items(s, NULL, 0, NULL), 0);
}

static void test_equal_copy(void **state) {
        LineItem a = {}, b = {}, c = {}, d = {};
        const char *qs1[] = { "Fulfilled", "PENDING" };
        const char *qs2[] = { "pending", "fulfilled" };
        const int64_t qn1[] = { 3, 2 };
        const int64_t qn2[] = { 2, 3 };
        const int64_t qn3[] = { 2, 4 };

        assert_int_equal(line_item_init(&a, 0, true, 1, "PrefulfillmentPending", qs1, qn1, 2), 0);
        assert_int_equal(line_item_init(&b, 0, false, 0, "prefulfillmentpending", qs2, qn2, 2), 0);
        assert_int_equal(line_item_init(&c, 0, true, 1, "prefulfillmentpending", qs2, qn3, 2), 0);
        assert_true(line_item_equal(&a, &b)); /* case and olid do not matter */
        assert_false(line_item_equal(&a, &c));
        assert_int_equal(line_item_init(&d, 0, true, 1, "fulfilled", qs1, qn1, 2), 0);
        assert_false(line_item_equal(&a, &d));
        line_item_done(&d);
        assert_int_equal(line_item_init(&d, 0, true, 1, "prefulfillmentpending", qs1, qn1, 1), 0);
        assert_false(line_item_equal(&a, &d));
        line_item_done(&d);

        assert_int_equal(line_item_copy(&a, &d), 0);
        assert_true(line_item_equal(&a, &d));
        assert_true(d.has_order_line_item_id);
        assert_int_equal(d.order_line_item_id, 1);
        assert_ptr_not_equal(a.status, d.status);
        assert_ptr_not_equal(a.quantities, d.quantities);

        line_item_done(&a);
        line_item_done(&b);
        line_item_done(&c);
        line_item_done(&d);
        line_item_done(&d); /* idempotent */

        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new(), *copy = NULL;
        assert_int_equal(add(s, 1, "x", 2, qs1, qn1), 0);
        assert_int_equal(add(s, 2, "y", 0, NULL, NULL), 0);
        assert_non_null(copy = snapshot_dup(s));
        assert_int_equal(copy->n_items, 2);
        assert_true(copy->packed);
        assert_true(snapshot_equal(copy, s));
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(copy->items[i].number, s->items[i].number);
                assert_int_equal(copy->items[i].n_quantities, s->items[i].n_quantities);
                assert_true(line_item_equal(&copy->items[i], &s->items[i]));
                assert_ptr_not_equal(copy->items[i].status, s->items[i].status);
        }
        /* everything in the one allocation (valgrind and ASan see a single free) */
        const char *lo = (const char *) copy, *hi = (const char *) copy->items[1].status + strlen(copy->items[1].status);
        for (size_t i = 0; i < 2; i++) {
                assert_true((const char *) copy->items[i].status > lo && (const char *) copy->items[i].status <= hi);
                for (size_t k = 0; k < copy->items[i].n_quantities; k++)
                        assert_true(copy->items[i].quantities[k].status > lo && copy->items[i].quantities[k].status < hi);
        }
        _cleanup_free_ char *j1 = snapshot_to_json(s), *j2 = snapshot_to_json(copy);
        assert_string_equal(j1, j2);

        /* the mutable deep copy (the fuzz targets parse into it) is equal as well */
        _cleanup_(snapshot_freep) Snapshot *deep = NULL;
        assert_int_equal(snapshot_copy(s, &deep), 0);
        assert_false(deep->packed);
        assert_true(snapshot_equal(deep, s));

        _cleanup_(snapshot_freep) Snapshot *empty = snapshot_new(), *empty_copy = NULL;
        assert_non_null(empty_copy = snapshot_dup(empty));
        assert_int_equal(empty_copy->n_items, 0);
}

static void test_json_round_trip(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new(), *back = NULL;
        _cleanup_free_ char *json = NULL, *json2 = NULL;
        const char *qs[] = { "Fulfilled", "PrefulfillmentPending" };
        const int64_t qn[] = { 3, 2 };

        assert_int_equal(snapshot_add_item(s, 0, true, 0, "PrefulfillmentPending", qs, qn, 2), 0);
        assert_int_equal(snapshot_add_item(s, 1, false, 0, "fulfilled", NULL, NULL, 0), 0);
        assert_int_equal(snapshot_add_item(s, INT64_MAX, true, INT64_MAX - 1, "a\"b\\c/d", qs, qn, 1), 0);

        json = snapshot_to_json(s);
        assert_non_null(json);
        assert_string_equal(json,
                            "{\"items\":["
                            "{\"n\":0,\"olid\":0,\"status\":\"prefulfillmentpending\",\"q\":{\"fulfilled\":3,\"prefulfillmentpending\":2}},"
                            "{\"n\":1,\"status\":\"fulfilled\",\"q\":{}},"
                            "{\"n\":9223372036854775807,\"olid\":9223372036854775806,\"status\":\"a\\\"b\\\\c/d\",\"q\":{\"fulfilled\":3}}"
                            "]}");

        assert_int_equal(snapshot_from_json(json, &back), 0);
        assert_int_equal(back->n_items, s->n_items);
        for (size_t i = 0; i < s->n_items; i++) {
                assert_int_equal(back->items[i].number, s->items[i].number);
                assert_int_equal(back->items[i].has_order_line_item_id, s->items[i].has_order_line_item_id);
                assert_int_equal(back->items[i].order_line_item_id, s->items[i].order_line_item_id);
                assert_string_equal(back->items[i].status, s->items[i].status);
                assert_true(line_item_equal(&back->items[i], &s->items[i]));
        }
        json2 = snapshot_to_json(back);
        assert_string_equal(json, json2);

        _cleanup_(snapshot_freep) Snapshot *empty = snapshot_new(), *empty_back = NULL;
        _cleanup_free_ char *ej = snapshot_to_json(empty);
        assert_string_equal(ej, "{\"items\":[]}");
        assert_int_equal(snapshot_from_json(ej, &empty_back), 0);
        assert_int_equal(empty_back->n_items, 0);
}

static void test_json_load_lenient(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = NULL;

        /* unsorted, olid null, q absent, uppercase: normalized */
        assert_int_equal(snapshot_from_json("{\"items\":[{\"n\":2,\"status\":\"A\",\"olid\":null},"
                                            "{\"n\":1,\"status\":\"b\",\"q\":{\"X\":1,\"y\":0}}]}",
                                            &s),
                         0);
        assert_int_equal(s->n_items, 2);
        assert_int_equal(s->items[0].number, 1);
        assert_int_equal(s->items[0].n_quantities, 1);
        assert_string_equal(s->items[0].quantities[0].status, "x");
        assert_string_equal(s->items[1].status, "a");
        assert_false(s->items[1].has_order_line_item_id);
}

static void test_json_load_invalid(void **state) {
        static const char *const bad[] = {
                "",
                "null",
                "[]",
                "{}",
                "{\"items\":{}}",
                "{\"items\":[1]}",
                "{\"items\":[{}]}",
                "{\"items\":[{\"n\":\"0\",\"status\":\"a\"}]}",
                "{\"items\":[{\"n\":0.5,\"status\":\"a\"}]}",
                "{\"items\":[{\"n\":0}]}",
                "{\"items\":[{\"n\":0,\"status\":1}]}",
                "{\"items\":[{\"n\":0,\"status\":\"\"}]}",
                "{\"items\":[{\"n\":0,\"status\":\"a\",\"olid\":\"1\"}]}",
                "{\"items\":[{\"n\":0,\"status\":\"a\",\"q\":[]}]}",
                "{\"items\":[{\"n\":0,\"status\":\"a\",\"q\":{\"x\":-1}}]}",
                "{\"items\":[{\"n\":0,\"status\":\"a\",\"q\":{\"x\":\"1\"}}]}",
                "{\"items\":[{\"n\":0,\"status\":\"a\",\"q\":{\"\":1}}]}",
                "{\"items\":[{\"n\":0,\"status\":\"a\",\"q\":{\"x\":9223372036854775807,\"X\":1}}]}",
                "{\"items\":[{\"n\":0,\"status\":\"a\"},{\"n\":0,\"status\":\"b\"}]}",
                "{\"items\":[{\"n\":18446744073709551615,\"status\":\"a\"}]}",
                "{\"items\":[]} x",
                "{\"items\":[]",
                "{\"items\":[{\"n\":0,\"status\":\"a\\u0000b\"}]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Snapshot *s = NULL;
                int r = snapshot_from_json(bad[i], &s);
                if (r != -EBADMSG)
                        fail_msg("%s: expected -EBADMSG, got %d", bad[i], r);
                assert_null(s);
        }
        Snapshot *s = NULL;
        assert_int_equal(snapshot_from_json(NULL, &s), -EINVAL);
}

static void test_settled(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();

        assert_false(snapshot_is_settled(s, terminal)); /* empty is never settled */
        assert_false(snapshot_is_settled(NULL, terminal));
        assert_int_equal(add(s, 0, "Fulfilled", 0, NULL, NULL), 0);
        assert_true(snapshot_is_settled(s, terminal));
        assert_false(snapshot_is_settled(s, NULL));
        assert_int_equal(add(s, 1, "unfulfilled", 0, NULL, NULL), 0);
        assert_true(snapshot_is_settled(s, terminal));
        char *const upper[] = { "FULFILLED", "UnFulfilled", NULL };
        assert_true(snapshot_is_settled(s, upper));
        assert_int_equal(add(s, 2, "prefulfillmentpending", 0, NULL, NULL), 0);
        assert_false(snapshot_is_settled(s, terminal));
        char *const none[] = { NULL };
        assert_false(snapshot_is_settled(s, none));
}

static void test_quantities_format(void **state) {
        LineItem li = {};
        const char *qs[] = { "PrefulfillmentPending", "fulfilled", "gone" };
        const int64_t qn[] = { 2, 3, 0 };
        _cleanup_free_ char *a = NULL, *b = NULL;

        assert_int_equal(line_item_init(&li, 0, false, 0, "x", qs, qn, 3), 0);
        a = quantities_format(&li);
        assert_string_equal(a, "fulfilled=3 prefulfillmentpending=2");
        line_item_done(&li);

        assert_int_equal(line_item_init(&li, 0, false, 0, "x", NULL, NULL, 0), 0);
        b = quantities_format(&li);
        assert_string_equal(b, "");
        line_item_done(&li);

        /* SPEC §6: space, '=', '\' and control characters as \xHH; other bytes (UTF-8) as they are */
        const char *odd[] = { "Pending Activation", "a=b\\c", "tab\there", "caf\xc3\xa9" };
        const int64_t on[] = { 1, 2, 3, 4 };
        _cleanup_free_ char *c = NULL;
        assert_int_equal(line_item_init(&li, 0, false, 0, "x", odd, on, 4), 0);
        c = quantities_format(&li);
        assert_string_equal(c, "a\\x3db\\x5cc=2 caf\xc3\xa9=4 pending\\x20activation=1 tab\\x09here=3");
        line_item_done(&li);
}

static void test_add_many_reverse(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        for (int64_t i = 2000; i > 0; i--)
                assert_int_equal(add(s, i * 2, "a", 0, NULL, NULL), 0);
        for (int64_t i = 0; i < 2000; i++)
                assert_int_equal(add(s, i * 2 + 1, "a", 0, NULL, NULL), 0);
        assert_int_equal(s->n_items, 4000);
        for (size_t i = 0; i < s->n_items; i++)
                assert_int_equal(s->items[i].number, (int64_t) i + 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_add_sum_sort),
                cmocka_unit_test(test_add_errors),
                cmocka_unit_test(test_status_is_valid),
                cmocka_unit_test(test_merge_items),
                cmocka_unit_test(test_equal_copy),
                cmocka_unit_test(test_json_round_trip),
                cmocka_unit_test(test_json_load_lenient),
                cmocka_unit_test(test_json_load_invalid),
                cmocka_unit_test(test_settled),
                cmocka_unit_test(test_quantities_format),
                cmocka_unit_test(test_add_many_reverse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
