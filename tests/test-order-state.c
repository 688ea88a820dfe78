/* SPDX-License-Identifier: MIT */
/* The order state machine, table-driven: each case is a sequence of polls applied to one order, the
 * way the daemon applies them (the committed row and snapshot of one step are the input of the next),
 * with the events and the row flags every step must produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "snapshot-desc.h"

#include "order-state.h"

static char *const terminal[] = { "fulfilled", "unfulfilled", NULL };
static const OrderPolicy policy = {
        .terminal_statuses = terminal,
        .not_found_grace_usec = 600 * USEC_PER_SEC,
        .failure_threshold = 3,
};

#define T0 (UINT64_C(1795470000) * USEC_PER_SEC)

typedef enum Kind { OK, SAME, FAILED, NOT_FOUND } Kind;

typedef struct Step {
        Kind kind;
        unsigned at_sec;    /* after T0 */
        const char *snap;   /* OK: "number:status[:q=n,q=n] ..." */
        const char *events; /* expected types, space-separated, in order ("" = none) */
        const char *flags;  /* expected row: any of "settled fetch_failed not_found" */
        bool snapshot_written;
} Step;

typedef struct Case {
        const char *name;
        Step steps[8];
        unsigned stall_after_sec; /* 0 = off */
} Case;

static Snapshot *snap(const char *desc) {
        return snapshot_from_desc(desc, false);
}

static const char *short_type(EventType t) {
        return event_type_to_string(t) + strlen("provwatch.");
}

static void run_case(const Case *c) {
        OrderRow row = { .customer_id = strdup("C"), .order_id = strdup("O") };
        OrderPolicy p = policy;
        p.stall_after_usec = c->stall_after_sec * USEC_PER_SEC;
        Snapshot *stored = NULL;
        uint64_t last_success = 0;

        for (size_t i = 0; i < ELEMENTSOF(c->steps) && c->steps[i].events; i++) {
                const Step *s = &c->steps[i];
                _cleanup_(snapshot_freep) Snapshot *answer = s->kind == OK ? snap(s->snap) : NULL;
                PollReport report = {
                        .outcome = s->kind == OK || s->kind == SAME ? POLL_OUTCOME_OK
                                   : s->kind == FAILED              ? POLL_OUTCOME_FAILED
                                                                    : POLL_OUTCOME_NOT_FOUND,
                        .snapshot = answer,
                        .http_status = s->kind == FAILED ? 503 : s->kind == NOT_FOUND ? 404 : 200,
                        .reason = s->kind == FAILED ? "HTTP 503" : NULL,
                        .code = s->kind == NOT_FOUND ? "20000" : NULL,
                        .description = s->kind == NOT_FOUND ? "Order ID not found" : NULL,
                        .correlation_id = "corr", .request_id = "req", .ms_cv = s->kind == FAILED ? "cv.1" : NULL,
                        .time_usec = T0 + s->at_sec * USEC_PER_SEC,
                };
                OrderUpdate u = {};
                print_message("%s, step %zu\n", c->name, i);
                /* the daemon passes the stored snapshot when the answer needs it or a stall is due */
                bool need_old = answer || (s->kind == SAME && order_stall_due(&row, &p, report.time_usec));
                assert_int_equal(order_state_apply(&row, need_old ? stored : NULL, &report, &p, &u), 0);

                char got[256] = "";
                for (size_t e = 0; e < u.n_events; e++) {
                        const Event *ev = u.events[e];
                        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", e ? " " : "",
                                 short_type(ev->type));
                        assert_string_equal(ev->customer_id, "C");
                        assert_string_equal(ev->order_id, "O");
                        assert_int_equal(ev->time_usec, report.time_usec);
                        assert_int_equal(ev->previous_poll_usec, last_success);
                        assert_int_equal(ev->id[0], 0);
                        if (ev->type == EVENT_ORDER_FETCH_FAILED) {
                                assert_int_equal(ev->http_status, 503);
                                assert_string_equal(ev->reason, "HTTP 503");
                                assert_string_equal(ev->correlation_id, "corr");
                                assert_string_equal(ev->request_id, "req");
                                assert_string_equal(ev->ms_cv, "cv.1");
                        }
                        if (ev->type == EVENT_ORDER_STALLED) {
                                assert_int_equal(ev->since_usec, row.changed_usec);
                                assert_non_null(ev->line_items);
                                for (size_t k = 0; k < ev->line_items->n_items; k++)
                                        assert_string_not_equal(ev->line_items->items[k].status, "fulfilled");
                        }
                        if (ev->type == EVENT_ORDER_NOT_FOUND) {
                                assert_string_equal(ev->code, "20000");
                                assert_string_equal(ev->description, "Order ID not found");
                        }
                }
                assert_string_equal(got, s->events);

                char flags[64] = "";
                snprintf(flags, sizeof flags, "%s%s%s%s", u.row.settled ? "settled " : "",
                         u.row.fetch_failed ? "fetch_failed " : "", u.row.not_found ? "not_found " : "",
                         u.row.stalled ? "stalled " : "");
                if (*flags)
                        flags[strlen(flags) - 1] = 0;
                assert_string_equal(flags, s->flags);
                assert_int_equal(u.row.snapshot_json != NULL, s->snapshot_written);
                assert_int_equal(u.row.last_poll_usec, report.time_usec);
                assert_int_equal(u.row.last_http_status, report.http_status);
                assert_int_equal(u.row.last_error == NULL, s->kind == OK || s->kind == SAME);
                if (s->kind == OK || s->kind == SAME) {
                        assert_int_equal(u.row.consecutive_failures, 0);
                        assert_int_equal(u.row.not_found_since_usec, 0);
                        assert_int_equal(u.row.last_success_usec, report.time_usec);
                }
                if (s->kind == FAILED)
                        assert_true(u.row.consecutive_failures > 0);
                if (s->kind == NOT_FOUND)
                        assert_true(u.row.not_found_since_usec > 0);

                /* what the daemon commits is the next step's input */
                if (u.row.snapshot_json) {
                        snapshot_free(stored);
                        assert_int_equal(snapshot_from_json(u.row.snapshot_json, &stored), 0);
                        u.row.snapshot_json = mfree(u.row.snapshot_json);
                }
                if (s->kind == OK || s->kind == SAME)
                        last_success = report.time_usec;
                order_row_done(&row);
                row = u.row;
                u.row = (OrderRow) {};
                order_update_done(&u);
        }
        order_row_done(&row);
        snapshot_free(stored);
}

