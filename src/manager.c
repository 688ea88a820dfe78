/* SPDX-License-Identifier: MIT */
/* The daemon's life cycle and loop: its handles, the commit of the outbox once per loop iteration,
 * `once`, signals, sd_notify and metrics. What to poll and what a poll means are in manager-poll.c,
 * the configured orders and reload in manager-config.c, discovery's findings in
 * manager-discovery.c. */
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "manager-internal.h"
#include "order-state.h"

#define SHUTDOWN_GRACE_MSEC 3000
#define STATUS_PERIOD_MSEC 5000
/* Poll times of answers that changed nothing else are written this often (and at shutdown). */
#define POLL_TIMES_PERIOD_USEC (60 * USEC_PER_SEC)

/* ---- statistics for STATUS= and metrics ---- */

void manager_update_status(Manager *m) {
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

/* ---- auth.failed and auth.recovered (SPEC §9): committed with the state that makes them once ---- */

typedef struct AuthAlertJob {
        Manager *m;
        bool failed;
        char *state; /* kv auth-state */
} AuthAlertJob;

static int auth_alert_save(Store *store, void *userdata) {
        AuthAlertJob *job = userdata;
        return store_kv_set(store, "auth-state", job->state);
}

static void auth_alert_done(int r, OrderRow *row, void *userdata) {
        AuthAlertJob *job = userdata;
        if (r < 0 && job->m->auth)
                auth_alert_not_saved(job->m->auth, job->failed);
        free(job->state);
        free(job);
}

static void on_auth_alert(const AuthAlert *alert, void *userdata) {
        Manager *m = userdata;
        const Config *c = m->config;
        _cleanup_(event_freep) Event *e = event_new(alert->failed ? EVENT_AUTH_FAILED : EVENT_AUTH_RECOVERED, NULL, NULL,
                                                   now_realtime_usec(), 0);
        AuthAlertJob *job = calloc(1, sizeof *job);
        int r = -ENOMEM;
        if (!e || !job)
                goto fail;
        *job = (AuthAlertJob) { .m = m, .failed = alert->failed, .state = auth_state_format(alert) };
        e->tenant_id = c->auth == AUTH_TOKEN_FILE || isempty(c->tenant_id) ? strdup("-") : strdup(c->tenant_id);
        e->grant = strdup(alert->grant);
        e->http_status = alert->http_status;
        e->error = alert->error ? strdup(alert->error) : NULL;
        e->description = alert->description ? strdup(alert->description) : NULL;
        e->action = alert->action ? strdup(alert->action) : NULL;
        if (alert->n_error_codes > 0) {
                e->error_codes = calloc(alert->n_error_codes, sizeof *e->error_codes);
                if (e->error_codes) {
                        memcpy(e->error_codes, alert->error_codes, alert->n_error_codes * sizeof *e->error_codes);
                        e->n_error_codes = alert->n_error_codes;
                }
        }
        if (!job->state || !e->tenant_id || !e->grant || (alert->error && !e->error) ||
            (alert->description && !e->description) || (alert->action && !e->action) ||
            (alert->n_error_codes > 0 && !e->error_codes))
                goto fail;
        Event **events = calloc(1, sizeof *events);
        if (!events)
                goto fail;
        events[0] = e;
        r = outbox_add(m->outbox, NULL, events, 1, auth_alert_save, auth_alert_done, job);
        if (r < 0) {
                free(events);
                goto fail;
        }
        e = NULL;
        manager_flush_soon(m);
        return;
fail:
        log_error_errno(r, "Cannot announce that %s: %m", alert->failed ? "no access token can be had" : "access tokens work again");
        if (job)
                free(job->state);
        free(job);
        if (m->auth)
                auth_alert_not_saved(m->auth, alert->failed);
}

static void on_auth_changed(void *userdata) {
        Manager *m = userdata;
        if (m->client)
                pc_client_kick(m->client);
}

/* ---- the commit, once per loop iteration ---- */

static void once_check_done(Manager *m);
static void on_shutdown_timer(uv_timer_t *t);

static void on_flush_idle(uv_idle_t *h) {
}

void manager_flush_soon(Manager *m) {
        uv_idle_start(&m->flush_idle, on_flush_idle);
}

void manager_shutdown_now(Manager *m) {
        if (!uv_is_closing((uv_handle_t *) &m->shutdown_timer))
                uv_timer_start(&m->shutdown_timer, on_shutdown_timer, 0, 0);
}

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
        manager_flush_soon(m);
}

