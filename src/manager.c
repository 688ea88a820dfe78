/* SPDX-License-Identifier: MIT */
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "auth.h"
#include "diff.h"
#include "http.h"
#include "journal.h"
#include "log.h"
#include "manager.h"
#include "metrics.h"
#include "partner-center.h"
#include "scheduler.h"
#include "store.h"
#include "webhook.h"

#define FAILURE_BACKOFF_BASE_USEC (10 * USEC_PER_SEC)
#define FAILURE_BACKOFF_CAP_USEC (15 * 60 * USEC_PER_SEC)
#define ONCE_MAX_THROTTLED 5
#define SHUTDOWN_GRACE_MSEC 3000
#define STATUS_PERIOD_MSEC 5000
#define ORDERS_DIR_SETTLE_MSEC 200
#define MAX_PAGES 100
#define TOKEN_FILE_RECHECK_MSEC 1000

typedef enum QueueKind {
        QUEUE_NONE = -1,
        QUEUE_UNSETTLED,
        QUEUE_SETTLED,
} QueueKind;

typedef struct Order {
        HeapItem hi;
        OrderRow row;
        struct Order *hash_next;
        QueueKind queue;
        bool watched;
        bool in_flight;
        bool once_done, once_failed;
        bool mark;
        char request_id[37];
        bool keep_request_id; /* a timed-out request is retried under the same MS-RequestId */
        unsigned backoff_failures; /* in memory: failed polls and failed commits in a row */
        unsigned throttled;
        /* The store holds a snapshot of the order. Its JSON is not kept in row.snapshot_json: it is
         * read back only when an answer differs from the last one. */
        bool has_snapshot;
} Order;

typedef struct Fetch {
        struct Manager *m;
        Order *order;
        Snapshot *snap;
        char *url;
        char **headers; /* extra headers of a next page */
        unsigned pages;
        bool retried_401;
        char *token;
        HttpRequest *request;
        uint64_t start_usec;
        struct Fetch *next_waiting; /* continuation queue (next page or 401 retry) */
        struct Fetch *prev, *next;  /* every live fetch, so that shutdown can abandon them */
        uint8_t answer_digest[sizeof ((OrderRow) {}).answer_digest]; /* of a first page */
        bool has_answer_digest;
} Fetch;

typedef enum Outcome {
        OUTCOME_OK,
        OUTCOME_FAILED,
        OUTCOME_NOT_FOUND,
} Outcome;

typedef struct Result {
        Order *order;
        Outcome outcome;
        OrderRow row; /* the new row */
        Event **events;
        size_t n_events;
        char **bodies;
        uint64_t duration_usec;
        uint64_t delay_usec; /* until the next poll, decided with the row so that the row can say it */
        long http_status;
        struct Result *next;
} Result;

struct Manager {
        uv_loop_t *loop;
        Config *config;
        ManagerOptions options;
        char hostname[256];
        bool journal;

        Store *store;
        Http *http;
        Auth *auth;
        Webhooks *webhooks;
        Budget budget;

        Order **hash;
        size_t hash_size, n_orders, n_watched;
        Heap queues[2];
        Fetch *waiting_head, *waiting_tail;
        Fetch *fetches;
        size_t in_flight;

        Result *results_head, *results_tail;

        uv_timer_t dispatch_timer;
        uv_timer_t status_timer;
        uv_timer_t watchdog_timer;
        uv_timer_t shutdown_timer;
        uv_timer_t orders_dir_timer;
        uv_check_t flush_check;
        uv_idle_t flush_idle; /* active while results wait: keeps the loop from blocking before the check */
        uv_signal_t sig_hup, sig_term, sig_int;
        uv_fs_event_t orders_dir_watch;
        bool orders_dir_watching;

        bool stopping;
        bool polling_done; /* once */
        size_t once_remaining;
        bool once_failures;
        uv_timer_t once_timer;
        bool budget_short_logged;
        bool commit_failing;
        uint64_t undelivered;
        uint64_t once_deadline_usec; /* realtime: when once stops waiting for webhooks */
        int exit_status;

        EVP_MD *sha256;
        EVP_MD_CTX *digest_ctx;
};

/* ---- orders and their lookup ---- */

