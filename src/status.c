/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "discovery.h"
#include "log.h"
#include "order-state.h"
#include "parse-util.h"
#include "snapshot.h"
#include "status.h"
#include "store.h"
#include "strv.h"
#include "json-util.h"

/* Wider order IDs do not widen the table, they push their own row to the right. */
#define ORDER_COLUMN_MAX 36

static const char *const order_state_human[_ORDER_STATE_MAX] = {
        [ORDER_STATE_NEVER_POLLED] = "never polled",
        [ORDER_STATE_PENDING] = "pending",
        [ORDER_STATE_SETTLED] = "settled",
        [ORDER_STATE_FAILING] = "failing",
        [ORDER_STATE_NOT_FOUND] = "not found",
};

typedef enum OrderSource {
        SOURCE_CONFIG,     /* order = in the configuration file */
        SOURCE_ORDERS_DIR, /* a file of orders-dir */
        SOURCE_DISCOVERY,  /* found by discovery */
        SOURCE_NONE,       /* in the store only */
        _SOURCE_MAX,
} OrderSource;

static const char *const source_table[_SOURCE_MAX] = {
        [SOURCE_CONFIG] = "config",
        [SOURCE_ORDERS_DIR] = "orders-dir",
        [SOURCE_DISCOVERY] = "discovery",
        [SOURCE_NONE] = NULL,
};

typedef struct StatusOrder {
        const char *customer_id; /* the config's or row's strings */
        const char *order_id;
        bool watched;
        OrderSource source;
        bool has_row;
        OrderRow row; /* own copy */
        Snapshot *snapshot; /* NULL before the first good poll */
        bool snapshot_unreadable;
} StatusOrder;

typedef struct StatusWebhook {
        const char *name;
        bool configured;
        uint64_t queue_depth, dead_letters;
} StatusWebhook;

typedef struct Status {
        const Config *config;
        uint64_t now_usec;
        bool have_store;
        char *store_path;
        size_t n_watched;
        DiscoveryStatus discovery;
        size_t n_discovered;
        AuthState auth;

        StatusOrder *orders; /* watched ones first, in configuration order; then the others */
        size_t n_orders, allocated_orders;
        size_t *watched_index; /* indices of watched orders sorted by (customer, order), for lookup */

        StatusWebhook *webhooks;
        size_t n_webhooks;
        char **store_webhooks; /* names with a queue or dead letters in the store */
} Status;

static void status_done(Status *st) {
        for (size_t i = 0; i < st->n_orders; i++) {
                order_row_done(&st->orders[i].row);
                snapshot_free(st->orders[i].snapshot);
        }
        free(st->orders);
        free(st->watched_index);
        free(st->webhooks);
        strv_free(st->store_webhooks);
        free(st->store_path);
        discovery_status_done(&st->discovery);
        auth_state_done(&st->auth);
}

/* As the daemon decides it: discovered, and not settled for forget-after. */
static bool discovered_and_kept(const Status *st, const OrderRow *row) {
        uint64_t after = st->config->discovery_forget_after_usec;
        return row->discovered_usec > 0 &&
               !(after > 0 && row->settled && row->changed_usec > 0 && st->now_usec >= row->changed_usec &&
                 st->now_usec - row->changed_usec >= after);
}

static OrderState order_state(const StatusOrder *o) {
        return o->has_row ? order_row_state(&o->row) : ORDER_STATE_NEVER_POLLED;
}

/* A next poll that is not after the last one says nothing (the daemon had not rescheduled the order
 * when it saved the row): unknown rather than forever "due". */
static uint64_t order_next_poll(const OrderRow *row) {
        return row->next_poll_usec > row->last_poll_usec ? row->next_poll_usec : 0;
}

static int order_key_compare(const char *c1, const char *o1, const char *c2, const char *o2) {
        int r = strcmp(c1, c2);
        return r != 0 ? r : strcmp(o1, o2);
}

static int watched_index_compare(const void *a, const void *b, void *userdata) {
        const Status *st = userdata;
        const StatusOrder *x = st->orders + *(const size_t *) a;
        const StatusOrder *y = st->orders + *(const size_t *) b;
        return order_key_compare(x->customer_id, x->order_id, y->customer_id, y->order_id);
}

