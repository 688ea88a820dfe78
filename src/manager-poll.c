/* SPDX-License-Identifier: MIT */
/* What to poll next, pulled by the Partner Center client when a request may go out, and a poll's way
 * from its answer through the order state machine into the outbox, to its commit and its next turn. */
#include <stdio.h>

#include "alloc-util.h"
#include "log.h"
#include "manager-internal.h"
#include "order-state.h"

#define FAILURE_BACKOFF_BASE_USEC (10 * USEC_PER_SEC)
#define FAILURE_BACKOFF_CAP_USEC (15 * 60 * USEC_PER_SEC)
#define ONCE_MAX_THROTTLED 5

/* One poll of one order, from its start until its result is committed (or dropped). */
typedef struct PollJob {
        Manager *m;
        Order *order;
        PollOutcome outcome;
        uint64_t duration_usec;
        uint64_t delay_usec; /* until the next poll, decided with the row so that the row can say it */
} PollJob;

/* ---- scheduling ---- */

/* How long until the next regular poll; USEC_INFINITY when the order is not polled again. */
static uint64_t order_interval(const Manager *m, bool settled) {
        if (!settled)
                return m->revisit_usec ? m->revisit_usec : m->config->interval_usec;
        return m->config->settled_interval_usec ? m->config->settled_interval_usec : USEC_INFINITY;
}

static uint64_t next_delay(const Manager *m, bool settled, unsigned failures) {
        if (failures > 0)
                return backoff_usec(failures, FAILURE_BACKOFF_BASE_USEC, FAILURE_BACKOFF_CAP_USEC, random_unit());
        return order_interval(m, settled);
}

/* After a (re)start or reload: keep the rhythm the store remembers, most overdue first. */
static uint64_t order_initial_due(const Manager *m, const Order *x, uint64_t now_mono, uint64_t now_rt) {
        if (m->options.mode == MANAGER_ONCE || x->row.last_poll_usec == 0)
                return now_mono;
        uint64_t interval = order_interval(m, x->row.settled);
        if (interval == USEC_INFINITY)
                return USEC_INFINITY;
        if (x->row.consecutive_failures > 0 && !x->row.settled)
                interval = backoff_usec(x->row.consecutive_failures, FAILURE_BACKOFF_BASE_USEC,
                                        FAILURE_BACKOFF_CAP_USEC, 0.5);
        uint64_t next_rt = x->row.last_poll_usec + interval;
        if (next_rt > now_rt)
                return now_mono + (next_rt - now_rt);
        uint64_t overdue = now_rt - next_rt;
        return overdue < now_mono ? now_mono - overdue : 0;
}

/* failed: the poll did not show the order's state (for `once`'s exit status) */
static void schedule_after(Manager *m, Order *x, uint64_t delay, bool failed) {
        if (m->options.mode == MANAGER_ONCE)
                manager_once_order_finished(m, x, failed);
        else
                orders_enqueue(&m->orders, x, delay == USEC_INFINITY ? USEC_INFINITY : now_monotonic_usec() + delay);
}

/* The regular revisit after an answer: an interval after the due time the poll was sent for (still in
 * x->hi.due), so that waiting for a slot of the budget, the round trip and the commit do not add up
 * from one revisit to the next (SPEC §3: "revisited about every interval"). */
static void schedule_revisit(Manager *m, Order *x, uint64_t interval, bool failed) {
        if (m->options.mode == MANAGER_ONCE)
                manager_once_order_finished(m, x, failed);
        else if (interval == USEC_INFINITY)
                orders_enqueue(&m->orders, x, USEC_INFINITY);
        else
                orders_enqueue(&m->orders, x, revisit_due(x->hi.due, now_monotonic_usec(), interval));
}

static void schedule_failed(Manager *m, Order *x) {
        x->busy = false;
        x->backoff_failures++;
        schedule_after(m, x, next_delay(m, x->row.settled, x->backoff_failures), true);
}

