/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "scheduler.h"
#include "util.h"

#define SEC USEC_PER_SEC

/* Drive the budget as the dispatcher does: send at every slot, as fast as it allows. */
static size_t send_for(Budget *b, uint64_t start, uint64_t duration, uint64_t *sends, size_t max) {
        size_t n = 0;
        uint64_t now = start;
        while (n < max) {
                uint64_t slot = budget_next_slot(b, now);
                if (slot >= start + duration)
                        break;
                now = slot + 700; /* timers fire a little late */
                budget_record(b, now);
                sends[n++] = now;
        }
        return n;
}

static size_t max_in_window(const uint64_t *t, size_t n, uint64_t window) {
        size_t best = 0, j = 0;
        for (size_t i = 0; i < n; i++) {
                while (t[i] - t[j] >= window)
                        j++;
                if (i - j + 1 > best)
                        best = i - j + 1;
        }
        return best;
}

static void test_budget_paces_evenly_and_never_exceeds(void **state) {
        Budget b;
        static uint64_t sends[4000];
        assert_int_equal(budget_init(&b, 300), 0);
        size_t n = send_for(&b, 1000 * SEC, 300 * SEC, sends, ELEMENTSOF(sends));
        /* 5 minutes at 300/min: within 2 % of 1500 and never above */
        assert_true(n <= 1500);
        assert_true(n >= 1470);
        assert_true(max_in_window(sends, n, 60 * SEC) <= 300);
        /* evenly: gaps of 200 ms */
        for (size_t i = 1; i < n; i++)
                assert_true(sends[i] - sends[i - 1] >= 190 * USEC_PER_MSEC);
        budget_done(&b);
}

static void test_budget_unlimited(void **state) {
        Budget b;
        assert_int_equal(budget_init(&b, 0), 0);
        for (int i = 0; i < 10000; i++) {
                assert_int_equal(budget_next_slot(&b, 5 * SEC), 5 * SEC);
                budget_record(&b, 5 * SEC);
        }
        budget_done(&b);
}

static void test_budget_429_pauses_and_slows(void **state) {
        Budget b;
        assert_int_equal(budget_init(&b, 600), 0);
        uint64_t now = 100 * SEC;
        budget_record(&b, now);
        budget_throttle(&b, now, 30 * SEC);
        assert_true(budget_next_slot(&b, now) >= now + 30 * SEC);
        /* after the pause the pace is halved: 200 ms instead of 100 ms */
        uint64_t t = budget_next_slot(&b, now + 30 * SEC);
        budget_record(&b, t);
        uint64_t t2 = budget_next_slot(&b, t);
        assert_true(t2 - t >= 190 * USEC_PER_MSEC);
        /* and recovers over the following minutes */
        uint64_t later = now + 30 * SEC + 10 * 60 * SEC;
        budget_record(&b, later);
        assert_true(budget_next_slot(&b, later) - later <= 101 * USEC_PER_MSEC);

        /* without Retry-After: exponential over consecutive 429s */
        assert_true(budget_throttle(&b, later, 0));
        uint64_t p1 = b.paused_until - later;
        uint64_t after = b.paused_until;
        assert_true(budget_throttle(&b, after, 0));
        uint64_t p2 = b.paused_until - after;
        assert_true(p1 >= 5 * SEC);
        assert_true(p2 >= 2 * p1);
        budget_done(&b);
}

static void test_budget_429_during_pause(void **state) {
        Budget b;
        assert_int_equal(budget_init(&b, 600), 0);
        uint64_t now = 100 * SEC;
        assert_true(budget_throttle(&b, now, 5 * SEC));
        double factor = b.factor;
        /* answers to requests sent before the pause: no new pause, no second slow-down ... */
        assert_false(budget_throttle(&b, now + SEC, 0));
        assert_false(budget_throttle(&b, now + SEC, 2 * SEC));
        assert_true(b.paused_until == now + 5 * SEC);
        assert_true(b.factor == factor);
        /* ... but a longer Retry-After is honoured */
        assert_false(budget_throttle(&b, now + 2 * SEC, 30 * SEC));
        assert_true(b.paused_until == now + 32 * SEC);
        assert_true(budget_next_slot(&b, now + 10 * SEC) >= now + 32 * SEC);
        assert_true(b.factor == factor);
        budget_done(&b);
}

static void test_budget_rate_change_keeps_history(void **state) {
        Budget b;
        static uint64_t sends[2000];
        assert_int_equal(budget_init(&b, 120), 0);
        size_t n = send_for(&b, 0, 60 * SEC, sends, ELEMENTSOF(sends));
        assert_true(n <= 120);
        /* lowering the rate right after a full minute must not allow a burst */
        assert_int_equal(budget_set_rpm(&b, 60), 0);
        assert_true(budget_window_count(&b, 60 * SEC) <= 60);
        uint64_t slot = budget_next_slot(&b, 60 * SEC);
        assert_true(slot >= 60 * SEC + 900 * USEC_PER_MSEC);
        budget_done(&b);
}

typedef struct Item {
        HeapItem hi;
        int id;
} Item;

