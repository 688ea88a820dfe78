/* SPDX-License-Identifier: MIT */
/* The configured orders (order = and orders-dir), the watch on orders-dir, and reload. */
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "manager-internal.h"
#include "orders-file.h"

#define ORDERS_DIR_SETTLE_MSEC 200

/* ---- configuration: orders and reload ---- */

/* Watches exactly the orders of the configuration file and of dir_orders (NULL: the configuration's
 * own list, orders-dir included). */
int manager_apply_orders(Manager *m, const OrderRef *dir_orders, size_t n_dir) {
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
                        if (config_order_is_own(c, &c->orders[i]))
                                own[n++] = c->orders[i];
                list = own;
        }
        int r = orders_set_configured(&m->orders, list, n, dir_orders, n_dir, &added, &removed);
        if (r < 0)
                return log_oom();
        if (added || removed)
                log_info("Watching %zu orders (%zu added, %zu removed).", m->orders.n_watched, added, removed);
        manager_schedule_idle_orders(m, false);
        return 0;
}

/* Once applied, the orders read from orders-dir are needed again only when that directory changes,
 * and then it is read afresh: keeping them would hold a second copy of a long list for good. */
void manager_forget_orders_dir_orders(Config *c) {
        size_t n = 0;
        for (size_t i = 0; i < c->n_orders; i++)
                n += config_order_is_own(c, &c->orders[i]);
        if (n == c->n_orders)
                return;
        OrderRef *own = calloc(n ? n : 1, sizeof *own);
        if (!own)
                return; /* merely more memory */
        n = 0;
        for (size_t i = 0; i < c->n_orders; i++)
                if (config_order_is_own(c, &c->orders[i])) {
                        own[n++] = c->orders[i];
                        c->orders[i] = (OrderRef) {};
                }
        order_refs_free(c->orders, c->n_orders);
        c->orders = own;
        c->n_orders = n;
}

/* At start-up, the configured orders become the order table, and those of orders-dir move into it
 * rather than being copied: the list and a table of the same orders are never both held whole. What is
 * watched is decided once the store's rows are in too (manager_new()). */
int manager_adopt_config_orders(Manager *m) {
        Config *c = m->config;
        for (size_t i = 0; i < c->n_orders; i++) {
                OrderRef *o = &c->orders[i];
                bool own = config_order_is_own(c, o);
                Order *x = own ? orders_ensure(&m->orders, o->customer_id, o->order_id)
                               : orders_ensure_take(&m->orders, o);
                if (!x)
                        return log_oom();
                x->configured = true;
                if (!own)
                        o->file = order_file_unref(o->file); /* forgotten below, like a duplicate's ids */
        }
        manager_forget_orders_dir_orders(c);
        return 0;
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
        else if (manager_apply_orders(m, orders, n) >= 0) {
                manager_check_budget(m);
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

void manager_orders_dir_start_watch(Manager *m) {
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

void manager_log_config_warnings(const Config *c) {
        for (char **w = c->warnings; w && *w; w++)
                log_warning("%s", *w);
}

void manager_reload(Manager *m) {
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
        manager_log_config_warnings(c);

        Config *old = m->config;
        m->config = c;
        free(c->state_directory);
        c->state_directory = strdup(old->state_directory);
        auth_set_config(m->auth, c);
        if (pc_client_set_config(m->client, c) < 0)
                log_oom();
        poller_set_config(m->poller, c);
        if (m->discovery)
                discovery_set_config(m->discovery, c);
        outbox_set_config(m->outbox, c);
        if (m->webhooks)
                webhooks_set_config(m->webhooks, c);
        manager_apply_orders(m, NULL, 0);
        manager_forget_orders_dir_orders(c);
        manager_schedule_idle_orders(m, true);
        manager_orders_dir_start_watch(m);
        config_free(old);
        m->budget_short_logged = false;
        manager_check_budget(m);
        manager_update_status(m);
        sd_notify(0, "READY=1");
        pc_client_kick(m->client);
}

