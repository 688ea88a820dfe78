/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "snapshot-desc.h"

#include "diff.h"

static char *const terminal[] = { "fulfilled", "unfulfilled", NULL };

#define T1 (UINT64_C(1795470730) * USEC_PER_SEC)
#define T2 (UINT64_C(1795470856) * USEC_PER_SEC)

typedef struct Diff {
        Event **events;
        size_t n;
} Diff;

static void diff_done(Diff *d) {
        events_free(d->events, d->n);
}

static Diff diff(const Snapshot *old, const Snapshot *new) {
        Diff d = {};
        assert_int_equal(diff_snapshots(old, new, terminal, "C", "O", T2, T1, &d.events, &d.n), 0);
        for (size_t i = 0; i < d.n; i++) {
                assert_string_equal(d.events[i]->customer_id, "C");
                assert_string_equal(d.events[i]->order_id, "O");
                assert_int_equal(d.events[i]->time_usec, T2);
                assert_int_equal(d.events[i]->previous_poll_usec, T1);
                assert_int_equal(d.events[i]->id[0], 0); /* no ids assigned */
        }
        return d;
}

static Snapshot *snap(const char *desc) {
        return snapshot_from_desc(desc, true);
}

static void assert_event(const Event *e, EventType type, int64_t number, const char *old_status, const char *new_status) {
        assert_int_equal(e->type, type);
        if (old_status) {
                assert_non_null(e->old);
                assert_int_equal(e->old->number, number);
                assert_string_equal(e->old->status, old_status);
        } else
                assert_null(e->old);
        if (new_status) {
                assert_non_null(e->new);
                assert_int_equal(e->new->number, number);
                assert_string_equal(e->new->status, new_status);
        } else
                assert_null(e->new);
        assert_null(e->line_items);
}

static void test_first_poll_complete(void **state) {
        Snapshot *s = snap("1:fulfilled:fulfilled=2 0:Fulfilled");
        _cleanup_(diff_done) Diff d = diff(NULL, s);

        /* events carry deep copies: the snapshot can go */
        snapshot_free(s);

        assert_int_equal(d.n, 3);
        assert_event(d.events[0], EVENT_LINEITEM_ADDED, 0, NULL, "fulfilled");
        assert_event(d.events[1], EVENT_LINEITEM_ADDED, 1, NULL, "fulfilled");
        assert_int_equal(d.events[1]->new->n_quantities, 1);
        assert_int_equal(d.events[1]->new->quantities[0].quantity, 2);
        assert_int_equal(d.events[2]->type, EVENT_ORDER_COMPLETED);
        assert_null(d.events[2]->old);
        assert_null(d.events[2]->new);
        assert_non_null(d.events[2]->line_items);
        assert_int_equal(d.events[2]->line_items->n_items, 2);
        assert_string_equal(d.events[2]->line_items->items[1].quantities[0].status, "fulfilled");

        _cleanup_free_ char *summary = event_summary(d.events[2]);
        assert_string_equal(summary, "Order O (customer C) completed: 2 line items fulfilled");
}

static void test_first_poll_pending(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snap("0:prefulfillmentpending:prefulfillmentpending=5 1:fulfilled");
        _cleanup_(diff_done) Diff d = diff(NULL, s);

        assert_int_equal(d.n, 2);
        assert_event(d.events[0], EVENT_LINEITEM_ADDED, 0, NULL, "prefulfillmentpending");
        assert_event(d.events[1], EVENT_LINEITEM_ADDED, 1, NULL, "fulfilled");
}

static void test_first_poll_empty(void **state) {
        _cleanup_(snapshot_freep) Snapshot *empty = snapshot_new();
        _cleanup_(diff_done) Diff d = diff(NULL, empty);
        assert_int_equal(d.n, 0);
        assert_null(d.events);
}