static int order_key_compare(const void *a, const void *b) {
        const Order *x = *(const Order *const *) a, *y = *(const Order *const *) b;
        int r = strcmp(x->row.customer_id, y->row.customer_id);
        return r != 0 ? r : strcmp(x->row.order_id, y->row.order_id);
}

/* Queues every watched order that is neither queued nor busy (after a start, reload or orders-dir
 * change); with all set, requeues every idle watched order at its remembered rhythm.
 *
 * Orders never polled are due now, and they go out in the order of their ids: their rows then enter
 * the store's (customer, order) index one after the other instead of at random places, so that a
 * commit rewrites a few of its pages, not one page per row (a first `once` over 20,000 orders:
 * 45,782 → 8,636 page writes, 25,741 → 2,704 page reads). They are due a microsecond apart, up to
 * now: no later than they would be, and before no order that is overdue. */
void manager_schedule_idle_orders(Manager *m, bool all) {
        uint64_t now_mono = now_monotonic_usec(), now_rt = now_realtime_usec();
        _cleanup_free_ Order **fresh = NULL;
        size_t n = 0, n_alloc = 0;
        ORDERS_FOREACH(x, &m->orders) {
                if (!x->watched || x->busy || (!all && x->queue != ORDER_QUEUE_NONE))
                        continue;
                if (x->row.last_poll_usec != 0)
                        orders_enqueue(&m->orders, x, order_initial_due(m, x, now_mono, now_rt));
                else if (GREEDY_REALLOC(fresh, n_alloc, n + 1))
                        fresh[n++] = x;
                else /* without memory, in the table's order */
                        orders_enqueue(&m->orders, x, now_mono);
        }
        if (n > 1)
                qsort(fresh, n, sizeof *fresh, order_key_compare);
        uint64_t first = now_mono > n ? now_mono - n : 0;
        for (size_t i = 0; i < n; i++)
                orders_enqueue(&m->orders, fresh[i], first + i);
}

/* Whether the budget covers every order at its interval (said once per change of the answer), and how
 * often unsettled orders are revisited with what it leaves. */
void manager_check_budget(Manager *m) {
        if (m->options.mode == MANAGER_ONCE)
                return;
        size_t n_unsettled = 0;
        double settled_per_min = 0;
        uint64_t settled_iv = order_interval(m, true);
        ORDERS_FOREACH(x, &m->orders) {
                if (!x->watched)
                        continue;
                if (!x->row.settled)
                        n_unsettled++;
                else if (settled_iv != USEC_INFINITY && settled_iv > 0)
                        settled_per_min += 60.0 * (double) USEC_PER_SEC / (double) settled_iv;
        }
        /* the activity log's reads come first: about one request per discovery interval, two on a
         * busy day */
        double other_per_min = settled_per_min;
        if (m->discovery && m->config->discovery_enabled)
                other_per_min += 2 * 60.0 * (double) USEC_PER_SEC / (double) m->config->discovery_interval_usec;
        RevisitPlan plan = {
                .interval_usec = m->config->interval_usec,
                .floor_usec = m->config->min_interval_usec,
                .rpm = m->config->max_requests_per_minute,
        };
        m->revisit_usec = revisit_interval(&plan, n_unsettled, other_per_min);
        if (m->config->max_requests_per_minute == 0)
                return;
        double demand = other_per_min + (double) n_unsettled * 60.0 * (double) USEC_PER_SEC /
                                                (double) m->config->interval_usec;
        bool short_now = demand > (double) m->config->max_requests_per_minute;
        if (short_now && !m->budget_short_logged)
                log_warning("The budget of %u requests/min cannot poll all %zu orders at their intervals "
                            "(that needs %.0f/min): orders not yet settled are served first, settled ones "
                            "are polled less often.",
                            m->config->max_requests_per_minute, m->orders.n_watched, demand);
        else if (!short_now && m->budget_short_logged)
                log_info("The budget of %u requests/min now covers all orders at their intervals.",
                         m->config->max_requests_per_minute);
        m->budget_short_logged = short_now;
}

