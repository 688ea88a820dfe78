/* SPDX-License-Identifier: MIT */
/* The daemon's loop and its wiring: what to poll next (pulled by the Partner Center client when a
 * request may go out), a poll's answer through the order state machine into the outbox, the commit
 * once per loop iteration, and the daemon's plumbing: `once`, reload, the orders-dir watch, signals,
 * sd_notify and metrics. */
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "auth.h"
#include "http.h"
#include "journal.h"
#include "log.h"
#include "manager.h"
#include "metrics.h"
#include "order-state.h"
#include "orders.h"
#include "outbox.h"
#include "pc-client.h"
#include "poller.h"
#include "store.h"
#include "webhook.h"

#define FAILURE_BACKOFF_BASE_USEC (10 * USEC_PER_SEC)
#define FAILURE_BACKOFF_CAP_USEC (15 * 60 * USEC_PER_SEC)
#define ONCE_MAX_THROTTLED 5
#define SHUTDOWN_GRACE_MSEC 3000
#define STATUS_PERIOD_MSEC 5000
#define ORDERS_DIR_SETTLE_MSEC 200

struct Manager {
        uv_loop_t *loop;
        Config *config;
        ManagerOptions options;
        char hostname[256];
        Metrics metrics;

        Store *store;
        Http *http;
        Auth *auth;
        PcClient *client;
        Poller *poller;
        Outbox *outbox;
        Webhooks *webhooks;
        Orders orders;

        uv_timer_t status_timer;
        uv_timer_t watchdog_timer;
        uv_timer_t shutdown_timer;
        uv_timer_t orders_dir_timer;
        uv_timer_t once_timer;
        uv_check_t flush_check;
        uv_idle_t flush_idle; /* active while results wait: keeps the loop from blocking before the check */
        uv_signal_t sig_hup, sig_term, sig_int;
        uv_fs_event_t orders_dir_watch;
        bool orders_dir_watching;

        bool stopping;
        bool budget_short_logged;
        bool commit_failing;
        int exit_status;

        /* once */
        bool polling_done;
        size_t once_remaining;
        bool once_failures;
        uint64_t undelivered;
        uint64_t once_deadline_usec; /* realtime: when once stops waiting for webhooks */
};

/* One poll of one order, from its start until its result is committed (or dropped). */
typedef struct PollJob {
        Manager *m;
        Order *order;
        PollOutcome outcome;
        uint64_t duration_usec;
        uint64_t delay_usec; /* until the next poll, decided with the row so that the row can say it */
} PollJob;

static void manager_stop(Manager *m);
static void on_shutdown_timer(uv_timer_t *t);
static void once_order_finished(Manager *m, Order *x, bool failed);

/* ---- scheduling ---- */

/* How long until the next regular poll; USEC_INFINITY when the order is not polled again. */
static uint64_t order_interval(const Manager *m, bool settled) {
        if (!settled)
                return m->config->interval_usec;
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
                once_order_finished(m, x, failed);
        else
                orders_enqueue(&m->orders, x, delay == USEC_INFINITY ? USEC_INFINITY : now_monotonic_usec() + delay);
}

static void schedule_failed(Manager *m, Order *x) {
        x->busy = false;
        x->backoff_failures++;
        schedule_after(m, x, next_delay(m, x->row.settled, x->backoff_failures), true);
}

/* Queues every watched order that is neither queued nor busy (after a start, reload or orders-dir
 * change); with all set, requeues every idle watched order at its remembered rhythm. */
static void schedule_idle_orders(Manager *m, bool all) {
        uint64_t now_mono = now_monotonic_usec(), now_rt = now_realtime_usec();
        ORDERS_FOREACH(x, &m->orders)
                if (x->watched && !x->busy && (all || x->queue == ORDER_QUEUE_NONE))
                        orders_enqueue(&m->orders, x, order_initial_due(m, x, now_mono, now_rt));
}

/* ---- statistics for STATUS= and metrics ---- */

