/* SPDX-License-Identifier: MIT */
#pragma once

/* What the parts of the manager share: its state and the functions one part calls in another.
 *   manager.c            life cycle, the loop's handles, the commit per iteration, once, signals, status
 *   manager-poll.c       what to poll next and a poll's way from its answer to its commit and next turn
 *   manager-config.c     the configured orders, the orders-dir watch, reload
 *   manager-discovery.c  what discovery finds, made into watched orders and events
 */

#include <uv.h>

#include "auth.h"
#include "config.h"
#include "discovery.h"
#include "http.h"
#include "manager.h"
#include "metrics.h"
#include "orders.h"
#include "outbox.h"
#include "pc-client.h"
#include "poller.h"
#include "store.h"
#include "webhook.h"

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
        Discovery *discovery;
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
        /* How often unsettled orders are revisited: the configured interval, or sooner while the budget
         * has room ([poll] min-interval); planned by manager_check_budget(). */
        uint64_t revisit_usec;
        size_t n_times_dirty;
        uint64_t times_written_usec; /* monotonic */
        bool commit_failing;
        int exit_status;

        /* once */
        bool polling_done;
        size_t once_remaining;
        bool once_failures;
        uint64_t undelivered;
        uint64_t once_deadline_usec; /* realtime: when once stops waiting for webhooks */
};

/* manager.c */
void manager_stop(Manager *m);
/* Ends the grace period of a shutdown once nothing is in flight any more. */
void manager_shutdown_now(Manager *m);
/* Results wait in the outbox: make the loop reach its commit without blocking first. */
void manager_flush_soon(Manager *m);
void manager_once_order_finished(Manager *m, Order *x, bool failed);
void manager_update_status(Manager *m);

/* manager-poll.c */
bool manager_pull(void *userdata, uint64_t now, uint64_t *ret_wake);
/* Queues the watched orders that are neither queued nor busy; with all, requeues every idle one at
 * its remembered rhythm. */
void manager_schedule_idle_orders(Manager *m, bool all);
void manager_check_budget(Manager *m);
/* Writes the poll times that changed only in memory (every minute and at shutdown). */
void manager_write_poll_times(Manager *m);

/* manager-config.c */
int manager_apply_orders(Manager *m, const OrderRef *dir_orders, size_t n_dir);
void manager_forget_orders_dir_orders(Config *c);
int manager_adopt_config_orders(Manager *m);
void manager_orders_dir_start_watch(Manager *m);
void manager_reload(Manager *m);
void manager_log_config_warnings(const Config *c);

/* manager-discovery.c */
void manager_discovery_found(DiscoveryBatch *b, void *userdata);
/* Discovered orders settled for [discovery] forget-after are no longer watched. */
void manager_forget_settled(Manager *m);
