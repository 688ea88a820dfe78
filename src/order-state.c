/* SPDX-License-Identifier: MIT */
#include <strings.h>

#include "diff.h"
#include "order-state.h"

void order_update_done(OrderUpdate *u) {
        if (!u)
                return;
        order_row_done(&u->row);
        events_free(u->events, u->n_events);
        *u = (OrderUpdate) {};
}

static int add_event(OrderUpdate *u, Event *e) {
        if (!e)
                return -ENOMEM;
        Event **ev = realloc(u->events, (u->n_events + 1) * sizeof *ev);
        if (!ev) {
                event_free(e);
                return -ENOMEM;
        }
        u->events = ev;
        u->events[u->n_events++] = e;
        return 0;
}

bool order_stall_due(const OrderRow *row, const OrderPolicy *policy, uint64_t now) {
        return policy->stall_after_usec > 0 && !row->settled && !row->stalled && row->changed_usec > 0 &&
               now >= row->changed_usec && now - row->changed_usec >= policy->stall_after_usec;
}

/* order.stalled names the line items that are not terminal yet. */
static int add_stalled(OrderUpdate *u, const Snapshot *current, const PollReport *p, const OrderPolicy *policy) {
        OrderRow *row = &u->row;
        Event *e = event_new(EVENT_ORDER_STALLED, row->customer_id, row->order_id, p->time_usec,
                             row->last_success_usec);
        int r = add_event(u, e);
        if (r < 0)
                return r;
        e->since_usec = row->changed_usec;
        e->line_items = snapshot_new();
        if (!e->line_items)
                return -ENOMEM;
        for (size_t i = 0; i < current->n_items; i++) {
                const LineItem *li = &current->items[i];
                bool terminal = false;
                for (char *const *t = policy->terminal_statuses; t && *t && !terminal; t++)
                        terminal = strcasecmp(li->status, *t) == 0;
                if (terminal)
                        continue;
                LineItem copy;
                r = line_item_copy(li, &copy);
                if (r >= 0)
                        r = snapshot_merge_items(e->line_items, &copy, 1, NULL);
                if (r < 0) {
                        line_item_done(&copy);
                        return r;
                }
        }
        row->stalled = true;
        return 0;
}

static int apply_ok(OrderUpdate *u, const Snapshot *old, const PollReport *p, const OrderPolicy *policy) {
        OrderRow *row = &u->row;
        const char *cid = row->customer_id, *oid = row->order_id;
        bool changed = false;
        int r;

        if (row->fetch_failed || row->not_found) {
                r = add_event(u, event_new(EVENT_ORDER_RECOVERED, cid, oid, p->time_usec, row->last_success_usec));
                if (r < 0)
                        return r;
        }
        if (p->snapshot && !(old && snapshot_equal(old, p->snapshot))) {
                Event **ev = NULL;
                size_t n = 0;
                r = diff_snapshots(old, p->snapshot, policy->terminal_statuses, cid, oid, p->time_usec,
                                   row->last_success_usec, &ev, &n);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++)
                        changed = changed || ev[i]->type == EVENT_LINEITEM_ADDED ||
                                  ev[i]->type == EVENT_LINEITEM_CHANGED || ev[i]->type == EVENT_LINEITEM_REMOVED;
                if (u->n_events == 0) { /* the usual case: the diff's list becomes the update's */
                        free(u->events);
                        u->events = ev;
                        u->n_events = n;
                        ev = NULL;
                        n = 0;
                }
                for (size_t i = 0; i < n; i++) {
                        r = add_event(u, ev[i]);
                        if (r < 0) { /* add_event() freed ev[i]; events_free() would free(ev + i + 1) */
                                while (++i < n)
                                        event_free(ev[i]);
                                free(ev);
                                return r;
                        }
                }
                free(ev);
                row->snapshot_json = snapshot_to_json(p->snapshot);
                if (!row->snapshot_json)
                        return -ENOMEM;
        }
        if (p->snapshot)
                row->settled = snapshot_is_settled(p->snapshot, policy->terminal_statuses);
        /* the stall clock starts at the first good poll and again at every change */
        if (changed || row->changed_usec == 0) {
                row->changed_usec = p->time_usec;
                row->stalled = false;
        }
        const Snapshot *current = p->snapshot ? p->snapshot : old;
        if (current && order_stall_due(row, policy, p->time_usec)) {
                r = add_stalled(u, current, p, policy);
                if (r < 0)
                        return r;
        }
        row->last_success_usec = p->time_usec;
        row->consecutive_failures = 0;
        row->fetch_failed = row->not_found = false;
        row->not_found_since_usec = 0;
        return 0;
}