static void update_status(Manager *m) {
        uint64_t counts[_ORDER_STATE_MAX] = {};
        ORDERS_FOREACH(x, &m->orders)
                if (x->watched)
                        counts[order_row_state(&x->row)]++;
        m->metrics.orders_pending = counts[ORDER_STATE_PENDING] + counts[ORDER_STATE_NEVER_POLLED];
        m->metrics.orders_settled = counts[ORDER_STATE_SETTLED];
        m->metrics.orders_failing = counts[ORDER_STATE_FAILING];
        m->metrics.orders_not_found = counts[ORDER_STATE_NOT_FOUND];

        uint64_t queued = m->webhooks ? webhooks_queued(m->webhooks) : 0;
        const char *problem = m->auth ? auth_problem(m->auth) : NULL;
        uint64_t pending = m->metrics.orders_pending + counts[ORDER_STATE_FAILING] + counts[ORDER_STATE_NOT_FOUND];
        sd_notifyf(0, "STATUS=watching %zu orders (%llu pending), %llu queued webhook events%s%s", m->orders.n_watched,
                   (unsigned long long) pending, (unsigned long long) queued, problem ? "; " : "",
                   problem ? problem : "");
        if (m->config->metrics_textfile) {
                int r = metrics_write_textfile(&m->metrics, m->config->metrics_textfile);
                if (r < 0)
                        log_warning_errno(r, "Cannot write metrics to '%s': %m", m->config->metrics_textfile);
        }
}