/* The daemon matches stored rows to configured orders exactly, so do we. */
static StatusOrder *find_watched(Status *st, const char *customer_id, const char *order_id) {
        size_t lo = 0, hi = st->config->n_orders;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                StatusOrder *o = st->orders + st->watched_index[mid];
                int r = order_key_compare(customer_id, order_id, o->customer_id, o->order_id);
                if (r == 0)
                        return o;
                if (r < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

static int status_init(Status *st, const Config *config) {
        *st = (Status) { .config = config, .now_usec = now_realtime_usec() };

        st->allocated_orders = config->n_orders + 16;
        st->orders = calloc(st->allocated_orders, sizeof *st->orders);
        st->watched_index = calloc(config->n_orders + 1, sizeof *st->watched_index);
        st->webhooks = calloc(config->n_webhooks + 1, sizeof *st->webhooks);
        if (!st->orders || !st->watched_index || !st->webhooks)
                return -ENOMEM;

        for (size_t i = 0; i < config->n_orders; i++) {
                st->orders[i] = (StatusOrder) {
                        .customer_id = config->orders[i].customer_id,
                        .order_id = config->orders[i].order_id,
                        .watched = true,
                        .source = config_order_is_own(config, &config->orders[i]) ? SOURCE_CONFIG
                                                                                  : SOURCE_ORDERS_DIR,
                };
                st->watched_index[i] = i;
        }
        st->n_orders = config->n_orders;
        qsort_r(st->watched_index, config->n_orders, sizeof *st->watched_index, watched_index_compare, st);

        for (size_t i = 0; i < config->n_webhooks; i++)
                st->webhooks[i] = (StatusWebhook) { .name = config->webhooks[i].name, .configured = true };
        st->n_webhooks = config->n_webhooks;
        return 0;
}

static int collect_order(const OrderRow *row, void *userdata) {
        Status *st = userdata;
        StatusOrder *o = find_watched(st, row->customer_id, row->order_id);
        int r;

        if (!o) {
                if (st->n_orders >= st->allocated_orders) {
                        size_t a = st->allocated_orders * 2;
                        StatusOrder *p = reallocarray(st->orders, a, sizeof *p);
                        if (!p)
                                return -ENOMEM;
                        /* watched_index holds indices, not pointers: nothing else to fix up */
                        st->orders = p;
                        st->allocated_orders = a;
                }
                o = st->orders + st->n_orders++;
                *o = (StatusOrder) { .source = SOURCE_NONE };
        }

        r = order_row_copy(row, &o->row);
        if (r < 0) {
                if (!o->watched)
                        st->n_orders--;
                return r;
        }
        o->has_row = true;
        if (row->discovered_usec > 0)
                st->n_discovered++;
        if (!o->watched) {
                o->customer_id = o->row.customer_id;
                o->order_id = o->row.order_id;
                if (discovered_and_kept(st, row)) {
                        o->watched = true;
                        o->source = SOURCE_DISCOVERY;
                }
        }
        if (o->row.snapshot_json) {
                r = snapshot_from_json(o->row.snapshot_json, &o->snapshot);
                if (r == -ENOMEM)
                        return r;
                o->snapshot_unreadable = r < 0;
        }
        return 0;
}

static int collect_webhooks(Status *st, Store *s) {
        size_t n_extra = 0;
        int r;

        r = store_webhook_names(s, &st->store_webhooks);
        if (r < 0)
                return r;
        for (char **n = st->store_webhooks; *n; n++)
                n_extra++;
        StatusWebhook *p = reallocarray(st->webhooks, st->n_webhooks + n_extra + 1, sizeof *p);
        if (!p)
                return -ENOMEM;
        st->webhooks = p;

        for (char **n = st->store_webhooks; *n; n++) {
                bool configured = false;
                for (size_t i = 0; i < st->config->n_webhooks; i++)
                        if (streq(st->config->webhooks[i].name, *n))
                                configured = true;
                if (!configured)
                        st->webhooks[st->n_webhooks++] = (StatusWebhook) { .name = *n };
        }

        for (size_t i = 0; i < st->n_webhooks; i++) {
                StatusWebhook *w = st->webhooks + i;
                if (!strv_contains(st->store_webhooks, w->name))
                        continue; /* nothing queued, nothing dead */
                r = store_queue_depth(s, w->name, &w->queue_depth);
                if (r < 0)
                        return r;
                r = store_dead_letter_count(s, w->name, &w->dead_letters);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* 0: read; 1: there is no state store yet; <0: failed, logged. */
static int status_collect(Status *st) {
        _cleanup_(store_freep) Store *s = NULL;
        int r;

        r = store_open(st->config->state_directory, STORE_READ_ONLY, &s);
        if (r == -ENOENT)
                return 1;
        if (r < 0) {
                if (r == -ENOMEM)
                        return log_oom();
                return log_error_errno(r, "Cannot open the state store in '%s': %s",
                                       st->config->state_directory, store_error(NULL));
        }
        st->have_store = true;
        st->store_path = strdup(store_path(s));
        if (!st->store_path)
                return log_oom();

        r = store_foreach_order(s, collect_order, st);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Cannot read the orders in the state store '%s': %s", store_path(s),
                                       store_error(s));

        r = auth_state_load(s, &st->auth);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0 && r != -EBADMSG)
                return log_error_errno(r, "Cannot read the token state in '%s': %s", store_path(s), store_error(s));

        r = discovery_status_load(s, &st->discovery);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Cannot read the discovery state in '%s': %s", store_path(s),
                                       store_error(s));

        r = collect_webhooks(st, s);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Cannot read the webhook queues in the state store '%s': %s",
                                       store_path(s), store_error(s));
        return 0;
}