static void test_pending_partial_fulfilled(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s1 = snap("0:prefulfillmentpending:prefulfillmentpending=5");
        _cleanup_(snapshot_freep) Snapshot *s2 = snap("0:prefulfillmentpending:fulfilled=3,prefulfillmentpending=2");
        _cleanup_(snapshot_freep) Snapshot *s3 = snap("0:fulfilled:fulfilled=5");

        _cleanup_(diff_done) Diff d1 = diff(s1, s2);
        assert_int_equal(d1.n, 1);
        assert_event(d1.events[0], EVENT_LINEITEM_CHANGED, 0, "prefulfillmentpending", "prefulfillmentpending");
        assert_int_equal(d1.events[0]->old->n_quantities, 1);
        assert_int_equal(d1.events[0]->new->n_quantities, 2);
        _cleanup_free_ char *sum1 = event_summary(d1.events[0]);
        assert_string_equal(sum1, "Order O (customer C) line item 0: prefulfillmentpending → prefulfillmentpending "
                                  "(fulfilled 3, prefulfillmentpending 2)");

        _cleanup_(diff_done) Diff d2 = diff(s2, s3);
        assert_int_equal(d2.n, 2);
        assert_event(d2.events[0], EVENT_LINEITEM_CHANGED, 0, "prefulfillmentpending", "fulfilled");
        assert_int_equal(d2.events[1]->type, EVENT_ORDER_COMPLETED);

        strcpy(d2.events[0]->id, "e1");
        _cleanup_free_ char *json = event_to_json(d2.events[0], "h");
        assert_string_equal(json, "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"provwatch://h\","
                                  "\"type\":\"provwatch.lineitem.changed\",\"subject\":\"customers/C/orders/O/lineitems/0\","
                                  "\"time\":\"2026-11-23T21:54:16Z\",\"datacontenttype\":\"application/json\","
                                  "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O\",\"line_item_number\":0,"
                                  "\"order_line_item_id\":0,\"offer_id\":null,\"friendly_name\":null,"
                                  "\"old\":{\"status\":\"prefulfillmentpending\",\"quantities\":{\"fulfilled\":3,\"prefulfillmentpending\":2}},"
                                  "\"new\":{\"status\":\"fulfilled\",\"quantities\":{\"fulfilled\":5}},"
                                  "\"previous_poll\":\"2026-11-23T21:52:10Z\"}}");
}

static void test_removed_and_order(void **state) {
        _cleanup_(snapshot_freep) Snapshot *old = snap("0:a 1:b 3:c 5:e");
        _cleanup_(snapshot_freep) Snapshot *new = snap("0:A 2:x 3:changed 4:y 5:e:e=1");
        _cleanup_(diff_done) Diff d = diff(old, new);

        /* ascending number, at most one event per number: 0 unchanged (case), 1 removed, 2 added,
         * 3 changed, 4 added, 5 changed (quantities) */
        assert_int_equal(d.n, 5);
        assert_event(d.events[0], EVENT_LINEITEM_REMOVED, 1, "b", NULL);
        assert_event(d.events[1], EVENT_LINEITEM_ADDED, 2, NULL, "x");
        assert_event(d.events[2], EVENT_LINEITEM_CHANGED, 3, "c", "changed");
        assert_event(d.events[3], EVENT_LINEITEM_ADDED, 4, NULL, "y");
        assert_event(d.events[4], EVENT_LINEITEM_CHANGED, 5, "e", "e");

        _cleanup_(snapshot_freep) Snapshot *empty = snapshot_new();
        _cleanup_(diff_done) Diff all_gone = diff(old, empty);
        assert_int_equal(all_gone.n, 4);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(all_gone.events[i]->type, EVENT_LINEITEM_REMOVED);
}

static void test_no_change(void **state) {
        _cleanup_(snapshot_freep) Snapshot *a = snap("0:fulfilled:fulfilled=3 7:prefulfillmentpending:x=1,y=2");
        _cleanup_(snapshot_freep) Snapshot *b = snap("0:fulfilled:fulfilled=3 7:prefulfillmentpending:y=2,x=1");
        _cleanup_(diff_done) Diff d = diff(a, b);
        assert_int_equal(d.n, 0);
        assert_null(d.events);

        /* settled and still settled: nothing either */
        _cleanup_(snapshot_freep) Snapshot *c = snap("0:fulfilled");
        _cleanup_(diff_done) Diff d2 = diff(c, c);
        assert_int_equal(d2.n, 0);
}

static void test_case_insensitive(void **state) {
        _cleanup_(snapshot_freep) Snapshot *a = snap("0:PrefulfillmentPending:Fulfilled=3,PREFULFILLMENTPENDING=2");
        _cleanup_(snapshot_freep) Snapshot *b = snap("0:prefulfillmentpending:fulfilled=3,prefulfillmentpending=1,PrefulfillmentPending=1");
        _cleanup_(diff_done) Diff d = diff(a, b);
        assert_int_equal(d.n, 0);

        /* hand-built items with mixed case compare the same way */
        LineItem x = { .number = 0, .status = (char *) "Fulfilled" }, y = { .number = 0, .status = (char *) "fulfilled" };
        Snapshot sx = { .items = &x, .n_items = 1 }, sy = { .items = &y, .n_items = 1 };
        _cleanup_(diff_done) Diff d2 = diff(&sx, &sy);
        assert_int_equal(d2.n, 0);
}

