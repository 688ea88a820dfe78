/* SPDX-License-Identifier: MIT */
#include "orders.h"

static size_t order_hash(const char *c, const char *o) {
        size_t h = 1469598103934665603ULL;
        for (const char *p = c; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211ULL;
        h = (h ^ 0x1f) * 1099511628211ULL;
        for (const char *p = o; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211ULL;
        return h;
}

void orders_done(Orders *t) {
        for (size_t i = 0; i < ELEMENTSOF(t->queues); i++)
                heap_done(&t->queues[i]);
        for (size_t i = 0; i < t->n; i++) {
                order_row_done(&t->all[i]->row);
                free(t->all[i]);
        }
        free(t->all);
        free(t->buckets);
        *t = (Orders) {};
}

Order *orders_find(const Orders *t, const char *c, const char *o) {
        if (!t->buckets)
                return NULL;
        for (Order *x = t->buckets[order_hash(c, o) & (t->n_buckets - 1)]; x; x = x->hash_next)
                if (streq(x->row.customer_id, c) && streq(x->row.order_id, o))
                        return x;
        return NULL;
}

static int hash_grow(Orders *t) {
        size_t size = t->n_buckets ? t->n_buckets * 2 : 1024;
        Order **b = calloc(size, sizeof *b);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < t->n; i++) {
                Order *x = t->all[i];
                size_t k = order_hash(x->row.customer_id, x->row.order_id) & (size - 1);
                x->hash_next = b[k];
                b[k] = x;
        }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = size;
        return 0;
}

Order *orders_ensure(Orders *t, const char *c, const char *o) {
        Order *x = orders_find(t, c, o);
        if (x)
                return x;
        if (t->n + 1 > t->n_buckets / 2 && hash_grow(t) < 0)
                return NULL;
        if (t->n == t->n_alloc) {
                size_t a = t->n_alloc ? t->n_alloc * 2 : 1024;
                Order **all = realloc(t->all, a * sizeof *all);
                if (!all)
                        return NULL;
                t->all = all;
                t->n_alloc = a;
        }
        x = calloc(1, sizeof *x);
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
        x->queue = ORDER_QUEUE_NONE;
        size_t k = order_hash(c, o) & (t->n_buckets - 1);
        x->hash_next = t->buckets[k];
        t->buckets[k] = x;
        t->all[t->n++] = x;
        return x;
}

int orders_load_row(Orders *t, const OrderRow *row) {
        Order *x = orders_ensure(t, row->customer_id, row->order_id);
        if (!x)
                return -ENOMEM;
        char *customer_id = x->row.customer_id, *order_id = x->row.order_id;
        x->row = *row;
        x->row.customer_id = customer_id;
        x->row.order_id = order_id;
        x->row.snapshot_json = NULL;
        x->row.last_error = row->last_error ? strdup(row->last_error) : NULL;
        x->has_snapshot = row->snapshot_json != NULL;
        return row->last_error && !x->row.last_error ? -ENOMEM : 0;
}

void orders_dequeue(Orders *t, Order *x) {
        if (x->queue != ORDER_QUEUE_NONE)
                heap_remove(&t->queues[x->queue], &x->hi);
        x->queue = ORDER_QUEUE_NONE;
}

void orders_enqueue(Orders *t, Order *x, uint64_t due) {
        orders_dequeue(t, x);
        if (x->busy || !x->watched || due == USEC_INFINITY)
                return;
        x->hi.due = due;
        x->queue = x->row.settled ? ORDER_QUEUE_SETTLED : ORDER_QUEUE_UNSETTLED;
        if (heap_push(&t->queues[x->queue], &x->hi) < 0)
                x->queue = ORDER_QUEUE_NONE; /* ENOMEM: polled again after the next reload */
}

Order *orders_next_due(Orders *t, uint64_t now, uint64_t *ret_wake) {
        uint64_t wake = USEC_INFINITY;
        for (size_t q = 0; q < ELEMENTSOF(t->queues); q++) {
                HeapItem *hi = heap_peek(&t->queues[q]);
                if (!hi)
                        continue;
                if (hi->due <= now)
                        return container_of(hi, Order, hi);
                if (hi->due < wake)
                        wake = hi->due;
        }
        if (ret_wake)
                *ret_wake = wake;
        return NULL;
}

int orders_set_watched(Orders *t, const OrderRef *a, size_t n_a, const OrderRef *b, size_t n_b,
                       size_t *ret_added, size_t *ret_removed) {
        size_t added = 0, removed = 0;

        /* mark = watched before and not (yet) listed again */
        ORDERS_FOREACH(x, t)
                x->mark = x->watched;
        for (size_t i = 0; i < n_a + n_b; i++) {
                const OrderRef *o = i < n_a ? &a[i] : &b[i - n_a];
                Order *x = orders_ensure(t, o->customer_id, o->order_id);
                if (!x)
                        return -ENOMEM;
                if (!x->watched) {
                        x->watched = true;
                        added++;
                }
                x->mark = false;
        }
        t->n_watched = 0;
        ORDERS_FOREACH(x, t) {
                if (x->mark) {
                        x->watched = x->mark = false;
                        orders_dequeue(t, x);
                        removed++;
                }
                t->n_watched += x->watched;
        }
        if (ret_added)
                *ret_added = added;
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}