/* ---- JSON ---- */

static json_object *json_time(uint64_t usec) {
        char buf[64];
        return usec == 0 ? NULL : json_object_new_string(format_rfc3339(buf, sizeof buf, usec));
}

static json_object *json_line_items(const StatusOrder *o) {
        if (o->snapshot_unreadable)
                return NULL;
        json_object *a = json_object_new_array();
        if (!a || !o->snapshot)
                return a;
        for (size_t i = 0; i < o->snapshot->n_items; i++) {
                const LineItem *li = o->snapshot->items + i;
                json_object *item = json_object_new_object(), *q = json_object_new_object();
                if (!item || !q) {
                        json_object_put(item);
                        json_object_put(q);
                        json_object_put(a);
                        return NULL;
                }
                for (size_t j = 0; j < li->n_quantities; j++)
                        json_object_object_add(q, li->quantities[j].status,
                                               json_object_new_int64(li->quantities[j].quantity));
                json_object_object_add(item, "line_item_number", json_object_new_int64(li->number));
                json_object_object_add(item, "order_line_item_id",
                                       li->has_order_line_item_id ? json_object_new_int64(li->order_line_item_id)
                                                                  : NULL);
                json_object_object_add(item, "status", json_object_new_string(li->status));
                json_object_object_add(item, "quantities", q);
                const LineItemName *n = order_names_find(o->row.names, li->number);
                json_object_object_add(item, "offer_id", n && n->offer_id ? json_object_new_string(n->offer_id) : NULL);
                json_object_object_add(item, "friendly_name",
                                       n && n->friendly_name ? json_object_new_string(n->friendly_name) : NULL);
                json_object_array_add(a, item);
        }
        return a;
}