void manager_once_order_finished(Manager *m, Order *x, bool failed) {
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
                manager_once_order_finished(m, x, true);
        }
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
        manager_write_poll_times(m);
        if (m->webhooks) {
                m->undelivered = webhooks_queued(m->webhooks);
                m->webhooks = webhooks_free(m->webhooks);
        }
        m->discovery = discovery_free(m->discovery);
        m->poller = poller_free(m->poller);
        m->client = pc_client_free(m->client);
        m->auth = auth_free(m->auth);
        http_free(m->http);
        m->http = NULL;
        manager_update_status(m);
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

void manager_stop(Manager *m) {
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
        if (now_monotonic_usec() >= m->times_written_usec + POLL_TIMES_PERIOD_USEC)
                manager_write_poll_times(m);
        manager_forget_settled(m);
        manager_update_status(m);
        manager_check_budget(m);
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
        manager_log_config_warnings(config);

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
        /* The configured orders become the order table before the store is read, and orders-dir's list
         * moves into it: the list, the table with its rows and SQLite's page cache are never all held
         * at once (the start-up peak of the RSS). */
        r = manager_adopt_config_orders(m);
        if (r < 0)
                return r;
        r = store_load_orders(m->store, load_row, m);
        if (r < 0)
                return log_error_errno(r, "Cannot load state from '%s': %s", store_path(m->store),
                                       store_error(m->store));
        ORDERS_FOREACH(x, &m->orders)
                orders_update_watched(&m->orders, x); /* configured ones and those discovered before */
        manager_forget_settled(m);
        r = http_new(loop, &m->http);
        if (r < 0)
                return log_error_errno(r, "Cannot set up HTTP: %m");
        r = auth_new(loop, m->http, m->store, config, &m->metrics, on_auth_changed, m, &m->auth);
        if (r < 0)
                return log_error_errno(r, "Cannot set up authentication: %m");
        auth_set_alert_callback(m->auth, on_auth_alert, m);
        r = pc_client_new(loop, m->http, m->auth, config, &m->metrics, manager_pull, on_no_token, m, &m->client);
        if (r >= 0)
                r = poller_new(m->client, config, &m->poller);
        if (r >= 0)
                r = outbox_new(m->store, config, m->hostname, &m->metrics, options->print_events, &m->outbox);
        if (r >= 0 && options->mode == MANAGER_RUN)
                r = discovery_new(m->client, m->store, config, &m->metrics, manager_discovery_found, m, &m->discovery);
        if (r < 0)
                return log_oom();
        r = webhooks_new(loop, m->http, m->store, config, m->hostname, &m->metrics, &m->webhooks);
        if (r < 0)
                return log_error_errno(r, "Cannot set up webhooks: %m");
        webhooks_set_idle_callback(m->webhooks, on_webhooks_idle, m);
        if (m->orders.n_watched > 0)
                log_info("Watching %zu orders (%zu added, 0 removed).", m->orders.n_watched, m->orders.n_watched);
        manager_schedule_idle_orders(m, false);
        m->once_remaining = m->orders.n_watched;
        return 0;
}

int manager_run(Manager *m) {
        uv_check_start(&m->flush_check, on_flush_check);
        uv_signal_start(&m->sig_term, on_signal, SIGTERM);
        uv_signal_start(&m->sig_int, on_signal, SIGINT);

        if (m->options.mode == MANAGER_RUN) {
                uv_signal_start(&m->sig_hup, on_signal, SIGHUP);
                manager_orders_dir_start_watch(m);
                uint64_t wd = 0;
                if (sd_watchdog_enabled(0, &wd) > 0 && wd > 0)
                        uv_timer_start(&m->watchdog_timer, on_watchdog, wd / 2 / USEC_PER_MSEC,
                                       wd / 2 / USEC_PER_MSEC);
                uv_timer_start(&m->status_timer, on_status_timer, STATUS_PERIOD_MSEC, STATUS_PERIOD_MSEC);
                manager_check_budget(m);
                manager_update_status(m);
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