static const Case cases[] = {
        { "first poll of a pending order",
          { { OK, 0, "0:prefulfillmentpending:prefulfillmentpending=5 1:fulfilled", "lineitem.added lineitem.added", "", true },
            { SAME, 60, NULL, "", "", false },
            { OK, 120, "0:prefulfillmentpending:prefulfillmentpending=5 1:fulfilled", "", "", false } } },
        { "first poll of an order already complete",
          { { OK, 0, "0:fulfilled:fulfilled=2", "lineitem.added order.completed", "settled", true },
            { OK, 60, "0:fulfilled:fulfilled=2", "", "settled", false },
            { SAME, 120, NULL, "", "settled", false } } },
        { "completed on entry only; settled and unsettled again",
          { { OK, 0, "0:prefulfillmentpending", "lineitem.added", "", true },
            { OK, 60, "0:fulfilled", "lineitem.changed order.completed", "settled", true },
            { OK, 120, "0:unfulfilled", "lineitem.changed", "settled", true },
            { OK, 180, "0:unfulfilled 1:prefulfillmentpending", "lineitem.added", "", true },
            { OK, 240, "0:unfulfilled 1:fulfilled", "lineitem.changed order.completed", "settled", true } } },
        { "quantities alone are a change; removed line items",
          { { OK, 0, "0:prefulfillmentpending:prefulfillmentpending=5 1:prefulfillmentpending", "lineitem.added lineitem.added", "", true },
            { OK, 60, "0:prefulfillmentpending:fulfilled=3,prefulfillmentpending=2 1:prefulfillmentpending",
              "lineitem.changed", "", true },
            { OK, 120, "1:prefulfillmentpending", "lineitem.removed", "", true },
            { OK, 180, "1:fulfilled", "lineitem.changed order.completed", "settled", true } } },
        { "not found within the grace, then visible",
          { { NOT_FOUND, 0, NULL, "", "", false },
            { NOT_FOUND, 300, NULL, "", "", false },
            { OK, 400, "0:prefulfillmentpending", "lineitem.added", "", true } } },
        { "not found past the grace: once, then recovered",
          { { NOT_FOUND, 0, NULL, "", "", false },
            { NOT_FOUND, 600, NULL, "order.not_found", "not_found", false },
            { NOT_FOUND, 900, NULL, "", "not_found", false },
            { OK, 1000, "0:fulfilled", "order.recovered lineitem.added order.completed", "settled", true },
            { NOT_FOUND, 1100, NULL, "", "settled", false },
            { NOT_FOUND, 1600, NULL, "", "settled", false },
            { NOT_FOUND, 1700, NULL, "order.not_found", "settled not_found", false } } },
        { "failure threshold: once, then recovered",
          { { OK, 0, "0:prefulfillmentpending", "lineitem.added", "", true },
            { FAILED, 60, NULL, "", "", false },
            { FAILED, 70, NULL, "", "", false },
            { FAILED, 90, NULL, "order.fetch_failed", "fetch_failed", false },
            { FAILED, 130, NULL, "", "fetch_failed", false },
            { SAME, 200, NULL, "order.recovered", "", false },
            { FAILED, 260, NULL, "", "", false } } },
        { "recovered with a change in the same poll",
          { { OK, 0, "0:prefulfillmentpending", "lineitem.added", "", true },
            { FAILED, 60, NULL, "", "", false },
            { FAILED, 70, NULL, "", "", false },
            { FAILED, 90, NULL, "order.fetch_failed", "fetch_failed", false },
            { OK, 200, "0:fulfilled", "order.recovered lineitem.changed order.completed", "settled", true } } },
        { "stalled: once, counted from the first good poll, re-armed by a change",
          { { OK, 0, "0:prefulfillmentpending 1:fulfilled", "lineitem.added lineitem.added", "", true },
            { SAME, 500, NULL, "", "", false },
            { SAME, 1000, NULL, "order.stalled", "stalled", false },
            { OK, 1500, "0:prefulfillmentpending 1:fulfilled", "", "stalled", false },
            { OK, 1600, "0:prefulfillmentpending:prefulfillmentpending=1 1:fulfilled", "lineitem.changed", "", true },
            { SAME, 2599, NULL, "", "", false },
            { OK, 2600, "0:prefulfillmentpending:prefulfillmentpending=1 1:fulfilled", "order.stalled", "stalled", false },
            { OK, 2700, "0:fulfilled 1:fulfilled", "lineitem.changed order.completed", "settled", true } },
          1000 },
        { "never for a completed order; failures do not restart the clock",
          { { OK, 0, "0:fulfilled", "lineitem.added order.completed", "settled", true },
            { SAME, 5000, NULL, "", "settled", false },
            { OK, 6000, "0:fulfilled 1:prefulfillmentpending", "lineitem.added", "", true },
            { FAILED, 6500, NULL, "", "", false },
            { SAME, 7000, NULL, "order.stalled", "stalled", false } },
          1000 },
        { "a failure run is not cut short by a 404, nor a 404 run by a failure",
          { { FAILED, 0, NULL, "", "", false },
            { FAILED, 10, NULL, "", "", false },
            { NOT_FOUND, 20, NULL, "", "", false },
            { FAILED, 30, NULL, "order.fetch_failed", "fetch_failed", false } } },
};