static int status_print_json(const Status *st, FILE *out) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *orders = json_object_new_array(), *webhooks = json_object_new_array();

        if (!root || !orders || !webhooks) {
                json_object_put(orders);
                json_object_put(webhooks);
                return -ENOMEM;
        }
        json_object_object_add(root, "orders", orders);
        json_object_object_add(root, "webhooks", webhooks);
        json_object *tok = json_object_new_object(), *d = json_object_new_object();
        if (!tok || !d) {
                json_object_put(tok);
                json_object_put(d);
                return -ENOMEM;
        }
        json_object_object_add(root, "token", tok);
        json_object_object_add(tok, "state", json_object_new_string(st->auth.failing ? "failing" : "ok"));
        json_object_object_add(tok, "since", st->auth.failing ? json_time(st->auth.since_usec) : NULL);
        json_object_object_add(tok, "error", st->auth.failing && st->auth.error ? json_object_new_string(st->auth.error) : NULL);
        json_object_object_add(tok, "description", st->auth.failing && st->auth.description
                                                           ? json_object_new_string(st->auth.description)
                                                           : NULL);
        json_object_object_add(root, "discovery", d);
        json_object_object_add(d, "enabled", json_object_new_boolean(st->config->discovery_enabled));
        json_object_object_add(d, "cursor", json_time(st->discovery.cursor_usec));
        json_object_object_add(d, "last_read", json_time(st->discovery.last_read_usec));
        json_object_object_add(d, "last_result", st->discovery.last_result ? json_object_new_string(st->discovery.last_result)
                                                                           : NULL);
        json_object_object_add(d, "last_records", json_object_new_int64((int64_t) st->discovery.last_records));
        json_object_object_add(d, "discovered_orders", json_object_new_int64((int64_t) st->n_discovered));

        for (size_t i = 0; i < st->n_orders; i++) {
                const StatusOrder *o = st->orders + i;
                const OrderRow *row = &o->row;
                json_object *j = json_object_new_object();
                if (!j)
                        return -ENOMEM;
                json_object_array_add(orders, j);
                const char *source = source_table[o->source];
                const char *customer_name = row->names ? row->names->customer_name : NULL;
                json_object_object_add(j, "customer_id", json_object_new_string(o->customer_id));
                json_object_object_add(j, "customer_name", customer_name ? json_object_new_string(customer_name) : NULL);
                json_object_object_add(j, "order_id", json_object_new_string(o->order_id));
                json_object_object_add(j, "watched", json_object_new_boolean(o->watched));
                json_object_object_add(j, "source", source ? json_object_new_string(source) : NULL);
                json_object_object_add(j, "state", json_object_new_string(order_state_to_string(order_state(o))));
                json_object_object_add(j, "last_poll", json_time(row->last_poll_usec));
                json_object_object_add(j, "last_success", json_time(row->last_success_usec));
                json_object_object_add(j, "next_poll", json_time(order_next_poll(row)));
                json_object_object_add(j, "consecutive_failures", json_object_new_int64(row->consecutive_failures));
                json_object_object_add(j, "last_error", row->last_error ? json_object_new_string(row->last_error)
                                                                        : NULL);
                json_object_object_add(j, "last_http_status",
                                       row->last_poll_usec > 0 && row->last_http_status > 0
                                               ? json_object_new_int64(row->last_http_status)
                                               : NULL);
                json_object_object_add(j, "line_items", json_line_items(o));
        }

        for (size_t i = 0; i < st->n_webhooks; i++) {
                const StatusWebhook *w = st->webhooks + i;
                json_object *j = json_object_new_object();
                if (!j)
                        return -ENOMEM;
                json_object_array_add(webhooks, j);
                json_object_object_add(j, "name", json_object_new_string(w->name));
                json_object_object_add(j, "configured", json_object_new_boolean(w->configured));
                json_object_object_add(j, "queue_depth", json_object_new_int64((int64_t) w->queue_depth));
                json_object_object_add(j, "dead_letters", json_object_new_int64((int64_t) w->dead_letters));
        }

        const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        fprintf(out, "%s\n", s);
        return 0;
}

/* ---- human ---- */

/* "2026-11-23T21:54:16Z (3m 10s ago)", "-" when never */
static char *format_last(char *buf, size_t size, uint64_t now, uint64_t usec) {
        char t[64], span[FORMAT_TIMESPAN_MAX];
        if (usec == 0)
                snprintf(buf, size, "-");
        else if (usec > now) /* the clock went back */
                snprintf(buf, size, "%s", format_rfc3339(t, sizeof t, usec));
        else
                snprintf(buf, size, "%s (%s ago)", format_rfc3339(t, sizeof t, usec),
                         format_timespan(span, sizeof span, timespan_round_for_display(now - usec)));
        return buf;
}