/* ---- a poll's result: committed with the next batch, acted upon once committed ---- */

static PollResult metrics_result(PollOutcome o) {
        return o == POLL_OUTCOME_OK ? POLL_RESULT_OK : o == POLL_OUTCOME_NOT_FOUND ? POLL_RESULT_NOT_FOUND : POLL_RESULT_FAILED;
}


/* A poll whose result is in x->row (committed, or only its times changed): counted, and the order's
 * next poll planned. */
static void poll_finished(Manager *m, Order *x, const PollJob *job) {
        x->busy = false;
        metrics_observe_poll(&m->metrics, metrics_result(job->outcome), job->duration_usec);
        /* a 404 is the normal state of a new order: polled at its interval, not backed off */
        x->backoff_failures = job->outcome == POLL_OUTCOME_FAILED ? x->backoff_failures + 1 : 0;
        /* not OK (a 404 too) counts as failed for once's exit status */
        if (job->outcome == POLL_OUTCOME_FAILED || x->poll_again)
                schedule_after(m, x, x->poll_again ? 0 : job->delay_usec, job->outcome != POLL_OUTCOME_OK);
        else
                schedule_revisit(m, x, job->delay_usec, job->outcome != POLL_OUTCOME_OK);
        x->poll_again = false;
}

static void on_committed(int r, OrderRow *row, void *userdata) {
        PollJob *job = userdata;
        Manager *m = job->m;
        Order *x = job->order;

        x->busy = false;
        if (r < 0) {
                /* SPEC §5: the poll counts as failed, the old snapshot stays, polling goes on. */
                metrics_observe_poll(&m->metrics, POLL_RESULT_FAILED, job->duration_usec);
                x->backoff_failures++;
                schedule_after(m, x, next_delay(m, x->row.settled, x->backoff_failures), true);
        } else {
                /* names and the discovery mark belong to discovery, which may have changed them
                 * while this poll was under way */
                order_names_free(row->names);
                row->names = TAKE_PTR(x->row.names);
                row->discovered_usec = x->row.discovered_usec;
                order_take_row(x, row);
                if (x->times_dirty) { /* the row written holds the newest times */
                        x->times_dirty = false;
                        m->n_times_dirty--;
                }
                x->row.snapshot_json = mfree(x->row.snapshot_json); /* row.snapshot_stored says it is there */
                poll_finished(m, x, job);
        }
        free(job);
}

/* The stored snapshot an answer is compared with; NULL when there is none or it is unreadable. */
static int load_old_snapshot(Manager *m, const Order *x, Snapshot **ret) {
        _cleanup_(order_row_done) OrderRow stored = {};
        *ret = NULL;
        int r = store_get_order(m->store, x->row.customer_id, x->row.order_id, &stored);
        if (r == -ENOENT || (r >= 0 && !stored.snapshot_json))
                return 0;
        if (r < 0)
                return r;
        if (snapshot_from_json(stored.snapshot_json, ret) < 0)
                log_warning("Stored snapshot of order '%s' is unreadable; treating the order as new.",
                            x->row.order_id);
        return 0;
}

/* An answer that changed nothing but the poll times of a row the store has. */
static bool only_poll_times(const OrderRow *old, const OrderRow *new, size_t n_events) {
        return n_events == 0 && !new->snapshot_json && old->last_poll_usec != 0 &&
               order_row_same_but_poll_times(old, new);
}

static int order_rowid_compare(const void *a, const void *b) {
        int64_t x = (*(Order *const *) a)->row.store_rowid, y = (*(Order *const *) b)->row.store_rowid;
        return (x > y) - (x < y);
}

/* Writes the poll times that changed only in memory, in one transaction. SPEC §5 concerns polls with
 * changes, which commit before any output as always; these rows differ from the store's only in when
 * they were polled, so a crash loses at most a minute of poll times (those orders are polled a little
 * early after the restart) and `provwatch status` may show a poll time that old. */
