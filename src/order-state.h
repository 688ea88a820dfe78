/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "snapshot.h"
#include "store.h"

/* The order state machine of SPEC §4, pure: what one poll means for an order. In: the order's
 * committed row, its stored snapshot, what the poll saw and the rules; out: the new row and the
 * events, in the order they are to be emitted. No clocks, no I/O, no ids. */

typedef enum PollOutcome {
        POLL_OUTCOME_OK,
        POLL_OUTCOME_FAILED,
        POLL_OUTCOME_NOT_FOUND,
        _POLL_OUTCOME_MAX,
} PollOutcome;

typedef struct PollReport {
        PollOutcome outcome;
        /* OK: what the answer said; NULL when it is byte for byte the answer the stored snapshot was
         * made from (nothing to compare then). */
        const Snapshot *snapshot;
        long http_status;                /* 0 when there was no answer */
        const char *reason;              /* FAILED: why, for the row and order.fetch_failed */
        const char *code, *description;  /* NOT_FOUND: from the error body, NULL when absent */
        /* FAILED: the support handles of the last request (SPEC §3), NULL when unknown */
        const char *correlation_id, *request_id, *ms_cv;
        uint64_t time_usec;              /* realtime at which the poll completed */
} PollReport;

typedef struct OrderPolicy {
        char *const *terminal_statuses; /* NULL-terminated, lowercased */
        uint64_t not_found_grace_usec;
        unsigned failure_threshold;
        uint64_t stall_after_usec; /* 0 = no order.stalled */
} OrderPolicy;

typedef struct OrderUpdate {
        OrderRow row;   /* the new row; row.snapshot_json is set only when the snapshot changed */
        Event **events; /* without ids */
        size_t n_events;
} OrderUpdate;

void order_update_done(OrderUpdate *u);

/* old: the stored snapshot, NULL when there is none or it is not needed (report->snapshot NULL and
 * no stall due, see order_stall_due()). Every event carries the row's names. Returns -ENOMEM or
 * -EINVAL (a report that does not fit its outcome); *ret is written only on success. */
int order_state_apply(const OrderRow *row, const Snapshot *old, const PollReport *report,
                       const OrderPolicy *policy, OrderUpdate *ret);

/* Whether a good poll at now_usec finds the order stalled (SPEC §9): then it needs the stored snapshot
 * even when the answer is the one it was made from, to name the line items still pending. */
bool order_stall_due(const OrderRow *row, const OrderPolicy *policy, uint64_t now_usec);

/* The state an operator sees (status, metrics, STATUS=). */
typedef enum OrderState {
        ORDER_STATE_NEVER_POLLED,
        ORDER_STATE_PENDING,
        ORDER_STATE_SETTLED,
        ORDER_STATE_FAILING,
        ORDER_STATE_NOT_FOUND,
        _ORDER_STATE_MAX,
} OrderState;

OrderState order_row_state(const OrderRow *row);
/* "never_polled", "pending", "settled", "failing", "not_found" (the metric's label values, but for
 * never_polled, which the metric counts as pending) */
const char *order_state_to_string(OrderState s);
