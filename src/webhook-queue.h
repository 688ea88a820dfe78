/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "store.h"

/* The in-memory view of one webhook's queue in the store: which events may be attempted now, so that
 * the events of one order go out strictly one after the other and no order holds back another.
 * Bookkeeping over the store only: no HTTP, no clocks (times are realtime microseconds passed in),
 * no logging; store errors are returned (-errno) and nothing is lost by them.
 *
 * The window holds at most a bounded number of rows, and only rows that may be attempted: the oldest
 * queued event of each order (its "head"). A later event of an order whose head is known is skipped
 * while paging (only counted in the order's track) and read again from the store when the head is
 * gone. A head that waits for a retry is "parked": it leaves the window, and its track keeps only
 * its seq, attempt count and due time, in a heap by due time; when due, the row is read again from
 * the store. So the window holds only events that are due (or in flight), and orders whose events
 * keep failing, however many, never hold back the events of another order; memory stays bounded by
 * the window plus one small entry per order with a parked head. */

typedef struct WebhookQueue WebhookQueue;
typedef struct QueueRow QueueRow;
typedef struct OrderTrack OrderTrack;

typedef enum QueueRowState {
        QUEUE_ROW_WAITING,   /* due at ev.next_attempt_usec (when it could not be parked, a time to come) */
        QUEUE_ROW_IN_FLIGHT,
        QUEUE_ROW_DELIVERED, /* delivered, but the store could not record it yet: retried */
        QUEUE_ROW_DEAD,      /* given up, but the store could not record it yet: retried */
} QueueRowState;

/* A row of the window. The caller owns state, request and last_error (freed with the row); the rest
 * belongs to the queue. */
struct QueueRow {
        WebhookQueue *queue;
        QueuedEvent ev;
        QueueRowState state;
        HttpRequest *request; /* while QUEUE_ROW_IN_FLIGHT */
        char *last_error;     /* QUEUE_ROW_DEAD: the last failure, for the dead letter */
        QueueRow *prev, *next; /* the window, by seq */
        OrderTrack *track;
};

/* webhook: the queue's name in the store (copied); userdata: the caller's, see
 * webhook_queue_userdata(). -ENOMEM. */
int webhook_queue_new(Store *store, const char *webhook, void *userdata, WebhookQueue **ret);
/* Frees the window (requests in flight must have been cancelled) and the parked entries; the
 * queue stays in the store. */
WebhookQueue *webhook_queue_free(WebhookQueue *q);
void *webhook_queue_userdata(const WebhookQueue *q);

/* The window, by seq; follow row->next. */
QueueRow *webhook_queue_first(const WebhookQueue *q);

/* New rows may have been committed beyond what was read. */
void webhook_queue_kick(WebhookQueue *q);

/* Brings parked heads due by now back into the window (read again from the store), then reads the
 * queue beyond what was read while the window has room, up to a number of rows per call (see
 * webhook_queue_next_wakeup()). */
int webhook_queue_fill(WebhookQueue *q, uint64_t now);

/* The row waits for a retry at row->ev.next_attempt_usec (with row->ev.attempts): it leaves the
 * window and is freed. When it is due already, or without memory for parking, it stays. */
void webhook_queue_park(WebhookQueue *q, QueueRow *row, uint64_t now);

/* The row is done (recorded in the store as delivered or dead): it is freed, and the order's next
 * event takes its place. A store error leaves that to webhook_queue_rescan(). */
int webhook_queue_finish(WebhookQueue *q, QueueRow *row, uint64_t now);

/* Looks again for the next events of orders whose finish could not read the store. */
int webhook_queue_rescan(WebhookQueue *q, uint64_t now);

/* When webhook_queue_fill() has something to do next: the first parked due time while the window
 * has room, 0 when reading stopped with room left (call it again soon), UINT64_MAX when nothing. */
uint64_t webhook_queue_next_wakeup(const WebhookQueue *q);

/* Rows waiting in the window or parked that are due by until, plus one while reading is unfinished
 * (what lies beyond may be due). */
size_t webhook_queue_due(const WebhookQueue *q, uint64_t until);