/* "in 1m 5s", "due", "-" (not scheduled, or not known) */
static char *format_next(char *buf, size_t size, uint64_t now, uint64_t usec) {
        char span[FORMAT_TIMESPAN_MAX];
        if (usec == 0)
                snprintf(buf, size, "-");
        else if (usec <= now)
                snprintf(buf, size, "due");
        else
                snprintf(buf, size, "in %s",
                         format_timespan(span, sizeof span, timespan_round_for_display(usec - now)));
        return buf;
}

/* Server-provided text (error descriptions) may hold control characters. */
static void print_sanitized(FILE *out, const char *s) {
        for (; *s; s++)
                fputc((unsigned char) *s < 0x20 || *s == 0x7f ? ' ' : *s, out);
}

static void print_details(const Status *st, const StatusOrder *o, FILE *out) {
        char last[96];

        if (o->snapshot_unreadable)
                fprintf(out, "      (the stored snapshot is unreadable)\n");
        for (size_t i = 0; o->snapshot && i < o->snapshot->n_items; i++) {
                const LineItem *li = o->snapshot->items + i;
                const LineItemName *n = order_names_find(o->row.names, li->number);
                _cleanup_free_ char *q = quantities_format(li);
                fprintf(out, "      line item %" PRIi64, li->number);
                if (n && (n->friendly_name || n->offer_id)) {
                        fputc(' ', out);
                        print_sanitized(out, n->friendly_name ? n->friendly_name : n->offer_id);
                }
                fprintf(out, ": %s", li->status);
                if (!isempty(q))
                        fprintf(out, " (%s)", q);
                fputc('\n', out);
        }
        if (o->row.last_error) {
                fputs("      last error: ", out);
                print_sanitized(out, o->row.last_error);
                fputc('\n', out);
                fprintf(out, "      last good poll: %s\n",
                        o->row.last_success_usec == 0
                                ? "never"
                                : format_last(last, sizeof last, st->now_usec, o->row.last_success_usec));
        }
}