static size_t order_hash(const char *c, const char *o) {
        size_t h = 1469598103934665603ULL;
        for (const char *p = c; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211ULL;
        h = (h ^ 0x1f) * 1099511628211ULL;
        for (const char *p = o; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211ULL;
        return h;
}

static Order *order_find(Manager *m, const char *c, const char *o) {
        if (!m->hash)
                return NULL;
        for (Order *x = m->hash[order_hash(c, o) & (m->hash_size - 1)]; x; x = x->hash_next)
                if (streq(x->row.customer_id, c) && streq(x->row.order_id, o))
                        return x;
        return NULL;
}

static int hash_grow(Manager *m) {
        size_t size = m->hash_size ? m->hash_size * 2 : 1024;
        Order **h = calloc(size, sizeof *h);
        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < m->hash_size; i++)
                for (Order *x = m->hash[i], *n; x; x = n) {
                        n = x->hash_next;
                        size_t b = order_hash(x->row.customer_id, x->row.order_id) & (size - 1);
                        x->hash_next = h[b];
                        h[b] = x;
                }
        free(m->hash);
        m->hash = h;
        m->hash_size = size;
        return 0;
}

static Order *order_add(Manager *m, const char *c, const char *o) {
        if (m->n_orders + 1 > m->hash_size / 2 && hash_grow(m) < 0)
                return NULL;
        Order *x = calloc(1, sizeof *x);
        if (!x)
                return NULL;
        x->row.customer_id = strdup(c);
        x->row.order_id = strdup(o);
        if (!x->row.customer_id || !x->row.order_id) {
                order_row_done(&x->row);
                free(x);
                return NULL;
        }
        x->hi.heap_pos = SIZE_MAX;
        x->queue = QUEUE_NONE;
        size_t b = order_hash(c, o) & (m->hash_size - 1);
        x->hash_next = m->hash[b];
        m->hash[b] = x;
        m->n_orders++;
        return x;
}

static void order_dequeue(Manager *m, Order *x) {
        if (x->queue != QUEUE_NONE)
                heap_remove(&m->queues[x->queue], &x->hi);
        x->queue = QUEUE_NONE;
}

/* How long until the next regular poll of x; USEC_INFINITY when it is not polled again. */
static uint64_t order_interval(const Manager *m, const Order *x) {
        if (!x->row.settled)
                return m->config->interval_usec;
        return m->config->settled_interval_usec ? m->config->settled_interval_usec : USEC_INFINITY;
}

static void order_enqueue(Manager *m, Order *x, uint64_t due) {
        order_dequeue(m, x);
        if (!x->watched || due == USEC_INFINITY)
                return;
        x->hi.due = due;
        x->queue = x->row.settled ? QUEUE_SETTLED : QUEUE_UNSETTLED;
        if (heap_push(&m->queues[x->queue], &x->hi) < 0) {
                log_oom();
                x->queue = QUEUE_NONE;
        }
}

/* After a (re)start: keep the rhythm the store remembers, most overdue first. */
static uint64_t order_initial_due(const Manager *m, const Order *x, uint64_t now_mono, uint64_t now_rt) {
        if (m->options.mode == MANAGER_ONCE || x->row.last_poll_usec == 0)
                return now_mono;
        uint64_t interval = order_interval(m, x);
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

static void order_free(Order *x) {
        order_row_done(&x->row);
        free(x);
}

/* ---- statistics for STATUS= and metrics ---- */

static void count_orders(Manager *m) {
        metrics.orders_pending = metrics.orders_settled = metrics.orders_failing = metrics.orders_not_found = 0;
        for (size_t i = 0; i < m->hash_size; i++)
                for (Order *x = m->hash[i]; x; x = x->hash_next) {
                        if (!x->watched)
                                continue;
                        if (x->row.not_found)
                                metrics.orders_not_found++;
                        else if (x->row.fetch_failed)
                                metrics.orders_failing++;
                        else if (x->row.settled)
                                metrics.orders_settled++;
                        else
                                metrics.orders_pending++;
                }
}

static void update_status(Manager *m) {
        count_orders(m);
        uint64_t queued = m->webhooks ? webhooks_queued(m->webhooks) : 0;
        const char *problem = m->auth ? auth_problem(m->auth) : NULL;
        uint64_t pending = metrics.orders_pending + metrics.orders_failing + metrics.orders_not_found;
        if (problem)
                sd_notifyf(0, "STATUS=watching %zu orders (%llu pending), %llu queued webhook events; %s",
                           m->n_watched, (unsigned long long) pending, (unsigned long long) queued, problem);
        else
                sd_notifyf(0, "STATUS=watching %zu orders (%llu pending), %llu queued webhook events",
                           m->n_watched, (unsigned long long) pending, (unsigned long long) queued);
        if (m->config->metrics_textfile) {
                int r = metrics_write_textfile(&metrics, m->config->metrics_textfile);
                if (r < 0)
                        log_warning_errno(r, "Cannot write metrics to '%s': %m", m->config->metrics_textfile);
        }
}

/* Whether the budget covers every order at its interval; said once per change of the answer. */
static void check_budget(Manager *m) {
        if (m->config->max_requests_per_minute == 0 || m->options.mode == MANAGER_ONCE)
                return;
        double demand = 0;
        for (size_t i = 0; i < m->hash_size; i++)
                for (Order *x = m->hash[i]; x; x = x->hash_next) {
                        uint64_t iv = x->watched ? order_interval(m, x) : USEC_INFINITY;
                        if (iv != USEC_INFINITY && iv > 0)
                                demand += 60.0 * (double) USEC_PER_SEC / (double) iv;
                }
        bool short_now = demand > (double) m->config->max_requests_per_minute;
        if (short_now && !m->budget_short_logged)
                log_warning("The budget of %u requests/min cannot poll all %zu orders at their intervals "
                            "(that needs %.0f/min): orders not yet settled are served first, settled ones "
                            "are polled less often.",
                            m->config->max_requests_per_minute, m->n_watched, demand);
        else if (!short_now && m->budget_short_logged)
                log_info("The budget of %u requests/min now covers all orders at their intervals.",
                         m->config->max_requests_per_minute);
        m->budget_short_logged = short_now;
}

/* ---- output of committed events ---- */

static void emit_event(Manager *m, const Event *e, const char *body) {
        metrics.events_total[e->type]++;
        if (m->journal) {
                int r = journal_send_event(e);
                if (r < 0)
                        log_warning_errno(r, "Cannot send event %s to the journal: %m", e->id);
        }
        if (m->options.print_events) {
                fputs(body, stdout);
                fputc('\n', stdout);
                fflush(stdout);
        }
}

/* ---- results: committed in batches, output only after the commit ---- */

static void result_free(Result *res) {
        order_row_done(&res->row);
        events_free(res->events, res->n_events);
        if (res->bodies)
                for (size_t i = 0; i < res->n_events; i++)
                        free(res->bodies[i]);
        free(res->bodies);
        free(res);
}

static int row_copy(const OrderRow *src, OrderRow *dst) {
        *dst = *src;
        dst->customer_id = strdup(src->customer_id);
        dst->order_id = strdup(src->order_id);
        dst->snapshot_json = src->snapshot_json ? strdup(src->snapshot_json) : NULL;
        dst->last_error = src->last_error ? strdup(src->last_error) : NULL;
        if (!dst->customer_id || !dst->order_id || (src->snapshot_json && !dst->snapshot_json) ||
            (src->last_error && !dst->last_error)) {
                order_row_done(dst);
                return -ENOMEM;
        }
        return 0;
}

static void once_order_finished(Manager *m, Order *x, bool failed);
static void dispatch(Manager *m);

/* When to poll an order again: its interval, or backoff after failed polls. */
static uint64_t next_delay(const Manager *m, bool settled, unsigned failures) {
        if (failures > 0)
                return backoff_usec(failures, FAILURE_BACKOFF_BASE_USEC, FAILURE_BACKOFF_CAP_USEC, random_unit());
        if (!settled)
                return m->config->interval_usec;
        return m->config->settled_interval_usec ? m->config->settled_interval_usec : USEC_INFINITY;
}

static void order_schedule(Manager *m, Order *x, uint64_t delay) {
        order_enqueue(m, x, delay == USEC_INFINITY ? USEC_INFINITY : now_monotonic_usec() + delay);
}

static void schedule_after_result(Manager *m, Order *x, bool failed) {
        if (m->options.mode == MANAGER_ONCE)
                once_order_finished(m, x, failed);
        else
                order_schedule(m, x, next_delay(m, x->row.settled, failed ? x->backoff_failures : 0));
}

static void flush_results(Manager *m) {
        Result *list = m->results_head;
        uv_idle_stop(&m->flush_idle);
        if (!list)
                return;
        m->results_head = m->results_tail = NULL;

        int r = store_begin(m->store);
        for (Result *res = list; r >= 0 && res; res = res->next) {
                r = res->row.snapshot_json ? store_put_order(m->store, &res->row)
                                           : store_put_order_keep_snapshot(m->store, &res->row);
                for (size_t i = 0; r >= 0 && i < res->n_events; i++) {
                        const Event *e = res->events[i];
                        const char *type = event_type_to_string(e->type);
                        char *names[METRICS_MAX_WEBHOOKS];
                        size_t n = 0;
                        for (size_t w = 0; w < m->config->n_webhooks && n < ELEMENTSOF(names); w++)
                                if (webhook_wants_event(&m->config->webhooks[w], type))
                                        names[n++] = m->config->webhooks[w].name;
                        r = store_add_event(m->store, e->id, type, e->customer_id, e->order_id, e->time_usec,
                                            res->bodies[i], names, n);
                }
        }
        if (r >= 0)
                r = store_commit(m->store);
        else
                store_rollback(m->store);

        if (r < 0) {
                /* SPEC §5: the poll counts as failed, the old snapshot stays, polling goes on. */
                if (!m->commit_failing)
                        log_error_errno(r, "Cannot save poll results in %s: %s. Polls count as failed until "
                                        "this is fixed; nothing is lost.",
                                        store_path(m->store), store_error(m->store));
                m->commit_failing = true;
                for (Result *res = list, *next; res; res = next) {
                        next = res->next;
                        metrics_observe_poll(POLL_RESULT_FAILED, res->http_status, res->duration_usec);
                        res->order->backoff_failures++;
                        schedule_after_result(m, res->order, true);
                        result_free(res);
                }
                dispatch(m);
                return;
        }
        if (m->commit_failing)
                log_info("Saving poll results works again.");
        m->commit_failing = false;

        size_t n_events = 0;
        for (Result *res = list, *next; res; res = next) {
                next = res->next;
                Order *x = res->order;
                order_row_done(&x->row);
                x->row = res->row;
                res->row = (OrderRow) {};
                if (x->row.snapshot_json) {
                        x->has_snapshot = true;
                        x->row.snapshot_json = mfree(x->row.snapshot_json);
                }
                PollResult pr = res->outcome == OUTCOME_OK          ? POLL_RESULT_OK
                                : res->outcome == OUTCOME_NOT_FOUND ? POLL_RESULT_NOT_FOUND
                                                                    : POLL_RESULT_FAILED;
                metrics_observe_poll(pr, res->http_status, res->duration_usec);
                for (size_t i = 0; i < res->n_events; i++)
                        emit_event(m, res->events[i], res->bodies[i]);
                n_events += res->n_events;
                /* a 404 is the normal state of a new order: polled at its interval, not backed off */
                if (res->outcome == OUTCOME_FAILED)
                        x->backoff_failures++;
                else
                        x->backoff_failures = 0;
                if (m->options.mode == MANAGER_ONCE)
                        once_order_finished(m, x, res->outcome != OUTCOME_OK);
                else
                        order_schedule(m, x, res->delay_usec);
                result_free(res);
        }
        if (n_events > 0 && m->webhooks)
                webhooks_kick(m->webhooks);
        dispatch(m);
}

static void once_check_done(Manager *m);

static void on_flush_check(uv_check_t *c) {
        Manager *m = c->data;
        flush_results(m);
        if (m->options.mode == MANAGER_ONCE)
                once_check_done(m);
}

static void on_flush_idle(uv_idle_t *h) {
}

static void result_queue(Manager *m, Result *res) {
        uv_idle_start(&m->flush_idle, on_flush_idle);
        if (m->results_tail)
                m->results_tail->next = res;
        else
                m->results_head = res;
        m->results_tail = res;
}

static int result_add_event(Result *res, Event *e) {
        Event **ev = realloc(res->events, (res->n_events + 1) * sizeof *ev);
        if (!ev) {
                event_free(e);
                return -ENOMEM;
        }
        res->events = ev;
        res->events[res->n_events++] = e;
        return 0;
}

static int result_render(Manager *m, Result *res) {
        res->bodies = calloc(res->n_events ? res->n_events : 1, sizeof *res->bodies);
        if (!res->bodies)
                return -ENOMEM;
        for (size_t i = 0; i < res->n_events; i++) {
                int r = event_assign_id(res->events[i]);
                if (r < 0)
                        return r;
                res->bodies[i] = event_to_json(res->events[i], m->hostname);
                if (!res->bodies[i])
                        return -ENOMEM;
        }
        return 0;
}

/* Turns what one poll saw into the new row and its events (pure bookkeeping, no I/O). */
static int result_build(Manager *m, Order *x, Outcome outcome, Snapshot *snap, long http_status,
                        const char *reason, const char *code, const char *description, uint64_t duration,
                        Result **ret) {
        const Config *c = m->config;
        uint64_t now = now_realtime_usec();
        Result *res = calloc(1, sizeof *res);
        if (!res)
                return -ENOMEM;
        res->order = x;
        res->outcome = outcome;
        res->duration_usec = duration;
        res->http_status = http_status;
        int r = row_copy(&x->row, &res->row);
        if (r < 0) {
                free(res);
                return r;
        }
        OrderRow *row = &res->row;
        const char *cid = row->customer_id, *oid = row->order_id;
        row->last_poll_usec = now;
        row->last_http_status = http_status;
        free(row->last_error);
        row->last_error = NULL;

        switch (outcome) {
        case OUTCOME_OK: {
                if (row->fetch_failed || row->not_found) {
                        Event *e = event_new(EVENT_ORDER_RECOVERED, cid, oid, now, row->last_success_usec);
                        if (!e || result_add_event(res, e) < 0)
                                goto oom;
                }
                /* snap is NULL when the answer is the one the stored snapshot was made from */
                if (snap) {
                        _cleanup_free_ char *json = snapshot_to_json(snap);
                        _cleanup_(order_row_done) OrderRow stored = {};
                        if (!json)
                                goto oom;
                        if (x->has_snapshot) {
                                r = store_get_order(m->store, cid, oid, &stored);
                                if (r < 0 && r != -ENOENT)
                                        goto fail;
                        }
                        if (!stored.snapshot_json || !streq(stored.snapshot_json, json)) {
                                _cleanup_(snapshot_freep) Snapshot *old = NULL;
                                if (stored.snapshot_json &&
                                    snapshot_from_json(stored.snapshot_json, &old) < 0)
                                        log_warning("Stored snapshot of order '%s' is unreadable; "
                                                    "treating the order as new.",
                                                    oid);
                                Event **ev = NULL;
                                size_t n = 0;
                                r = diff_snapshots(old, snap, c->terminal_statuses, cid, oid, now,
                                                   row->last_success_usec, &ev, &n);
                                if (r < 0)
                                        goto fail;
                                for (size_t i = 0; i < n; i++)
                                        if (result_add_event(res, ev[i]) < 0) {
                                                events_free(ev + i + 1, n - i - 1);
                                                free(ev);
                                                goto oom;
                                        }
                                free(ev);
                                free(row->snapshot_json);
                                row->snapshot_json = TAKE_PTR(json);
                        }
                        row->settled = snapshot_is_settled(snap, c->terminal_statuses);
                }
                row->last_success_usec = now;
                row->consecutive_failures = 0;
                row->fetch_failed = row->not_found = false;
                row->not_found_since_usec = 0;
                break;
        }
        case OUTCOME_NOT_FOUND:
                if (row->not_found_since_usec == 0)
                        row->not_found_since_usec = now;
                row->last_error = strdup_printf("not found (%s)", code ? code : "404");
                if (!row->not_found && now - row->not_found_since_usec >= c->not_found_grace_usec) {
                        Event *e = event_new(EVENT_ORDER_NOT_FOUND, cid, oid, now, row->last_success_usec);
                        if (!e)
                                goto oom;
                        e->code = strdup(code ? code : "404");
                        e->description = strdup(description ? description : "");
                        if (!e->code || !e->description || result_add_event(res, e) < 0)
                                goto oom;
                        row->not_found = true;
                }
                break;
        case OUTCOME_FAILED:
                row->consecutive_failures++;
                row->last_error = strdup(reason ? reason : "unknown");
                if (!row->fetch_failed && row->consecutive_failures >= c->failure_threshold) {
                        Event *e = event_new(EVENT_ORDER_FETCH_FAILED, cid, oid, now, row->last_success_usec);
                        if (!e)
                                goto oom;
                        e->http_status = http_status;
                        e->reason = strdup(reason ? reason : "unknown");
                        if (!e->reason || result_add_event(res, e) < 0)
                                goto oom;
                        row->fetch_failed = true;
                }
                break;
        }
        res->delay_usec = next_delay(m, row->settled, outcome == OUTCOME_FAILED ? x->backoff_failures + 1 : 0);
        row->next_poll_usec = res->delay_usec == USEC_INFINITY ? 0 : now + res->delay_usec;
        r = result_render(m, res);
        if (r < 0)
                goto fail;
        *ret = res;
        return 0;
oom:
        r = -ENOMEM;
fail:
        result_free(res);
        return r;
}

/* ---- fetching ---- */

static void fetch_free(Fetch *f) {
        if (!f)
                return;
        if (f->prev)
                f->prev->next = f->next;
        else if (f->m->fetches == f)
                f->m->fetches = f->next;
        if (f->next)
                f->next->prev = f->prev;
        snapshot_free(f->snap);
        free(f->url);
        if (f->headers)
                for (char **h = f->headers; *h; h++)
                        free(*h);
        free(f->headers);
        if (f->token) {
                explicit_bzero(f->token, strlen(f->token));
                free(f->token);
        }
        free(f);
}

static void fetch_wait(Manager *m, Fetch *f) {
        f->next_waiting = NULL;
        if (m->waiting_tail)
                m->waiting_tail->next_waiting = f;
        else
                m->waiting_head = f;
        m->waiting_tail = f;
}

static void fetch_finish(Manager *m, Fetch *f, Outcome outcome, long http_status, const char *reason,
                         const char *code, const char *description) {
        Order *x = f->order;
        x->in_flight = false;
        m->in_flight--;
        uint64_t duration = now_monotonic_usec() - f->start_usec;

        if (outcome == OUTCOME_FAILED)
                log_warning("Poll of order '%s' (customer '%s') failed: %s", x->row.order_id,
                            x->row.customer_id, reason);
        Result *res = NULL;
        int r = result_build(m, x, outcome, f->snap, http_status, reason, code, description, duration, &res);
        if (r < 0) {
                log_error_errno(r, "Cannot process the poll of order '%s': %m", x->row.order_id);
                x->backoff_failures++;
                schedule_after_result(m, x, true);
        } else {
                if (outcome == OUTCOME_OK) {
                        res->row.has_answer_digest = f->has_answer_digest;
                        memcpy(res->row.answer_digest, f->answer_digest, sizeof f->answer_digest);
                }
                result_queue(m, res);
        }
        fetch_free(f);
}

static void fetch_throttled(Manager *m, Fetch *f, int64_t retry_after_sec) {
        Order *x = f->order;
        uint64_t now = now_monotonic_usec();
        metrics.rate_limited_total++;
        metrics_observe_poll(POLL_RESULT_RATE_LIMITED, 429, now - f->start_usec);
        /* 429s to requests sent before the pause began say nothing new: one pause, one log line */
        if (m->budget.paused_until <= now) {
                budget_throttle(&m->budget, now,
                                retry_after_sec > 0 ? (uint64_t) retry_after_sec * USEC_PER_SEC : 0);
                log_warning("Partner Center throttles requests (HTTP 429); pausing all polls for %llu s.",
                            (unsigned long long) ((m->budget.paused_until - now + USEC_PER_SEC - 1) /
                                                  USEC_PER_SEC));
        }
        if (m->options.mode == MANAGER_ONCE && ++x->throttled > ONCE_MAX_THROTTLED) {
                fetch_finish(m, f, OUTCOME_FAILED, 429, "rate limited (HTTP 429) too often", NULL, NULL);
                return;
        }
        /* The poll starts over when the pause ends: a continuation token may not outlive it. */
        x->in_flight = false;
        m->in_flight--;
        x->keep_request_id = true;
        order_enqueue(m, x, now);
        fetch_free(f);
}

static char *error_reason(long status, const HttpResponse *resp, char **ret_code, char **ret_description) {
        char *code = NULL, *desc = NULL;
        (void) pc_parse_error(resp->body, resp->body_size, &code, &desc);
        char *reason = desc ? strdup_printf("HTTP %ld: %s", status, desc) : strdup_printf("HTTP %ld", status);
        if (ret_code)
                *ret_code = code;
        else
                free(code);
        if (ret_description)
                *ret_description = desc;
        else
                free(desc);
        return reason;
}

/* What an answer means depends on its bytes and on the terminal statuses (for "settled"); the
 * digest covers both, so a changed configuration never reuses an old interpretation. */
static bool answer_digest(Manager *m, const char *body, size_t size, uint8_t *ret, size_t ret_size) {
        static const char version[] = "provwatch answer 1";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        if (!m->sha256 || !m->digest_ctx || EVP_DigestInit_ex(m->digest_ctx, m->sha256, NULL) != 1 ||
            EVP_DigestUpdate(m->digest_ctx, version, sizeof version) != 1)
                return false;
        for (char **t = m->config->terminal_statuses; t && *t; t++)
                if (EVP_DigestUpdate(m->digest_ctx, *t, strlen(*t) + 1) != 1)
                        return false;
        if (EVP_DigestUpdate(m->digest_ctx, "", 1) != 1 || EVP_DigestUpdate(m->digest_ctx, body, size) != 1 ||
            EVP_DigestFinal_ex(m->digest_ctx, md, &n) != 1 || n < ret_size)
                return false;
        memcpy(ret, md, ret_size);
        return true;
}

/* Steady state is the same answer again and again: a first page whose digest matches the stored one
 * needs no parsing, no snapshot and no diff. Records the digest of a first page in f either way. */
static bool answer_seen_before(Manager *m, Fetch *f, const HttpResponse *resp) {
        const OrderRow *row = &f->order->row;
        if (f->pages != 1)
                return false;
        f->has_answer_digest = answer_digest(m, resp->body, resp->body_size, f->answer_digest,
                                             sizeof f->answer_digest);
        return f->has_answer_digest && row->has_answer_digest && f->order->has_snapshot &&
               memcmp(row->answer_digest, f->answer_digest, sizeof f->answer_digest) == 0;
}

static void on_page(const HttpResponse *resp, void *userdata) {
        Fetch *f = userdata;
        Manager *m = f->m;
        f->request = NULL;
        log_debug("Order '%s': HTTP %ld (%s), %zu bytes.", f->order->row.order_id, resp->status,
                  resp->result == CURLE_OK ? "complete" : resp->error, resp->body_size);

        metrics.http_requests_total[resp->status >= 0 && resp->status < 600 ? resp->status : 0]++;
        if (resp->status != 429 && resp->result == CURLE_OK)
                budget_success(&m->budget, now_monotonic_usec());

        if (resp->result != CURLE_OK) {
                _cleanup_free_ char *reason = resp->too_large
                                                      ? strdup_printf("answer larger than %u bytes", PC_MAX_BODY)
                                                      : strdup_printf("transport error: %s", resp->error);
                f->order->keep_request_id = resp->result == CURLE_OPERATION_TIMEDOUT;
                fetch_finish(m, f, OUTCOME_FAILED, resp->status, reason ? reason : "transport error", NULL,
                             NULL);
        } else if (resp->status == 200 && answer_seen_before(m, f, resp)) {
                snapshot_free(f->snap);
                f->snap = NULL;
                fetch_finish(m, f, OUTCOME_OK, 200, NULL, NULL, NULL);
        } else if (resp->status == 200) {
                PcPage page = {};
                const char *why = NULL;
                int r = pc_parse_provisioning_page(resp->body, resp->body_size, f->snap, &page, &why);
                if (r < 0) {
                        _cleanup_free_ char *reason = strdup_printf("unexpected answer: %s", why ? why : "malformed");
                        fetch_finish(m, f, OUTCOME_FAILED, 200, reason ? reason : "unexpected answer", NULL, NULL);
                } else if (page.next_uri && f->pages >= MAX_PAGES) {
                        fetch_finish(m, f, OUTCOME_FAILED, 200, "more than 100 pages", NULL, NULL);
                } else if (page.next_uri) {
                        f->has_answer_digest = false; /* only single-page answers are remembered */
                        free(f->url);
                        f->url = strdup_printf("%s/v%s%s", m->config->endpoint, m->config->api_version,
                                               page.next_uri);
                        if (f->headers)
                                for (char **h = f->headers; *h; h++)
                                        free(*h);
                        free(f->headers);
                        f->headers = TAKE_PTR(page.next_headers);
                        f->retried_401 = false;
                        if (!f->url)
                                fetch_finish(m, f, OUTCOME_FAILED, 200, "out of memory", NULL, NULL);
                        else {
                                fetch_wait(m, f);
                                m->in_flight--; /* waits for a slot like any request */
                        }
                } else {
                        snapshot_finish(f->snap);
                        fetch_finish(m, f, OUTCOME_OK, 200, NULL, NULL, NULL);
                }
                pc_page_done(&page);
        } else if (resp->status == 401 && !f->retried_401) {
                auth_reject(m->auth, f->token);
                f->retried_401 = true;
                fetch_wait(m, f);
                m->in_flight--;
        } else if (resp->status == 404) {
                _cleanup_free_ char *code = NULL, *desc = NULL;
                _cleanup_free_ char *reason = error_reason(404, resp, &code, &desc);
                fetch_finish(m, f, OUTCOME_NOT_FOUND, 404, reason, code, desc);
        } else if (resp->status == 429) {
                fetch_throttled(m, f, resp->retry_after_sec);
        } else {
                _cleanup_free_ char *reason = error_reason(resp->status, resp, NULL, NULL);
                f->order->keep_request_id = false;
                fetch_finish(m, f, OUTCOME_FAILED, resp->status, reason ? reason : "HTTP error", NULL, NULL);
        }
        dispatch(m);
}

static int fetch_send(Manager *m, Fetch *f, const char *token) {
        char correlation[37];
        int r = uuid_random(correlation);
        if (r < 0)
                return r;
        _cleanup_free_ char *auth = strdup_printf("Authorization: Bearer %s", token);
        _cleanup_free_ char *corr = strdup_printf("MS-CorrelationId: %s", correlation);
        _cleanup_free_ char *reqid = strdup_printf("MS-RequestId: %s", f->order->request_id);
        _cleanup_free_ char *locale = strdup_printf("X-Locale: %s", m->config->locale);
        if (!auth || !corr || !reqid || !locale)
                return -ENOMEM;
        const char *headers[16];
        size_t n = 0;
        headers[n++] = auth;
        headers[n++] = "Accept: application/json";
        headers[n++] = corr;
        headers[n++] = reqid;
        headers[n++] = locale;
        headers[n++] = "User-Agent: provwatch/" PROVWATCH_VERSION;
        for (char **h = f->headers; h && *h && n < ELEMENTSOF(headers) - 1; h++)
                headers[n++] = *h;
        headers[n] = NULL;

        free(f->token);
        f->token = strdup(token);
        if (!f->token)
                return -ENOMEM;
        HttpRequestSpec spec = {
                .method = "GET",
                .url = f->url,
                .headers = headers,
                .timeout_usec = m->config->timeout_usec,
                .ca_file = m->config->ca_file,
                .max_body = PC_MAX_BODY,
        };
        r = http_submit(m->http, &spec, on_page, f, &f->request);
        explicit_bzero(auth, strlen(auth));
        if (r < 0)
                return r;
        f->pages++;
        m->in_flight++;
        log_debug("Order '%s': GET %s", f->order->row.order_id, f->url);
        budget_record(&m->budget, now_monotonic_usec());
        return 0;
}

static int fetch_start(Manager *m, Order *x, const char *token) {
        Fetch *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->m = m;
        f->order = x;
        f->start_usec = now_monotonic_usec();
        f->next = m->fetches;
        if (m->fetches)
                m->fetches->prev = f;
        m->fetches = f;
        f->snap = snapshot_new();
        f->url = pc_provisioning_url(m->config->endpoint, m->config->api_version, x->row.customer_id,
                                     x->row.order_id);
        if (!f->snap || !f->url) {
                fetch_free(f);
                return -ENOMEM;
        }
        if (!x->keep_request_id || !x->request_id[0]) {
                int r = uuid_random(x->request_id);
                if (r < 0) {
                        fetch_free(f);
                        return r;
                }
        }
        x->keep_request_id = false;
        x->in_flight = true;
        int r = fetch_send(m, f, token);
        if (r < 0) {
                x->in_flight = false;
                fetch_free(f);
                return r;
        }
        return 0;
}

static void on_shutdown_timer(uv_timer_t *t);

/* once: auth retries a failed token request with backoff for as long as it takes, which would keep
 * `once` from ever exiting; what is not yet polled fails now instead (the next run tries again). */
static void once_give_up_without_token(Manager *m, const char *problem) {
        _cleanup_free_ char *reason = strdup_printf("no access token: %s", problem);
        for (Fetch *f; (f = m->waiting_head);) {
                m->waiting_head = f->next_waiting;
                if (!m->waiting_head)
                        m->waiting_tail = NULL;
                m->in_flight++; /* fetch_finish() counts it out again */
                fetch_finish(m, f, OUTCOME_FAILED, 0, reason ? reason : "no access token", NULL, NULL);
        }
        for (size_t q = 0; q < ELEMENTSOF(m->queues); q++)
                for (HeapItem *hi; (hi = heap_peek(&m->queues[q]));) {
                        Order *x = container_of(hi, Order, hi);
                        order_dequeue(m, x);
                        log_warning("Order '%s' (customer '%s') not polled: %s", x->row.order_id,
                                    x->row.customer_id, reason ? reason : "no access token");
                        once_order_finished(m, x, true);
                }
}

/* ---- the dispatcher: the only place that starts requests ---- */

static void on_dispatch_timer(uv_timer_t *t) {
        dispatch(t->data);
}

static void dispatch(Manager *m) {
        if (m->stopping) {
                if (m->in_flight == 0 && !uv_is_closing((uv_handle_t *) &m->shutdown_timer))
                        uv_timer_start(&m->shutdown_timer, on_shutdown_timer, 0, 0);
                return;
        }
        if (m->polling_done)
                return;
        uv_timer_stop(&m->dispatch_timer);

        while (m->in_flight < m->config->concurrency) {
                uint64_t now = now_monotonic_usec();
                Order *next = NULL;
                bool continuation = m->waiting_head != NULL;
                if (!continuation) {
                        HeapItem *u = heap_peek(&m->queues[QUEUE_UNSETTLED]);
                        HeapItem *s = heap_peek(&m->queues[QUEUE_SETTLED]);
                        if (u && u->due <= now)
                                next = container_of(u, Order, hi);
                        else if (s && s->due <= now)
                                next = container_of(s, Order, hi);
                        else {
                                uint64_t due = USEC_INFINITY;
                                if (u)
                                        due = u->due;
                                if (s && s->due < due)
                                        due = s->due;
                                if (due != USEC_INFINITY)
                                        uv_timer_start(&m->dispatch_timer, on_dispatch_timer,
                                                       (due - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, 0);
                                return;
                        }
                }
                uint64_t slot = budget_next_slot(&m->budget, now);
                if (slot > now) {
                        uv_timer_start(&m->dispatch_timer, on_dispatch_timer,
                                       (slot - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, 0);
                        return;
                }
                const char *token = auth_token(m->auth);
                if (!token) {
                        if (m->options.mode == MANAGER_ONCE && auth_problem(m->auth))
                                once_give_up_without_token(m, auth_problem(m->auth));
                        else if (m->config->auth == AUTH_TOKEN_FILE)
                                /* nobody calls back when the file changes: look again */
                                uv_timer_start(&m->dispatch_timer, on_dispatch_timer, TOKEN_FILE_RECHECK_MSEC, 0);
                        return; /* auth calls back when a token is there */
                }

                int r;
                if (continuation) {
                        Fetch *f = m->waiting_head;
                        m->waiting_head = f->next_waiting;
                        if (!m->waiting_head)
                                m->waiting_tail = NULL;
                        r = fetch_send(m, f, token);
                        if (r < 0) {
                                m->in_flight++;
                                fetch_finish(m, f, OUTCOME_FAILED, 0, "cannot send the request", NULL, NULL);
                        }
                } else {
                        order_dequeue(m, next);
                        r = fetch_start(m, next, token);
                        if (r < 0) {
                                log_error_errno(r, "Cannot start polling order '%s': %m", next->row.order_id);
                                next->backoff_failures++;
                                schedule_after_result(m, next, true);
                        }
                }
        }
}

static void on_auth_changed(void *userdata) {
        dispatch(userdata);
}

/* ---- once ---- */

static void manager_stop(Manager *m);

static void once_check_done(Manager *m) {
        if (!m->polling_done || m->results_head || m->stopping)
                return;
        /* deliveries follow the normal retry rules until once-timeout: stop early only when no
         * attempt is left that could happen before it */
        if (!m->webhooks || webhooks_due_before(m->webhooks, m->once_deadline_usec) == 0)
                manager_stop(m);
}

static void on_webhooks_idle(void *userdata) {
        Manager *m = userdata;
        if (m->options.mode == MANAGER_ONCE)
                once_check_done(m);
}

static void on_once_timeout(uv_timer_t *t) {
        Manager *m = t->data;
        log_warning("Webhook delivery did not finish within once-timeout; undelivered events stay queued.");
        manager_stop(m);
}

static void once_order_finished(Manager *m, Order *x, bool failed) {
        if (x->once_done)
                return;
        x->once_done = true;
        x->once_failed = failed;
        if (failed)
                m->once_failures = true;
        if (--m->once_remaining > 0)
                return;
        m->polling_done = true;
        uint64_t timeout = 30 * USEC_PER_SEC;
        for (size_t i = 0; i < m->config->n_webhooks; i++)
                if (i == 0 || m->config->webhooks[i].once_timeout_usec > timeout)
                        timeout = m->config->webhooks[i].once_timeout_usec;
        m->once_deadline_usec = now_realtime_usec() + timeout;
        uv_timer_start(&m->once_timer, on_once_timeout, timeout / USEC_PER_MSEC, 0);
        if (m->webhooks)
                webhooks_kick(m->webhooks);
        /* the check handle flushes the last results, then once_check_done() runs from there */
}

/* ---- configuration: orders and reload ---- */

static bool origin_is_config_file(const Config *c, const OrderRef *o) {
        size_t n = strlen(c->path);
        return o->origin && strncmp(o->origin, c->path, n) == 0 && o->origin[n] == ':';
}

/* Makes exactly the given orders the watched ones; others stay in memory (and in the store). */
static int apply_orders(Manager *m, const OrderRef *orders, size_t n_orders, const OrderRef *more, size_t n_more) {
        uint64_t now_mono = now_monotonic_usec(), now_rt = now_realtime_usec();
        size_t added = 0, removed = 0;

        /* mark = watched before and not (yet) listed again */
        for (size_t i = 0; i < m->hash_size; i++)
                for (Order *x = m->hash[i]; x; x = x->hash_next)
                        x->mark = x->watched;

        for (size_t i = 0; i < n_orders + n_more; i++) {
                const OrderRef *o = i < n_orders ? &orders[i] : &more[i - n_orders];
                Order *x = order_find(m, o->customer_id, o->order_id);
                if (!x) {
                        x = order_add(m, o->customer_id, o->order_id);
                        if (!x)
                                return log_oom();
                }
                if (!x->watched) {
                        x->watched = true;
                        added++;
                }
                x->mark = false;
        }
        m->n_watched = 0;
        for (size_t i = 0; i < m->hash_size; i++)
                for (Order *x = m->hash[i]; x; x = x->hash_next) {
                        if (x->mark) {
                                x->watched = false;
                                x->mark = false;
                                order_dequeue(m, x);
                                removed++;
                        }
                        if (!x->watched)
                                continue;
                        m->n_watched++;
                        if (!x->in_flight && x->queue == QUEUE_NONE)
                                order_enqueue(m, x, order_initial_due(m, x, now_mono, now_rt));
                }
        if (added || removed)
                log_info("Watching %zu orders (%zu added, %zu removed).", m->n_watched, added, removed);
        return 0;
}

/* Once applied, the orders read from orders-dir are needed again only when that directory changes,
 * and then it is read afresh: keeping them would hold a second copy of a long list for good. */
static void config_forget_orders_dir_orders(Manager *m) {
        Config *c = m->config;
        size_t n = 0;
        for (size_t i = 0; i < c->n_orders; i++)
                n += origin_is_config_file(c, &c->orders[i]);
        if (n == c->n_orders)
                return;
        OrderRef *own = calloc(n ? n : 1, sizeof *own);
        if (!own)
                return; /* merely more memory */
        n = 0;
        for (size_t i = 0; i < c->n_orders; i++)
                if (origin_is_config_file(c, &c->orders[i])) {
                        own[n++] = c->orders[i];
                        c->orders[i] = (OrderRef) {};
                }
        order_refs_free(c->orders, c->n_orders);
        c->orders = own;
        c->n_orders = n;
}

static int manager_apply_config_orders(Manager *m, const OrderRef *dir_orders, size_t n_dir) {
        const Config *c = m->config;
        if (!dir_orders)
                return apply_orders(m, c->orders, c->n_orders, NULL, 0);
        /* orders from the config file itself, plus a fresh reading of orders-dir */
        OrderRef *own = calloc(c->n_orders ? c->n_orders : 1, sizeof *own);
        if (!own)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < c->n_orders; i++)
                if (origin_is_config_file(c, &c->orders[i]))
                        own[n++] = c->orders[i];
        int r = apply_orders(m, own, n, dir_orders, n_dir);
        free(own);
        return r;
}

static void reschedule_all(Manager *m) {
        uint64_t now_mono = now_monotonic_usec(), now_rt = now_realtime_usec();
        for (size_t i = 0; i < m->hash_size; i++)
                for (Order *x = m->hash[i]; x; x = x->hash_next)
                        if (x->watched && !x->in_flight)
                                order_enqueue(m, x, order_initial_due(m, x, now_mono, now_rt));
}

/* The configuration parser reports problems on a FILE*; at run time each line becomes a log entry. */
typedef struct ErrorLog {
        FILE *f;
        char *text;
        size_t size;
} ErrorLog;

static int error_log_open(ErrorLog *el) {
        *el = (ErrorLog) {};
        el->f = open_memstream(&el->text, &el->size);
        return el->f ? 0 : -ENOMEM;
}

static void error_log_flush(ErrorLog *el) {
        if (el->f)
                fclose(el->f);
        char *save = NULL;
        for (char *line = el->text ? strtok_r(el->text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
                log_error("%s", line);
        free(el->text);
        *el = (ErrorLog) {};
}

static void orders_dir_start_watch(Manager *m);

static void on_orders_dir_settled(uv_timer_t *t) {
        Manager *m = t->data;
        ErrorLog el;
        OrderRef *orders = NULL;
        size_t n = 0;
        int r = error_log_open(&el);
        if (r >= 0)
                r = config_read_orders_dir(m->config->orders_dir, el.f, &orders, &n);
        error_log_flush(&el);
        if (r < 0) {
                log_error_errno(r, "Not applying the changed orders in '%s': %m", m->config->orders_dir);
        } else {
                r = manager_apply_config_orders(m, orders, n);
                check_budget(m);
                dispatch(m);
        }
        order_refs_free(orders, n);
}

static void on_orders_dir_change(uv_fs_event_t *h, const char *filename, int events, int status) {
        Manager *m = h->data;
        if (filename && strlen(filename) > 0) {
                size_t l = strlen(filename);
                if (l < 5 || !streq(filename + l - 5, ".list"))
                        return;
        }
        uv_timer_start(&m->orders_dir_timer, on_orders_dir_settled, ORDERS_DIR_SETTLE_MSEC, 0);
}

static void orders_dir_start_watch(Manager *m) {
        if (m->orders_dir_watching) {
                uv_fs_event_stop(&m->orders_dir_watch);
                m->orders_dir_watching = false;
        }
        if (!m->config->orders_dir || m->options.mode == MANAGER_ONCE)
                return;
        if (access(m->config->orders_dir, F_OK) < 0 && errno == ENOENT) {
                log_debug("orders-dir '%s' does not exist; not watching it.", m->config->orders_dir);
                return;
        }
        int r = uv_fs_event_start(&m->orders_dir_watch, on_orders_dir_change, m->config->orders_dir, 0);
        if (r < 0)
                log_warning("Cannot watch orders-dir '%s' (%s); changes there need a reload.", m->config->orders_dir,
                            uv_strerror(r));
        else
                m->orders_dir_watching = true;
}

static void log_config_warnings(const Config *c) {
        for (char **w = c->warnings; w && *w; w++)
                log_warning("%s", *w);
}

static void manager_reload(Manager *m) {
        char buf[64];
        snprintf(buf, sizeof buf, "MONOTONIC_USEC=%llu", (unsigned long long) now_monotonic_usec());
        sd_notifyf(0, "RELOADING=1\n%s", buf);
        log_info("Reloading configuration from '%s'.", m->options.config_path);

        ErrorLog el;
        Config *c = NULL;
        int r = error_log_open(&el);
        if (r >= 0)
                r = config_load(m->options.config_path, el.f, &c);
        error_log_flush(&el);
        if (r < 0) {
                log_error("The new configuration is invalid; keeping the one in force.");
                sd_notify(0, "READY=1");
                return;
        }
        if (!streq(c->state_directory, m->config->state_directory))
                log_warning("[state] directory changed; this takes a restart. Keeping '%s'.",
                            m->config->state_directory);
        log_config_warnings(c);

        Config *old = m->config;
        m->config = c;
        free(c->state_directory);
        c->state_directory = strdup(old->state_directory);
        auth_set_config(m->auth, c);
        if (m->webhooks)
                webhooks_set_config(m->webhooks, c);
        if (budget_set_rpm(&m->budget, c->max_requests_per_minute) < 0)
                log_oom();
        m->journal = c->journal == JOURNAL_YES || (c->journal == JOURNAL_AUTO && journal_available());
        apply_orders(m, c->orders, c->n_orders, NULL, 0);
        config_forget_orders_dir_orders(m);
        reschedule_all(m);
        orders_dir_start_watch(m);
        config_free(old);
        m->budget_short_logged = false;
        check_budget(m);
        update_status(m);
        sd_notify(0, "READY=1");
        dispatch(m);
}

/* ---- signals, notify, shutdown ---- */

static void close_handle(uv_handle_t *h) {
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

static void on_shutdown_timer(uv_timer_t *t) {
        Manager *m = t->data;
        /* Abandon what is still in flight; its orders keep their old state. */
        flush_results(m);
        if (m->webhooks) {
                m->undelivered = webhooks_queued(m->webhooks);
                webhooks_free(m->webhooks);
                m->webhooks = NULL;
        }
        if (m->auth) {
                auth_free(m->auth);
                m->auth = NULL;
        }
        /* abandon polls in flight or waiting for their next page: their orders keep the old state */
        while (m->fetches) {
                Fetch *f = m->fetches;
                if (f->request)
                        http_cancel(m->http, f->request);
                f->order->in_flight = false;
                fetch_free(f);
        }
        m->waiting_head = m->waiting_tail = NULL;
        m->in_flight = 0;
        http_free(m->http);
        m->http = NULL;
        update_status(m);
        close_handle((uv_handle_t *) &m->dispatch_timer);
        close_handle((uv_handle_t *) &m->status_timer);
        close_handle((uv_handle_t *) &m->watchdog_timer);
        close_handle((uv_handle_t *) &m->shutdown_timer);
        close_handle((uv_handle_t *) &m->orders_dir_timer);
        close_handle((uv_handle_t *) &m->once_timer);
        close_handle((uv_handle_t *) &m->flush_check);
        close_handle((uv_handle_t *) &m->flush_idle);
        close_handle((uv_handle_t *) &m->sig_hup);
        close_handle((uv_handle_t *) &m->sig_term);
        close_handle((uv_handle_t *) &m->sig_int);
        close_handle((uv_handle_t *) &m->orders_dir_watch);
}

static void manager_stop(Manager *m) {
        if (m->stopping)
                return;
        m->stopping = true;
        uv_timer_stop(&m->dispatch_timer);
        if (m->webhooks)
                webhooks_stop(m->webhooks);
        if (m->options.mode == MANAGER_RUN)
                sd_notify(0, "STOPPING=1\nSTATUS=stopping");
        /* give requests in flight a moment to finish, then abandon them */
        uv_timer_start(&m->shutdown_timer, on_shutdown_timer,
                       m->in_flight > 0 && m->options.mode == MANAGER_RUN ? SHUTDOWN_GRACE_MSEC : 0, 0);
}

static void on_signal(uv_signal_t *s, int signum) {
        Manager *m = s->data;
        if (signum == SIGHUP) {
                if (!m->stopping)
                        manager_reload(m);
                return;
        }
        log_info("Received %s, stopping.", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        manager_stop(m);
}

static void on_status_timer(uv_timer_t *t) {
        Manager *m = t->data;
        update_status(m);
        check_budget(m);
}

static void on_watchdog(uv_timer_t *t) {
        sd_notify(0, "WATCHDOG=1");
}

/* ---- life cycle ---- */

static int load_row(const OrderRow *row, void *userdata) {
        Manager *m = userdata;
        Order *x = order_add(m, row->customer_id, row->order_id);
        if (!x)
                return -ENOMEM;
        char *customer_id = x->row.customer_id, *order_id = x->row.order_id;
        x->row = *row;
        x->row.customer_id = customer_id;
        x->row.order_id = order_id;
        x->row.snapshot_json = NULL; /* see has_snapshot */
        x->row.last_error = row->last_error ? strdup(row->last_error) : NULL;
        x->has_snapshot = row->snapshot_json != NULL;
        return row->last_error && !x->row.last_error ? -ENOMEM : 0;
}

int manager_new(uv_loop_t *loop, Config *config, const ManagerOptions *options, Manager **ret) {
        Manager *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->loop = loop;
        m->config = config;
        m->options = *options;
        if (gethostname(m->hostname, sizeof m->hostname - 1) < 0)
                snprintf(m->hostname, sizeof m->hostname, "localhost");
        m->journal = config->journal == JOURNAL_YES || (config->journal == JOURNAL_AUTO && journal_available());
        log_config_warnings(config);

        uv_timer_init(loop, &m->dispatch_timer);
        uv_timer_init(loop, &m->status_timer);
        uv_timer_init(loop, &m->watchdog_timer);
        uv_timer_init(loop, &m->shutdown_timer);
        uv_timer_init(loop, &m->orders_dir_timer);
        uv_timer_init(loop, &m->once_timer);
        uv_check_init(loop, &m->flush_check);
        uv_idle_init(loop, &m->flush_idle);
        uv_signal_init(loop, &m->sig_hup);
        uv_signal_init(loop, &m->sig_term);
        uv_signal_init(loop, &m->sig_int);
        uv_fs_event_init(loop, &m->orders_dir_watch);
        m->dispatch_timer.data = m->status_timer.data = m->watchdog_timer.data = m;
        m->shutdown_timer.data = m->orders_dir_timer.data = m->once_timer.data = m;
        m->flush_check.data = m->flush_idle.data = m->sig_hup.data = m->sig_term.data = m->sig_int.data = m;
        m->orders_dir_watch.data = m;
        *ret = m; /* from here on manager_free() cleans up */

        /* without a digest every answer is parsed, which is merely slower */
        m->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        m->digest_ctx = EVP_MD_CTX_new();

        int r = budget_init(&m->budget, config->max_requests_per_minute);
        if (r < 0)
                return log_oom();
        r = store_open(config->state_directory, STORE_READ_WRITE, &m->store);
        if (r < 0)
                return log_error_errno(r, "Cannot open the state store in '%s': %m", config->state_directory);
        r = store_foreach_order(m->store, load_row, m);
        if (r < 0)
                return log_error_errno(r, "Cannot load state from '%s': %s", store_path(m->store),
                                       store_error(m->store));
        r = http_new(loop, &m->http);
        if (r < 0)
                return log_error_errno(r, "Cannot set up HTTP: %m");
        r = auth_new(loop, m->http, m->store, config, on_auth_changed, m, &m->auth);
        if (r < 0)
                return log_error_errno(r, "Cannot set up authentication: %m");
        r = webhooks_new(loop, m->http, m->store, config, m->hostname, &m->webhooks);
        if (r < 0)
                return log_error_errno(r, "Cannot set up webhooks: %m");
        webhooks_set_idle_callback(m->webhooks, on_webhooks_idle, m);
        r = apply_orders(m, config->orders, config->n_orders, NULL, 0);
        if (r < 0)
                return r;
        config_forget_orders_dir_orders(m);
        m->once_remaining = m->n_watched;
        return 0;
}

int manager_run(Manager *m) {
        uv_check_start(&m->flush_check, on_flush_check);
        uv_signal_start(&m->sig_term, on_signal, SIGTERM);
        uv_signal_start(&m->sig_int, on_signal, SIGINT);

        if (m->options.mode == MANAGER_RUN) {
                uv_signal_start(&m->sig_hup, on_signal, SIGHUP);
                orders_dir_start_watch(m);
                uint64_t wd = 0;
                if (sd_watchdog_enabled(0, &wd) > 0 && wd > 0)
                        uv_timer_start(&m->watchdog_timer, on_watchdog, wd / 2 / USEC_PER_MSEC,
                                       wd / 2 / USEC_PER_MSEC);
                uv_timer_start(&m->status_timer, on_status_timer, STATUS_PERIOD_MSEC, STATUS_PERIOD_MSEC);
                check_budget(m);
                update_status(m);
                sd_notify(0, "READY=1");
                log_info("Watching %zu orders; state in '%s'.", m->n_watched, store_path(m->store));
        } else if (m->n_watched == 0) {
                log_info("No orders to poll.");
                m->once_remaining = 1;
                once_order_finished(m, &(Order) {}, false);
        }
        dispatch(m);
        uv_run(m->loop, UV_RUN_DEFAULT);

        if (m->options.mode == MANAGER_ONCE) {
                if (m->undelivered > 0)
                        log_warning("%llu webhook events are still queued for the next run.",
                                    (unsigned long long) m->undelivered);
                return m->once_failures || m->undelivered > 0 ? 1 : 0;
        }
        return m->exit_status;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* manager_run() closed the handles; after a failed manager_new() they are closed here. */
        if (!m->stopping) {
                m->stopping = true;
                on_shutdown_timer(&m->shutdown_timer);
                uv_run(m->loop, UV_RUN_DEFAULT);
        }
        for (Result *res = m->results_head, *n; res; res = n) {
                n = res->next;
                result_free(res);
        }
        heap_done(&m->queues[0]);
        heap_done(&m->queues[1]);
        for (size_t i = 0; i < m->hash_size; i++)
                for (Order *x = m->hash[i], *n; x; x = n) {
                        n = x->hash_next;
                        order_free(x);
                }
        free(m->hash);
        budget_done(&m->budget);
        EVP_MD_CTX_free(m->digest_ctx);
        EVP_MD_free(m->sha256);
        store_free(m->store);
        config_free(m->config);
        free(m);
        return NULL;
}