static void test_completed_only_on_entering(void **state) {
        _cleanup_(snapshot_freep) Snapshot *settled1 = snap("0:fulfilled:fulfilled=2");
        _cleanup_(snapshot_freep) Snapshot *settled2 = snap("0:fulfilled:fulfilled=3");
        _cleanup_(snapshot_freep) Snapshot *pending = snap("0:prefulfillmentpending");
        _cleanup_(snapshot_freep) Snapshot *mixed = snap("0:fulfilled 1:unfulfilled");
        _cleanup_(snapshot_freep) Snapshot *empty = snapshot_new();

        /* settled → settled with a change: no completed */
        _cleanup_(diff_done) Diff d1 = diff(settled1, settled2);
        assert_int_equal(d1.n, 1);
        assert_int_equal(d1.events[0]->type, EVENT_LINEITEM_CHANGED);

        /* settled → pending → settled: completed again on re-entering */
        _cleanup_(diff_done) Diff d2 = diff(settled2, pending);
        assert_int_equal(d2.n, 1);
        _cleanup_(diff_done) Diff d3 = diff(pending, mixed);
        assert_int_equal(d3.n, 3);
        assert_event(d3.events[0], EVENT_LINEITEM_CHANGED, 0, "prefulfillmentpending", "fulfilled");
        assert_event(d3.events[1], EVENT_LINEITEM_ADDED, 1, NULL, "unfulfilled");
        assert_int_equal(d3.events[2]->type, EVENT_ORDER_COMPLETED);
        assert_int_equal(d3.events[2]->line_items->n_items, 2);

        /* an empty snapshot is never settled, so going from empty to settled completes */
        _cleanup_(diff_done) Diff d4 = diff(empty, settled1);
        assert_int_equal(d4.n, 2);
        assert_int_equal(d4.events[1]->type, EVENT_ORDER_COMPLETED);
        _cleanup_(diff_done) Diff d5 = diff(settled1, empty);
        assert_int_equal(d5.n, 1);
        assert_int_equal(d5.events[0]->type, EVENT_LINEITEM_REMOVED);

        /* no terminal statuses configured: never completed */
        Diff d6 = {};
        assert_int_equal(diff_snapshots(NULL, settled1, NULL, "C", "O", T2, 0, &d6.events, &d6.n), 0);
        assert_int_equal(d6.n, 1);
        diff_done(&d6);
}

static void test_olid_absent(void **state) {
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        Diff d = {};

        assert_int_equal(snapshot_add_item(s, 4, false, 0, "prefulfillmentpending", NULL, NULL, 0), 0);
        assert_int_equal(diff_snapshots(NULL, s, terminal, "C", "O", T2, 0, &d.events, &d.n), 0);
        assert_int_equal(d.n, 1);
        assert_false(d.events[0]->new->has_order_line_item_id);
        assert_int_equal(event_assign_id(d.events[0]), 0);
        _cleanup_free_ char *json = event_to_json(d.events[0], "h");
        assert_non_null(strstr(json, "\"data\":{\"customer_id\":\"C\",\"customer_name\":null,\"order_id\":\"O\",\"line_item_number\":4,"
                                     "\"order_line_item_id\":null,\"offer_id\":null,\"friendly_name\":null,\"old\":null,"
                                     "\"new\":{\"status\":\"prefulfillmentpending\",\"quantities\":{}},"
                                     "\"previous_poll\":null}}"));
        diff_done(&d);
}

static void test_invalid(void **state) {
        Event **events = NULL;
        size_t n = 0;
        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();

        assert_int_equal(diff_snapshots(s, NULL, terminal, "C", "O", 0, 0, &events, &n), -EINVAL);
        assert_int_equal(diff_snapshots(s, s, terminal, NULL, "O", 0, 0, &events, &n), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_first_poll_complete),
                cmocka_unit_test(test_first_poll_pending),
                cmocka_unit_test(test_first_poll_empty),
                cmocka_unit_test(test_pending_partial_fulfilled),
                cmocka_unit_test(test_removed_and_order),
                cmocka_unit_test(test_no_change),
                cmocka_unit_test(test_case_insensitive),
                cmocka_unit_test(test_completed_only_on_entering),
                cmocka_unit_test(test_olid_absent),
                cmocka_unit_test(test_invalid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