static int status_print_human(const Status *st, FILE *out) {
        size_t counts[_ORDER_STATE_MAX] = {}, n_unwatched = 0, n_watched = 0, order_width = strlen("CUSTOMER / ORDER");
        char last[96], next[32];

        for (size_t i = 0; i < st->n_orders; i++) {
                const StatusOrder *o = st->orders + i;
                if (!o->watched) {
                        n_unwatched++;
                        continue;
                }
                n_watched++;
                counts[order_state(o)]++;
                size_t w = strlen(o->order_id) + 2;
                if (w > order_width && w <= ORDER_COLUMN_MAX)
                        order_width = w;
        }

        if (st->have_store)
                fprintf(out, "State store %s\n", st->store_path);
        else
                fprintf(out, "Nothing has been polled yet: there is no state store in %s.\n",
                        st->config->state_directory);

        if (st->auth.failing) {
                char since[96];
                fprintf(out, "Access token: failing since %s", format_last(since, sizeof since, st->now_usec, st->auth.since_usec));
                if (st->auth.error) {
                        fputs(": ", out);
                        print_sanitized(out, st->auth.error);
                }
                if (st->auth.description) {
                        fputs(" (", out);
                        print_sanitized(out, st->auth.description);
                        fputc(')', out);
                }
                fputs("; no Partner Center request is sent until a token can be had.\n", out);
        } else if (st->have_store)
                fputs("Access token: ok\n", out);
        if (st->config->discovery_enabled || st->discovery.cursor_usec > 0) {
                char cursor[64];
                fprintf(out, "Discovery %s: activity log read up to %s; last read %s", st->config->discovery_enabled ? "on" : "off",
                        st->discovery.cursor_usec ? format_rfc3339(cursor, sizeof cursor, st->discovery.cursor_usec)
                                                  : "(not yet)",
                        format_last(last, sizeof last, st->now_usec, st->discovery.last_read_usec));
                if (st->discovery.last_result) {
                        fputs(", ", out);
                        print_sanitized(out, st->discovery.last_result);
                        fprintf(out, ", %" PRIu64 " records", st->discovery.last_records);
                }
                fprintf(out, "; %zu orders discovered.\n", st->n_discovered);
        }
        fprintf(out, "%zu watched order%s", n_watched, n_watched == 1 ? "" : "s");
        bool first = true;
        for (OrderState s = ORDER_STATE_PENDING; s < _ORDER_STATE_MAX; s++)
                if (counts[s] > 0) {
                        fprintf(out, "%s%zu %s", first ? ": " : ", ", counts[s], order_state_human[s]);
                        first = false;
                }
        if (counts[ORDER_STATE_NEVER_POLLED] > 0)
                fprintf(out, "%s%zu %s", first ? ": " : ", ", counts[ORDER_STATE_NEVER_POLLED],
                        order_state_human[ORDER_STATE_NEVER_POLLED]);
        fputs(".\n", out);

        if (n_watched > 0) {
                fprintf(out, "\n%-*s  %-12s  %-30s  %-9s  %5s  %s\n", (int) order_width, "CUSTOMER / ORDER", "STATE",
                        "LAST POLL", "NEXT POLL", "FAILS", "SOURCE");
                const char *customer = NULL;
                for (size_t i = 0; i < st->n_orders; i++) {
                        const StatusOrder *o = st->orders + i;
                        if (!o->watched)
                                continue;
                        if (!customer || !streq(customer, o->customer_id)) {
                                fputs(o->customer_id, out);
                                if (o->row.names && o->row.names->customer_name) {
                                        fputs(" (", out);
                                        print_sanitized(out, o->row.names->customer_name);
                                        fputc(')', out);
                                }
                                fputc('\n', out);
                                customer = o->customer_id;
                        }
                        fprintf(out, "  %-*s  %-12s  %-30s  %-9s  %5u  %s\n", (int) order_width - 2, o->order_id,
                                order_state_human[order_state(o)],
                                format_last(last, sizeof last, st->now_usec, o->row.last_poll_usec),
                                format_next(next, sizeof next, st->now_usec, order_next_poll(&o->row)),
                                o->row.consecutive_failures, source_table[o->source] ?: "-");
                        print_details(st, o, out);
                }
        }
        if (n_unwatched > 0)
                fprintf(out, "\n%zu order%s in the state store %s no longer watched (kept; --json lists %s).\n",
                        n_unwatched, n_unwatched == 1 ? "" : "s", n_unwatched == 1 ? "is" : "are",
                        n_unwatched == 1 ? "it" : "them");

        if (st->n_webhooks == 0) {
                fputs("\nNo webhooks configured.\n", out);
                return 0;
        }
        size_t name_width = strlen("WEBHOOK");
        for (size_t i = 0; i < st->n_webhooks; i++)
                if (strlen(st->webhooks[i].name) > name_width)
                        name_width = strlen(st->webhooks[i].name);
        fprintf(out, "\n%-*s  %8s  %12s\n", (int) name_width, "WEBHOOK", "QUEUED", "DEAD LETTERS");
        for (size_t i = 0; i < st->n_webhooks; i++) {
                const StatusWebhook *w = st->webhooks + i;
                fprintf(out, "%-*s  %8" PRIu64 "  %12" PRIu64 "%s\n", (int) name_width, w->name, w->queue_depth,
                        w->dead_letters, w->configured ? "" : "  (no longer configured)");
        }
        return 0;
}

int status_print(const Config *config, bool json, FILE *out) {
        _cleanup_(status_done) Status st = {};
        int r;

        if (!config || !out)
                return 1;

        r = status_init(&st, config);
        if (r < 0) {
                log_oom();
                return 1;
        }
        r = status_collect(&st);
        if (r < 0)
                return 1;

        r = json ? status_print_json(&st, out) : status_print_human(&st, out);
        if (r < 0) {
                log_oom();
                return 1;
        }
        if (fflush(out) != 0 || ferror(out)) {
                if (errno != EPIPE)
                        log_error_errno(errno, "Cannot write the status: %m");
                return 1;
        }
        return 0;
}