void manager_write_poll_times(Manager *m) {
        m->times_written_usec = now_monotonic_usec();
        if (m->n_times_dirty == 0 || !m->store)
                return;
        /* In the order the rows are stored: each page of the table is then read and written once,
         * where the order of the table would go back and forth (more rows than SQLite's page cache
         * holds pages: 2.7 page reads per row at 20,000 orders). Without memory for the list the
         * times stay dirty for the next write. */
        _cleanup_free_ Order **dirty = calloc(m->n_times_dirty, sizeof *dirty);
        if (!dirty) {
                log_warning("Cannot save poll times in %s: out of memory", store_path(m->store));
                return;
        }
        size_t n = 0;
        ORDERS_FOREACH(x, &m->orders)
                if (x->times_dirty && n < m->n_times_dirty)
                        dirty[n++] = x;
        qsort(dirty, n, sizeof *dirty, order_rowid_compare);
        int r = store_begin(m->store);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = store_touch_order(m->store, &dirty[i]->row);
        if (r >= 0)
                r = store_commit(m->store);
        else
                store_rollback(m->store);
        if (r < 0) {
                log_warning_errno(r, "Cannot save poll times in %s: %s", store_path(m->store), store_error(m->store));
                return;
        }
        ORDERS_FOREACH(x, &m->orders)
                x->times_dirty = false;
        m->n_times_dirty = 0;
}

/* The answer through the state machine into the outbox; on success the job belongs to the outbox. */
static int process_answer(PollJob *job, PollAnswer *a) {
        Manager *m = job->m;
        Order *x = job->order;
        _cleanup_(snapshot_freep) Snapshot *old = NULL;
        _cleanup_(order_update_done) OrderUpdate u = {};
        int r;

        OrderPolicy policy = {
                .terminal_statuses = m->config->terminal_statuses,
                .not_found_grace_usec = m->config->not_found_grace_usec,
                .failure_threshold = m->config->failure_threshold,
                .stall_after_usec = m->config->stall_after_usec,
        };
        uint64_t now = now_realtime_usec();
        if (a->outcome == POLL_OUTCOME_OK && x->row.snapshot_stored &&
            (a->snapshot || order_stall_due(&x->row, &policy, now))) {
                r = load_old_snapshot(m, x, &old);
                if (r < 0)
                        return r;
        }
        PollReport report = {
                .outcome = a->outcome,
                .snapshot = a->snapshot,
                .http_status = a->http_status,
                .reason = a->reason,
                .code = a->code,
                .description = a->description,
                .correlation_id = a->correlation_id,
                .request_id = a->request_id,
                .ms_cv = a->ms_cv,
                .time_usec = now,
        };
        r = order_state_apply(&x->row, old, &report, &policy, &u);
        if (r < 0)
                return r;
        if (a->outcome == POLL_OUTCOME_OK) {
                u.row.has_answer_digest = a->has_digest;
                memcpy(u.row.answer_digest, a->digest, sizeof u.row.answer_digest);
        }
        job->outcome = a->outcome;
        job->duration_usec = a->duration_usec;
        job->delay_usec = next_delay(m, u.row.settled, a->outcome == POLL_OUTCOME_FAILED ? x->backoff_failures + 1 : 0);
        u.row.next_poll_usec = job->delay_usec == USEC_INFINITY ? 0 : report.time_usec + job->delay_usec;
        if (a->outcome == POLL_OUTCOME_OK && !x->poll_again && only_poll_times(&x->row, &u.row, u.n_events)) {
                /* nothing to commit now: the poll times go with the next bulk write */
                x->row.last_poll_usec = u.row.last_poll_usec;
                x->row.last_success_usec = u.row.last_success_usec;
                x->row.next_poll_usec = u.row.next_poll_usec;
                if (!x->times_dirty) {
                        x->times_dirty = true;
                        m->n_times_dirty++;
                }
                poll_finished(m, x, job);
                free(job);
                return 0;
        }
        r = outbox_add(m->outbox, &u.row, u.events, u.n_events, NULL, on_committed, job);
        if (r < 0)
                return r;
        u.events = NULL;
        u.n_events = 0;
        manager_flush_soon(m);
        return 0;
}