static void test_heap_order_update_remove(void **state) {
        Heap h = {};
        Item items[200];
        for (int i = 0; i < 200; i++) {
                items[i] = (Item) { .hi = { .due = (uint64_t) ((i * 7919) % 200), .heap_pos = SIZE_MAX }, .id = i };
                assert_int_equal(heap_push(&h, &items[i].hi), 0);
        }
        /* move one to the front, remove another */
        items[150].hi.due = 0;
        heap_update(&h, &items[150].hi);
        heap_remove(&h, &items[3].hi);
        assert_false(heap_item_queued(&items[3].hi));
        heap_remove(&h, &items[3].hi); /* twice is harmless */

        uint64_t last = 0;
        size_t n = 0;
        HeapItem *it;
        while ((it = heap_pop(&h))) {
                assert_true(it->due >= last);
                last = it->due;
                assert_false(heap_item_queued(it));
                n++;
        }
        assert_int_equal(n, 199);
        heap_done(&h);
}

static void test_backoff(void **state) {
        assert_int_equal(backoff_usec(0, SEC, 60 * SEC, 0.5), 0);
        assert_int_equal(backoff_usec(1, 10 * SEC, 900 * SEC, 0.5), 10 * SEC);
        assert_int_equal(backoff_usec(3, 10 * SEC, 900 * SEC, 0.5), 40 * SEC);
        assert_int_equal(backoff_usec(30, 10 * SEC, 900 * SEC, 0.5), 900 * SEC);
        /* ±20 % jitter */
        assert_true(backoff_usec(2, 10 * SEC, 900 * SEC, 0.0) == 16 * SEC);
        assert_true(backoff_usec(2, 10 * SEC, 900 * SEC, 0.999999) < 24 * SEC);
}

static void test_revisit_interval(void **state) {
        RevisitPlan p = { .interval_usec = 30 * SEC, .floor_usec = 10 * SEC, .rpm = 450 };

        /* 220 in flight and 9,800 settled at 6 h (27.2/min): the budget has no room to spare */
        assert_int_equal(revisit_interval(&p, 220, 9800.0 / 360), 30 * SEC);
        /* 100 in flight: 427.5 - 27.2 = 400.3/min for them, each every 15 s */
        uint64_t iv = revisit_interval(&p, 100, 9800.0 / 360);
        assert_true(iv > 14900 * USEC_PER_MSEC && iv < 15100 * USEC_PER_MSEC);
        /* the budget for them all, at every interval: never more than the planned share */
        assert_true(100.0 * 60 * SEC / (double) iv + 9800.0 / 360 <= 450 * REVISIT_BUDGET_SHARE + 0.001);
        /* a few: the floor */
        assert_int_equal(revisit_interval(&p, 5, 9800.0 / 360), 10 * SEC);
        /* nothing left after the settled ones, or more wanted than there is: the interval */
        assert_int_equal(revisit_interval(&p, 5, 500), 30 * SEC);
        assert_int_equal(revisit_interval(&p, 100000, 0), 30 * SEC);
        assert_int_equal(revisit_interval(&p, 0, 0), 30 * SEC);
        /* no budget: the floor; no floor (or one at or above the interval): the interval */
        p.rpm = 0;
        assert_int_equal(revisit_interval(&p, 100000, 0), 10 * SEC);
        p.rpm = 450;
        p.floor_usec = 0;
        assert_int_equal(revisit_interval(&p, 5, 0), 30 * SEC);
        p.floor_usec = 30 * SEC;
        assert_int_equal(revisit_interval(&p, 5, 0), 30 * SEC);
        p.floor_usec = 60 * SEC;
        assert_int_equal(revisit_interval(&p, 5, 0), 30 * SEC);
}

static void test_revisit_due(void **state) {
        const uint64_t t0 = 1000 * SEC;

        /* committed on time, or late by the wait for a slot and the round trip: one interval after the
         * due time */
        assert_int_equal(revisit_due(t0, t0, 30 * SEC), t0 + 30 * SEC);
        assert_int_equal(revisit_due(t0, t0 + 2 * SEC, 30 * SEC), t0 + 30 * SEC);
        assert_int_equal(revisit_due(t0, t0 + 15 * SEC, 30 * SEC), t0 + 30 * SEC);
        /* long overdue: a new rhythm from its commit */
        assert_int_equal(revisit_due(t0, t0 + 600 * SEC, 30 * SEC), t0 + 630 * SEC);
        assert_int_equal(revisit_due(t0, t0 + 20 * SEC, 30 * SEC), t0 + 50 * SEC);
        /* never again */
        assert_int_equal(revisit_due(t0, t0, USEC_INFINITY), USEC_INFINITY);

        /* a revisit every 30 s although each poll waits up to 3 s for its slot and its answer */
        uint64_t due = t0;
        for (unsigned i = 0; i < 100; i++)
                due = revisit_due(due, due + (i * 7919 % 3000) * USEC_PER_MSEC, 30 * SEC);
        assert_int_equal(due, t0 + 100 * 30 * SEC);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_budget_paces_evenly_and_never_exceeds),
                cmocka_unit_test(test_budget_unlimited),
                cmocka_unit_test(test_budget_429_pauses_and_slows),
                cmocka_unit_test(test_budget_429_during_pause),
                cmocka_unit_test(test_budget_rate_change_keeps_history),
                cmocka_unit_test(test_heap_order_update_remove),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_revisit_interval),
                cmocka_unit_test(test_revisit_due),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
