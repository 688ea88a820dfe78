/* SPDX-License-Identifier: MIT */
#include <assert.h>

#include "alloc-util.h"
#include "hashmap.h"
#include "orders.h"

/* The key of an order is its row's pair of ids. */
static uint64_t order_key_hash(const void *key) {
        const OrderRow *r = key;
        uint64_t h = hash_bytes(r->customer_id, strlen(r->customer_id), FNV_OFFSET);
        h = hash_bytes("", 1, h);
        return hash_bytes(r->order_id, strlen(r->order_id), h);
}

static bool order_key_equal(const void *a, const void *b) {
        const OrderRow *x = a, *y = b;
        return streq(x->customer_id, y->customer_id) && streq(x->order_id, y->order_id);
}

/* An Order holds its key (its row): one pointer a slot. */
static const HashOps order_key_ops = {
        .hash = order_key_hash,
        .equal = order_key_equal,
        .key_in_value = true,
        .key_offset = offsetof(Order, row),
};

/* Orders are never freed one by one, so they come from blocks: no allocator header and no rounding
 * for each (8 bytes of its 160), and a block's untouched part costs no memory. */
#define ORDER_BLOCK_SIZE 1024
struct OrderBlock {
        OrderBlock *next;
        size_t used;
        Order orders[];
};

static Order *order_alloc(Orders *t) {
        OrderBlock *b = t->blocks;
        if (!b || b->used == ORDER_BLOCK_SIZE) {
                b = calloc(1, sizeof *b + ORDER_BLOCK_SIZE * sizeof(Order));
                if (!b)
                        return NULL;
                b->next = t->blocks;
                t->blocks = b;
        }
        return &b->orders[b->used++];
}

/* Takes back the Order order_alloc() gave last. */
static void order_unalloc(Orders *t, Order *x) {
        assert(t->blocks && x == &t->blocks->orders[t->blocks->used - 1]);
        *x = (Order) {};
        t->blocks->used--;
}

void orders_done(Orders *t) {
        for (size_t i = 0; i < ELEMENTSOF(t->queues); i++)
                heap_done(&t->queues[i]);
        for (size_t i = 0; i < t->n; i++) {
                if (t->all[i]->ids_joined)
                        t->all[i]->row.order_id = NULL; /* freed with the customer id */
                order_row_done(&t->all[i]->row);
                free(t->all[i]->retry_request_id);
        }
        while (t->blocks) {
                OrderBlock *next = t->blocks->next;
                free(t->blocks);
                t->blocks = next;
        }
        free(t->all);
        hashmap_free(t->map);
        *t = (Orders) {};
}

Order *orders_find(const Orders *t, const char *c, const char *o) {
        const OrderRow key = { .customer_id = (char *) c, .order_id = (char *) o };
        return t->map ? hashmap_get(t->map, &key) : NULL;
}

/* *c and *o become the new order's (set to NULL) when it is created; they stay the caller's otherwise. */
static Order *ensure_take(Orders *t, char **c, char **o, bool joined) {
        Order *x = orders_find(t, *c, *o);
        if (x)
                return x;
        if (!t->map && !(t->map = hashmap_new(&order_key_ops)))
                return NULL;
        if (!GREEDY_REALLOC(t->all, t->n_alloc, t->n + 1))
                return NULL;
        x = order_alloc(t);
        if (!x)
                return NULL;
        x->row.customer_id = *c;
        x->row.order_id = *o;
        if (hashmap_put(t->map, &x->row, x) < 0) {
                order_unalloc(t, x);
                return NULL;
        }
        *c = *o = NULL;
        x->ids_joined = joined;
        x->hi.heap_pos = SIZE_MAX;
        x->queue = ORDER_QUEUE_NONE;
        t->all[t->n++] = x;
        return x;
}

Order *orders_ensure_take(Orders *t, OrderRef *ref) {
        return ensure_take(t, &ref->customer_id, &ref->order_id, true);
}

Order *orders_ensure(Orders *t, const char *c, const char *o) {
        Order *x = orders_find(t, c, o);
        if (x)
                return x;
        _cleanup_free_ char *cc = strdup(c), *oc = strdup(o);
        if (!cc || !oc)
                return NULL;
        return ensure_take(t, &cc, &oc, false);
}

int orders_load_row(Orders *t, const OrderRow *row) {
        Order *x = orders_ensure(t, row->customer_id, row->order_id);
        if (!x)
                return -ENOMEM;
        char *customer_id = x->row.customer_id, *order_id = x->row.order_id;
        order_names_free(x->row.names);
        free(x->row.last_error);
        x->row = *row;
        x->row.customer_id = customer_id;
        x->row.order_id = order_id;
        x->row.snapshot_json = NULL;
        x->row.last_error = row->last_error ? strdup(row->last_error) : NULL;
        x->row.names = NULL;
        if (row->last_error && !x->row.last_error)
                return -ENOMEM;
        return row->names ? order_names_copy(row->names, &x->row.names) : 0;
}

void order_take_row(Order *x, OrderRow *row) {
        char *customer_id = TAKE_PTR(x->row.customer_id), *order_id = TAKE_PTR(x->row.order_id);
        order_row_done(&x->row);
        free(row->customer_id);
        free(row->order_id);
        x->row = *row;
        *row = (OrderRow) {};
        x->row.customer_id = customer_id;
        x->row.order_id = order_id;
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

static bool order_should_watch(const Order *x) {
        return x->configured || (x->row.discovered_usec > 0 && !x->forgotten);
}

bool orders_update_watched(Orders *t, Order *x) {
        bool w = order_should_watch(x);
        if (w == x->watched)
                return false;
        x->watched = w;
        if (w)
                t->n_watched++;
        else {
                t->n_watched--;
                orders_dequeue(t, x);
        }
        return true;
}

int orders_set_configured(Orders *t, const OrderRef *a, size_t n_a, const OrderRef *b, size_t n_b,
                          size_t *ret_added, size_t *ret_removed) {
        size_t added = 0, removed = 0;

        ORDERS_FOREACH(x, t)
                x->configured = false;
        for (size_t i = 0; i < n_a + n_b; i++) {
                const OrderRef *o = i < n_a ? &a[i] : &b[i - n_a];
                Order *x = orders_ensure(t, o->customer_id, o->order_id);
                if (!x)
                        return -ENOMEM;
                x->configured = true;
        }
        ORDERS_FOREACH(x, t)
                if (orders_update_watched(t, x)) {
                        if (x->watched)
                                added++;
                        else
                                removed++;
                }
        if (ret_added)
                *ret_added = added;
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}
