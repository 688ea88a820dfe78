/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "scheduler.h"
#include "store.h"

/* The order table: every order the daemon knows, watched or not (an order removed from the
 * configuration keeps its row, so that adding it back announces nothing unchanged), with its
 * committed row and its place in the two schedule queues: unsettled orders are served before
 * settled ones. Plain data structures, no clocks and no I/O. */

typedef enum OrderQueue {
        ORDER_QUEUE_NONE = -1,
        ORDER_QUEUE_UNSETTLED,
        ORDER_QUEUE_SETTLED,
        _ORDER_QUEUE_MAX,
} OrderQueue;

typedef struct Order {
        /* hi.due stays what it was when the order left its queue until it is queued again: while it is
         * busy, the due time its poll was sent for (the next revisit is counted from it). */
        HeapItem hi;
        /* As last committed. The snapshot JSON is not kept in memory (row.snapshot_stored says whether
         * there is one): it is read back from the store only when an answer differs from the last one. */
        OrderRow row;
        /* The MS-RequestId the next poll is sent under: a timed-out or throttled request is sent again
         * as the same request. NULL (nearly always): a new one. */
        char *retry_request_id;
        unsigned backoff_failures; /* failed polls and failed commits in a row, in memory */
        int8_t queue;              /* an OrderQueue */
        uint8_t throttled;         /* 429s of this order in `once` (it gives up after a few) */
        /* The flags are bits: with them in one byte an Order is 160 bytes, not 168.
         * Watched: configured (order = or orders-dir), or discovered (row.discovered_usec) and not
         * forgotten (settled for [discovery] forget-after). */
        bool watched : 1;
        bool configured : 1;
        bool forgotten : 1;
        /* A poll of the order is in flight or its result waits to be committed. A busy order is in
         * no queue and cannot be queued: it is scheduled again once its result is committed or
         * dropped, so that an order never has two polls between two commits, whatever happens
         * meanwhile (a reload, orders-dir changes, discovery). */
        bool busy : 1;
        bool poll_again : 1; /* due at once when its poll under way is committed (an update_order came) */
        /* The poll times in row are newer than the store's: written in bulk (only they changed). */
        bool times_dirty : 1;
        bool once_done : 1;
        bool ids_joined : 1; /* row.order_id lies in row.customer_id's allocation (an OrderRef's ids) */
} Order; /* one per order (160 bytes): what few orders need is out of line */

typedef struct OrderBlock OrderBlock;

typedef struct Hashmap Hashmap;

typedef struct Orders {
        Order **all; /* in order of creation */
        size_t n, n_alloc;
        OrderBlock *blocks; /* where the Orders are, many to an allocation: they live as long as the table */
        Hashmap *map; /* (customer id, order id) → Order */
        size_t n_watched;
        Heap queues[_ORDER_QUEUE_MAX];
} Orders;

void orders_done(Orders *t);

Order *orders_find(const Orders *t, const char *customer_id, const char *order_id);
/* The order, created unwatched and in no queue when it is new. NULL on ENOMEM. */
Order *orders_ensure(Orders *t, const char *customer_id, const char *order_id);
/* The same, taking the ids of *ref (set to NULL) when the order is new: one allocation, see OrderRef. */
Order *orders_ensure_take(Orders *t, OrderRef *ref);
/* x's row becomes *row (emptied), but for the ids, which stay x's: the table's ids are allocated
 * once, densely, when the order is created (a first run would otherwise replace every one with the
 * poll's copy and leave holes in the heap where the old ones were: +1.1 MB at 20,000 orders). */
void order_take_row(Order *x, OrderRow *row);
/* Adds an order from its stored row (a copy is made, except of the snapshot: see Order.row). */
int orders_load_row(Orders *t, const OrderRow *row);

/* Queues x at due (monotonic): the unsettled or the settled queue by its row. Nothing happens for
 * an order that is busy or not watched, or when due is USEC_INFINITY (it is then in no queue). */
void orders_enqueue(Orders *t, Order *x, uint64_t due);
void orders_dequeue(Orders *t, Order *x);
/* The order to poll at now, unsettled ones first; NULL when none is due, and *ret_wake (may be NULL)
 * is set to the earliest due time, USEC_INFINITY when no order is queued. */
Order *orders_next_due(Orders *t, uint64_t now, uint64_t *ret_wake);

/* Makes exactly the orders of a and b (either may be empty) the configured ones; an order that is
 * watched no longer leaves its queue. Newly watched orders are left for the caller to queue. */
int orders_set_configured(Orders *t, const OrderRef *a, size_t n_a, const OrderRef *b, size_t n_b,
                          size_t *ret_added, size_t *ret_removed);
/* After configured, forgotten or the discovery mark of x changed: whether watched changed. */
bool orders_update_watched(Orders *t, Order *x);

#define ORDERS_FOREACH(x, t) \
        for (size_t _i = 0; _i < (t)->n; _i++) \
                for (Order *x = (t)->all[_i]; x; x = NULL)