static int apply_not_found(OrderUpdate *u, const PollReport *p, const OrderPolicy *policy) {
        OrderRow *row = &u->row;
        const char *code = p->code ? p->code : "404";

        if (row->not_found_since_usec == 0)
                row->not_found_since_usec = p->time_usec;
        row->last_error = strdup_printf("not found (%s)", code);
        if (!row->last_error)
                return -ENOMEM;
        if (row->not_found || p->time_usec - row->not_found_since_usec < policy->not_found_grace_usec)
                return 0;
        Event *e = event_new(EVENT_ORDER_NOT_FOUND, row->customer_id, row->order_id, p->time_usec,
                             row->last_success_usec);
        int r = add_event(u, e);
        if (r < 0)
                return r;
        e->code = strdup(code);
        e->description = strdup(p->description ? p->description : "");
        if (!e->code || !e->description)
                return -ENOMEM;
        row->not_found = true;
        return 0;
}

static int apply_failed(OrderUpdate *u, const PollReport *p, const OrderPolicy *policy) {
        OrderRow *row = &u->row;
        const char *reason = p->reason ? p->reason : "unknown";

        row->consecutive_failures++;
        row->last_error = strdup(reason);
        if (!row->last_error)
                return -ENOMEM;
        if (row->fetch_failed || row->consecutive_failures < policy->failure_threshold)
                return 0;
        Event *e = event_new(EVENT_ORDER_FETCH_FAILED, row->customer_id, row->order_id, p->time_usec,
                             row->last_success_usec);
        int r = add_event(u, e);
        if (r < 0)
                return r;
        e->http_status = p->http_status;
        e->reason = strdup(reason);
        e->correlation_id = p->correlation_id ? strdup(p->correlation_id) : NULL;
        e->request_id = p->request_id ? strdup(p->request_id) : NULL;
        e->ms_cv = p->ms_cv ? strdup(p->ms_cv) : NULL;
        if (!e->reason || (p->correlation_id && !e->correlation_id) || (p->request_id && !e->request_id) ||
            (p->ms_cv && !e->ms_cv))
                return -ENOMEM;
        row->fetch_failed = true;
        return 0;
}

int order_state_apply(const OrderRow *row, const Snapshot *old, const PollReport *report,
                      const OrderPolicy *policy, OrderUpdate *ret) {
        _cleanup_(order_update_done) OrderUpdate u = {};
        int r;

        if (report->outcome < 0 || report->outcome >= _POLL_OUTCOME_MAX ||
            (report->outcome != POLL_OUTCOME_OK && report->snapshot))
                return -EINVAL;
        r = order_row_copy(row, &u.row);
        if (r < 0)
                return r;
        /* the stored snapshot stays unless this poll changes it */
        u.row.snapshot_json = mfree(u.row.snapshot_json);
        u.row.last_error = mfree(u.row.last_error);
        u.row.last_poll_usec = report->time_usec;
        u.row.last_http_status = (int) report->http_status;

        switch (report->outcome) {
        case POLL_OUTCOME_OK:
                r = apply_ok(&u, old, report, policy);
                break;
        case POLL_OUTCOME_NOT_FOUND:
                r = apply_not_found(&u, report, policy);
                break;
        default:
                r = apply_failed(&u, report, policy);
                break;
        }
        if (r < 0)
                return r;
        for (size_t i = 0; i < u.n_events; i++) {
                r = event_set_names(u.events[i], u.row.names);
                if (r < 0)
                        return r;
        }
        *ret = u;
        u = (OrderUpdate) {};
        return 0;
}

OrderState order_row_state(const OrderRow *row) {
        /* the precedence of the provwatch_orders gauge */
        if (row->last_poll_usec == 0)
                return ORDER_STATE_NEVER_POLLED;
        if (row->not_found)
                return ORDER_STATE_NOT_FOUND;
        if (row->fetch_failed)
                return ORDER_STATE_FAILING;
        if (row->settled)
                return ORDER_STATE_SETTLED;
        return ORDER_STATE_PENDING;
}

const char *order_state_to_string(OrderState s) {
        static const char *const table[_ORDER_STATE_MAX] = {
                [ORDER_STATE_NEVER_POLLED] = "never_polled",
                [ORDER_STATE_PENDING] = "pending",
                [ORDER_STATE_SETTLED] = "settled",
                [ORDER_STATE_FAILING] = "failing",
                [ORDER_STATE_NOT_FOUND] = "not_found",
        };
        return s >= 0 && s < _ORDER_STATE_MAX ? table[s] : NULL;
}