/* Whether the budget covers every order at its interval; said once per change of the answer. */
static void check_budget(Manager *m) {
        if (m->config->max_requests_per_minute == 0 || m->options.mode == MANAGER_ONCE)
                return;
        double demand = 0;
        ORDERS_FOREACH(x, &m->orders) {
                uint64_t iv = x->watched ? order_interval(m, x->row.settled) : USEC_INFINITY;
                if (iv != USEC_INFINITY && iv > 0)
                        demand += 60.0 * (double) USEC_PER_SEC / (double) iv;
        }
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
                order_row_done(&x->row);
                x->row = *row;
                *row = (OrderRow) {};
                if (x->row.snapshot_json) {
                        x->has_snapshot = true;
                        x->row.snapshot_json = mfree(x->row.snapshot_json);
                }
                metrics_observe_poll(&m->metrics, metrics_result(job->outcome), job->duration_usec);
                /* a 404 is the normal state of a new order: polled at its interval, not backed off */
                x->backoff_failures = job->outcome == POLL_OUTCOME_FAILED ? x->backoff_failures + 1 : 0;
                schedule_after(m, x, job->delay_usec, job->outcome != POLL_OUTCOME_OK);
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

static void on_flush_idle(uv_idle_t *h) {
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
        if (a->outcome == POLL_OUTCOME_OK && x->has_snapshot &&
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
        r = outbox_add(m->outbox, &u.row, u.events, u.n_events, NULL, on_committed, job);
        if (r < 0)
                return r;
        u.events = NULL;
        u.n_events = 0;
        uv_idle_start(&m->flush_idle, on_flush_idle);
        return 0;
}

static void on_poll_done(PollAnswer *a, void *userdata) {
        PollJob *job = userdata;
        Manager *m = job->m;
        Order *x = job->order;

        snprintf(x->request_id, sizeof x->request_id, "%s", a->request_id);
        if (a->throttled) {
                metrics_observe_poll(&m->metrics, POLL_RESULT_RATE_LIMITED, a->duration_usec);
                if (m->options.mode != MANAGER_ONCE || ++x->throttled <= ONCE_MAX_THROTTLED) {
                        /* the poll starts over when the pause ends, under the same MS-RequestId */
                        x->busy = false;
                        x->keep_request_id = true;
                        orders_enqueue(&m->orders, x, now_monotonic_usec());
                        free(job);
                        return;
                }
                a->reason = "rate limited (HTTP 429) too often";
        }
        x->keep_request_id = a->timed_out;
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
                uv_timer_start(&m->shutdown_timer, on_shutdown_timer, 0, 0);
}

static void start_poll(Manager *m, Order *x) {
        PollJob *job = calloc(1, sizeof *job);
        int r = job ? 0 : -ENOMEM;
        if (r >= 0) {
                *job = (PollJob) { .m = m, .order = x };
                PollTarget t = {
                        .customer_id = x->row.customer_id,
                        .order_id = x->row.order_id,
                        .request_id = x->keep_request_id && x->request_id[0] ? x->request_id : NULL,
                        .known_digest = x->has_snapshot && x->row.has_answer_digest ? x->row.answer_digest : NULL,
                };
                x->keep_request_id = false;
                x->busy = true;
                r = poller_start(m->poller, &t, on_poll_done, job, NULL);
        }
        if (r < 0) {
                log_error_errno(r, "Cannot start polling order '%s': %m", x->row.order_id);
                free(job);
                schedule_failed(m, x);
        }
}

/* The client has a free slot and a token: the most urgent due order goes out. */
static bool on_pull(void *userdata, uint64_t now, uint64_t *ret_wake) {
        Manager *m = userdata;
        if (m->stopping || m->polling_done)
                return false;
        Order *x = orders_next_due(&m->orders, now, ret_wake);
        if (!x)
                return false;
        orders_dequeue(&m->orders, x);
        start_poll(m, x);
        return true;
}

static void on_auth_changed(void *userdata) {
        Manager *m = userdata;
        if (m->client)
                pc_client_kick(m->client);
}

/* ---- the commit, once per loop iteration ---- */

static void once_check_done(Manager *m);

static void flush(Manager *m) {
        uv_idle_stop(&m->flush_idle);
        if (!m->outbox || !outbox_pending(m->outbox))
                return;
        int r = outbox_flush(m->outbox);
        if (r < 0) {
                if (!m->commit_failing)
                        log_error_errno(r, "Cannot save poll results in %s: %s. Polls count as failed until "
                                        "this is fixed; nothing is lost.",
                                        store_path(m->store), store_error(m->store));
                m->commit_failing = true;
        } else {
                if (m->commit_failing)
                        log_info("Saving poll results works again.");
                m->commit_failing = false;
                if (r > 0 && m->webhooks)
                        webhooks_kick(m->webhooks);
        }
        if (m->client)
                pc_client_kick(m->client);
}

static void on_flush_check(uv_check_t *c) {
        Manager *m = c->data;
        flush(m);
        if (m->options.mode == MANAGER_ONCE)
                once_check_done(m);
}

/* ---- once ---- */

static void once_check_done(Manager *m) {
        if (!m->polling_done || m->stopping || outbox_pending(m->outbox))
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

static void once_polling_finished(Manager *m) {
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
        uv_idle_start(&m->flush_idle, on_flush_idle);
}

static void once_order_finished(Manager *m, Order *x, bool failed) {
        if (x->once_done)
                return;
        x->once_done = true;
        if (failed)
                m->once_failures = true;
        if (--m->once_remaining == 0)
                once_polling_finished(m);
}

/* auth retries a failed token request with backoff for as long as it takes, which would keep `once`
 * from ever exiting; what is not yet polled fails now instead (the next run tries again). */
static void on_no_token(void *userdata, const char *problem) {
        Manager *m = userdata;
        if (m->options.mode != MANAGER_ONCE || m->polling_done)
                return;
        _cleanup_free_ char *reason = strdup_printf("no access token: %s", problem);
        pc_client_fail_waiting(m->client, reason ? reason : "no access token");
        for (Order *x; (x = orders_next_due(&m->orders, USEC_INFINITY - 1, NULL));) {
                orders_dequeue(&m->orders, x);
                log_warning("Order '%s' (customer '%s') not polled: %s", x->row.order_id, x->row.customer_id,
                            reason ? reason : "no access token");
                once_order_finished(m, x, true);
        }
}

/* ---- configuration: orders and reload ---- */

static bool origin_is_config_file(const Config *c, const OrderRef *o) {
        size_t n = strlen(c->path);
        return o->origin && strncmp(o->origin, c->path, n) == 0 && o->origin[n] == ':';
}

/* Watches exactly the orders of the configuration file and of dir_orders (NULL: the configuration's
 * own list, orders-dir included). */
static int apply_orders(Manager *m, const OrderRef *dir_orders, size_t n_dir) {
        const Config *c = m->config;
        _cleanup_free_ OrderRef *own = NULL;
        size_t n = c->n_orders, added = 0, removed = 0;
        const OrderRef *list = c->orders;

        if (dir_orders) {
                /* the orders of the configuration file itself, plus a fresh reading of orders-dir */
                own = calloc(c->n_orders ? c->n_orders : 1, sizeof *own);
                if (!own)
                        return log_oom();
                n = 0;
                for (size_t i = 0; i < c->n_orders; i++)
                        if (origin_is_config_file(c, &c->orders[i]))
                                own[n++] = c->orders[i];
                list = own;
        }
        int r = orders_set_watched(&m->orders, list, n, dir_orders, n_dir, &added, &removed);
        if (r < 0)
                return log_oom();
        if (added || removed)
                log_info("Watching %zu orders (%zu added, %zu removed).", m->orders.n_watched, added, removed);
        schedule_idle_orders(m, false);
        return 0;
}

/* Once applied, the orders read from orders-dir are needed again only when that directory changes,
 * and then it is read afresh: keeping them would hold a second copy of a long list for good. */
static void config_forget_orders_dir_orders(Config *c) {
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

static void on_orders_dir_settled(uv_timer_t *t) {
        Manager *m = t->data;
        ErrorLog el;
        OrderRef *orders = NULL;
        size_t n = 0;
        int r = error_log_open(&el);
        if (r >= 0)
                r = config_read_orders_dir(m->config->orders_dir, el.f, &orders, &n);
        error_log_flush(&el);
        if (r < 0)
                log_error_errno(r, "Not applying the changed orders in '%s': %m", m->config->orders_dir);
        else if (apply_orders(m, orders, n) >= 0) {
                check_budget(m);
                pc_client_kick(m->client);
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
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long) now_monotonic_usec());
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
        if (pc_client_set_config(m->client, c) < 0)
                log_oom();
        poller_set_config(m->poller, c);
        outbox_set_config(m->outbox, c);
        if (m->webhooks)
                webhooks_set_config(m->webhooks, c);
        apply_orders(m, NULL, 0);
        config_forget_orders_dir_orders(c);
        schedule_idle_orders(m, true);
        orders_dir_start_watch(m);
        config_free(old);
        m->budget_short_logged = false;
        check_budget(m);
        update_status(m);
        sd_notify(0, "READY=1");
        pc_client_kick(m->client);
}

/* ---- signals, notify, shutdown ---- */

static void close_handle(uv_handle_t *h) {
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

static void on_shutdown_timer(uv_timer_t *t) {
        Manager *m = t->data;
        /* what is still in flight is abandoned: its orders keep their old state */
        flush(m);
        if (m->webhooks) {
                m->undelivered = webhooks_queued(m->webhooks);
                m->webhooks = webhooks_free(m->webhooks);
        }
        m->poller = poller_free(m->poller);
        m->client = pc_client_free(m->client);
        m->auth = auth_free(m->auth);
        http_free(m->http);
        m->http = NULL;
        update_status(m);
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
        if (m->client)
                pc_client_stop(m->client);
        if (m->webhooks)
                webhooks_stop(m->webhooks);
        if (m->options.mode == MANAGER_RUN)
                sd_notify(0, "STOPPING=1\nSTATUS=stopping");
        /* give requests in flight a moment to finish, then abandon them */
        bool wait = m->options.mode == MANAGER_RUN && m->client && pc_client_in_flight(m->client) > 0;
        uv_timer_start(&m->shutdown_timer, on_shutdown_timer, wait ? SHUTDOWN_GRACE_MSEC : 0, 0);
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
        return orders_load_row(&m->orders, row);
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
        log_config_warnings(config);

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
        m->status_timer.data = m->watchdog_timer.data = m->shutdown_timer.data = m;
        m->orders_dir_timer.data = m->once_timer.data = m;
        m->flush_check.data = m->flush_idle.data = m->sig_hup.data = m->sig_term.data = m->sig_int.data = m;
        m->orders_dir_watch.data = m;
        *ret = m; /* from here on manager_free() cleans up */

        int r = store_open(config->state_directory, STORE_READ_WRITE, &m->store);
        if (r < 0)
                return log_error_errno(r, "Cannot open the state store in '%s': %m", config->state_directory);
        r = store_foreach_order(m->store, load_row, m);
        if (r < 0)
                return log_error_errno(r, "Cannot load state from '%s': %s", store_path(m->store),
                                       store_error(m->store));
        r = http_new(loop, &m->http);
        if (r < 0)
                return log_error_errno(r, "Cannot set up HTTP: %m");
        r = auth_new(loop, m->http, m->store, config, &m->metrics, on_auth_changed, m, &m->auth);
        if (r < 0)
                return log_error_errno(r, "Cannot set up authentication: %m");
        r = pc_client_new(loop, m->http, m->auth, config, &m->metrics, on_pull, on_no_token, m, &m->client);
        if (r >= 0)
                r = poller_new(m->client, config, &m->poller);
        if (r >= 0)
                r = outbox_new(m->store, config, m->hostname, &m->metrics, options->print_events, &m->outbox);
        if (r < 0)
                return log_oom();
        r = webhooks_new(loop, m->http, m->store, config, m->hostname, &m->metrics, &m->webhooks);
        if (r < 0)
                return log_error_errno(r, "Cannot set up webhooks: %m");
        webhooks_set_idle_callback(m->webhooks, on_webhooks_idle, m);
        r = apply_orders(m, NULL, 0);
        if (r < 0)
                return r;
        config_forget_orders_dir_orders(config);
        m->once_remaining = m->orders.n_watched;
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
                log_info("Watching %zu orders; state in '%s'.", m->orders.n_watched, store_path(m->store));
        } else if (m->orders.n_watched == 0) {
                log_info("No orders to poll.");
                once_polling_finished(m);
        }
        pc_client_kick(m->client);
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
        outbox_free(m->outbox);
        orders_done(&m->orders);
        store_free(m->store);
        metrics_done(&m->metrics);
        config_free(m->config);
        free(m);
        return NULL;
}