static void test_cases(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_case(&cases[i]);
}

static void test_names_on_every_event(void **state) {
        _cleanup_(order_names_freep) OrderNames *names = order_names_new();
        names->customer_name = strdup("Fabrikam Ltd");
        assert_int_equal(order_names_set_item(names, 0, "O:0", "Microsoft 365 E3", 5), 0);
        OrderRow row = { .customer_id = (char *) "C", .order_id = (char *) "O", .names = names, .fetch_failed = true };
        _cleanup_(snapshot_freep) Snapshot *s = snap("0:fulfilled");
        OrderUpdate u = {};
        assert_int_equal(order_state_apply(&row, NULL, &(PollReport) { .outcome = POLL_OUTCOME_OK, .snapshot = s, .time_usec = T0 },
                                           &policy, &u),
                         0);
        assert_int_equal(u.n_events, 3); /* recovered, added, completed */
        for (size_t i = 0; i < u.n_events; i++) {
                assert_non_null(u.events[i]->names);
                assert_string_equal(u.events[i]->names->customer_name, "Fabrikam Ltd");
        }
        assert_ptr_not_equal(u.row.names, names);
        assert_string_equal(u.row.names->items[0].friendly_name, "Microsoft 365 E3");
        order_update_done(&u);
}

static void test_bad_report(void **state) {
        OrderRow row = { .customer_id = (char *) "C", .order_id = (char *) "O" };
        _cleanup_(snapshot_freep) Snapshot *s = snap("0:fulfilled");
        OrderUpdate u = {};
        assert_int_equal(order_state_apply(&row, NULL, &(PollReport) { .outcome = POLL_OUTCOME_FAILED, .snapshot = s },
                                           &policy, &u),
                         -EINVAL);
        assert_int_equal(order_state_apply(&row, NULL, &(PollReport) { .outcome = _POLL_OUTCOME_MAX }, &policy, &u),
                         -EINVAL);
        assert_null(u.events);
}

static void test_order_row_state(void **state) {
        assert_int_equal(order_row_state(&(OrderRow) {}), ORDER_STATE_NEVER_POLLED);
        assert_int_equal(order_row_state(&(OrderRow) { .last_poll_usec = 1 }), ORDER_STATE_PENDING);
        assert_int_equal(order_row_state(&(OrderRow) { .last_poll_usec = 1, .settled = true }), ORDER_STATE_SETTLED);
        assert_int_equal(order_row_state(&(OrderRow) { .last_poll_usec = 1, .settled = true, .fetch_failed = true }),
                         ORDER_STATE_FAILING);
        assert_int_equal(order_row_state(&(OrderRow) { .last_poll_usec = 1, .fetch_failed = true, .not_found = true }),
                         ORDER_STATE_NOT_FOUND);
        assert_string_equal(order_state_to_string(ORDER_STATE_NOT_FOUND), "not_found");
        assert_null(order_state_to_string(_ORDER_STATE_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cases),
                cmocka_unit_test(test_names_on_every_event),
                cmocka_unit_test(test_bad_report),
                cmocka_unit_test(test_order_row_state),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