/* The next poll of x is sent as the same request (after a timeout or a 429); without memory for the id,
 * as a new one. start_poll() lets go of it. */
static void retry_as_same_request(Order *x, const PollAnswer *a) {
        free(x->retry_request_id);
        x->retry_request_id = a->request_id ? strdup(a->request_id) : NULL;
}

static void on_poll_done(PollAnswer *a, void *userdata) {
        PollJob *job = userdata;
        Manager *m = job->m;
        Order *x = job->order;

        if (a->throttled) {
                metrics_observe_poll(&m->metrics, POLL_RESULT_RATE_LIMITED, a->duration_usec);
                if (m->options.mode != MANAGER_ONCE || ++x->throttled <= ONCE_MAX_THROTTLED) {
                        /* the poll starts over when the pause ends, under the same MS-RequestId */
                        retry_as_same_request(x, a);
                        x->busy = false;
                        orders_enqueue(&m->orders, x, now_monotonic_usec());
                        free(job);
                        return;
                }
                a->reason = "rate limited (HTTP 429) too often";
        }
        if (a->timed_out)
                retry_as_same_request(x, a);
        if (a->outcome == POLL_OUTCOME_FAILED) {
                if (a->ms_cv)
                        log_warning("Poll of order '%s' (customer '%s') failed: %s (MS-CorrelationId %s, "
                                    "MS-RequestId %s, MS-CV %s)",
                                    x->row.order_id, x->row.customer_id, a->reason, a->correlation_id,
                                    a->request_id, a->ms_cv);
                else
                        log_warning("Poll of order '%s' (customer '%s') failed: %s (MS-CorrelationId %s, "
                                    "MS-RequestId %s)",
                                    x->row.order_id, x->row.customer_id, a->reason, a->correlation_id,
                                    a->request_id);
        }
        int r = process_answer(job, a);
        if (r < 0) {
                log_error_errno(r, "Cannot process the poll of order '%s': %m", x->row.order_id);
                free(job);
                schedule_failed(m, x);
        }
        if (m->stopping && pc_client_in_flight(m->client) == 0)
                manager_shutdown_now(m);
}

static void start_poll(Manager *m, Order *x) {
        PollJob *job = calloc(1, sizeof *job);
        int r = job ? 0 : -ENOMEM;
        if (r >= 0) {
                *job = (PollJob) { .m = m, .order = x };
                PollTarget t = {
                        .customer_id = x->row.customer_id,
                        .order_id = x->row.order_id,
                        .request_id = x->retry_request_id, /* copied by poller_start() */
                        .known_digest = x->row.snapshot_stored && x->row.has_answer_digest ? x->row.answer_digest : NULL,
                };
                x->busy = true;
                r = poller_start(m->poller, &t, on_poll_done, free, job, NULL);
                x->retry_request_id = mfree(x->retry_request_id);
        }
        if (r < 0) {
                log_error_errno(r, "Cannot start polling order '%s': %m", x->row.order_id);
                free(job);
                schedule_failed(m, x);
        }
}

/* The client has a free slot and a token: the most urgent due order goes out. */
bool manager_pull(void *userdata, uint64_t now, uint64_t *ret_wake) {
        Manager *m = userdata;
        uint64_t wake = USEC_INFINITY;
        bool started = false;

        if (m->stopping || m->polling_done)
                return false;
        /* the activity log first (SPEC §8), then unsettled and settled orders, the sweep last */
        if (m->discovery && discovery_pull_log(m->discovery, now, &wake))
                return true;
        Order *x = orders_next_due(&m->orders, now, ret_wake);
        if (x) {
                orders_dequeue(&m->orders, x);
                start_poll(m, x);
                return true;
        }
        if (m->discovery)
                started = discovery_pull_sweep(m->discovery, now, &wake);
        if (wake < *ret_wake)
                *ret_wake = wake;
        return started;
}
