/* SPDX-License-Identifier: MIT */
/* What discovery finds (SPEC §8), made into watched orders and order.discovered events: decided when
 * a batch arrives, committed together with the discovery state the batch advances, applied to the
 * order table once committed. */
#include <stdio.h>

#include "log.h"
#include "manager-internal.h"

typedef enum PlanKind {
        PLAN_DISCOVER, /* a new order: watch it, announce it */
        PLAN_NAMES,    /* a known order: keep what the record names */
        PLAN_POKE,     /* a watched order that was updated: poll it at once (names kept too) */
} PlanKind;

typedef struct PlanItem {
        PlanKind kind;
        const DiscoveryFinding *finding;
        OrderNames *names; /* the order's names once merged */
} PlanItem;

typedef struct Plan {
        Manager *m;
        DiscoveryBatch *batch;
        PlanItem *items;
        size_t n_items;
        uint64_t now_usec;
} Plan;

static void plan_free(Plan *p) {
        for (size_t i = 0; i < p->n_items; i++)
                order_names_free(p->items[i].names);
        free(p->items);
        free(p);
}

static PlanItem *plan_find(Plan *p, const DiscoveryFinding *f) {
        for (size_t i = 0; i < p->n_items; i++)
                if (streq(p->items[i].finding->customer_id, f->customer_id) &&
                    streq(p->items[i].finding->order_id, f->order_id))
                        return &p->items[i];
        return NULL;
}

static int plan_add(Plan *p, PlanKind kind, const DiscoveryFinding *f, const OrderNames *known) {
        PlanItem *item = plan_find(p, f);
        if (item) {
                /* an order named twice in one batch: one item, the names of both */
                if (kind == PLAN_POKE && item->kind == PLAN_NAMES)
                        item->kind = PLAN_POKE;
                return order_names_merge(item->names, f->names);
        }
        PlanItem *items = realloc(p->items, (p->n_items + 1) * sizeof *items);
        if (!items)
                return -ENOMEM;
        p->items = items;
        item = &p->items[p->n_items];
        *item = (PlanItem) { .kind = kind, .finding = f };
        int r = known ? order_names_copy(known, &item->names) : (item->names = order_names_new()) ? 0 : -ENOMEM;
        if (r >= 0)
                r = order_names_merge(item->names, f->names);
        if (r < 0) {
                order_names_free(item->names);
                return r;
        }
        p->n_items++;
        return 0;
}

static int plan_build(Plan *p) {
        Manager *m = p->m;
        for (size_t i = 0; i < p->batch->n_findings; i++) {
                const DiscoveryFinding *f = &p->batch->findings[i];
                const Order *x = orders_find(&m->orders, f->customer_id, f->order_id);
                PlanItem *pending = plan_find(p, f);
                int r = 0;
                if (f->verdict == AUDIT_CREATE_ORDER) {
                        /* an order discovered once stays discovered: forgotten is not new */
                        bool is_new = !pending && (!x || (!x->watched && x->row.discovered_usec == 0));
                        r = plan_add(p, is_new ? PLAN_DISCOVER : PLAN_NAMES, f, x ? x->row.names : NULL);
                } else if (x && x->watched)
                        r = plan_add(p, PLAN_POKE, f, x->row.names);
                else if (pending)
                        r = plan_add(p, pending->kind, f, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int plan_save(Store *store, void *userdata) {
        Plan *p = userdata;
        for (size_t i = 0; i < p->n_items; i++) {
                const PlanItem *item = &p->items[i];
                int r = store_set_order_names(store, item->finding->customer_id, item->finding->order_id, item->names,
                                              item->kind == PLAN_DISCOVER ? p->now_usec : 0);
                if (r < 0)
                        return r;
        }
        return discovery_batch_save(store, p->batch);
}

static void plan_apply(Plan *p) {
        Manager *m = p->m;
        uint64_t now = now_monotonic_usec();
        for (size_t i = 0; i < p->n_items; i++) {
                PlanItem *item = &p->items[i];
                Order *x = orders_ensure(&m->orders, item->finding->customer_id, item->finding->order_id);
                if (!x) {
                        log_oom();
                        continue;
                }
                order_names_free(x->row.names);
                x->row.names = TAKE_PTR(item->names);
                if (item->kind == PLAN_DISCOVER) {
                        x->row.discovered_usec = p->now_usec;
                        orders_update_watched(&m->orders, x);
                        if (p->batch->sweep)
                                m->metrics.discovered_orders_sweep++;
                        else
                                m->metrics.discovered_orders_log++;
                        log_info("Discovered order '%s' of customer '%s'%s%s%s; watching %zu orders.", x->row.order_id,
                                 x->row.customer_id, x->row.names->customer_name ? " (" : "",
                                 x->row.names->customer_name ?: "", x->row.names->customer_name ? ")" : "",
                                 m->orders.n_watched);
                }
                if (item->kind == PLAN_DISCOVER || item->kind == PLAN_POKE) {
                        if (x->busy)
                                x->poll_again = true; /* the poll under way may have missed the update */
                        else
                                orders_enqueue(&m->orders, x, now);
                }
        }
}

static void plan_done(int r, OrderRow *row, void *userdata) {
        Plan *p = userdata;
        if (r >= 0)
                plan_apply(p);
        discovery_batch_done(p->m->discovery, p->batch, r);
        plan_free(p);
}

void manager_discovery_found(DiscoveryBatch *b, void *userdata) {
        Manager *m = userdata;
        Plan *p = calloc(1, sizeof *p);
        Event **events = NULL;
        size_t n = 0;
        int r = -ENOMEM;

        if (!p)
                goto fail;
        *p = (Plan) { .m = m, .batch = b, .now_usec = now_realtime_usec() };
        r = plan_build(p);
        if (r < 0)
                goto fail;
        events = calloc(p->n_items ? p->n_items : 1, sizeof *events);
        if (!events)
                goto fail;
        for (size_t i = 0; i < p->n_items; i++) {
                const PlanItem *item = &p->items[i];
                if (item->kind != PLAN_DISCOVER)
                        continue;
                Event *e = event_new(EVENT_ORDER_DISCOVERED, item->finding->customer_id, item->finding->order_id,
                                     p->now_usec, 0);
                events[n++] = e;
                if (!e || event_set_names(e, item->names) < 0)
                        goto fail;
                e->operation_usec = item->finding->operation_usec;
        }
        r = outbox_add(m->outbox, NULL, events, n, plan_save, plan_done, p);
        if (r < 0)
                goto fail;
        manager_flush_soon(m);
        return;
fail:
        log_error_errno(r, "Cannot process what discovery found: %m; reading it again later.");
        events_free(events, n);
        if (p) {
                p->batch = NULL;
                plan_free(p);
        }
        discovery_batch_done(m->discovery, b, r);
}

void manager_forget_settled(Manager *m) {
        uint64_t after = m->config->discovery_forget_after_usec, now = now_realtime_usec();
        if (after == 0)
                return;
        ORDERS_FOREACH(x, &m->orders) {
                if (x->forgotten || x->configured || x->row.discovered_usec == 0 || !x->row.settled ||
                    x->row.changed_usec == 0 || now < x->row.changed_usec || now - x->row.changed_usec < after)
                        continue;
                x->forgotten = true;
                if (orders_update_watched(&m->orders, x))
                        log_info("Order '%s' of customer '%s' has been settled for [discovery] forget-after; no "
                                 "longer polling it.",
                                 x->row.order_id, x->row.customer_id);
        }
}
