/* SPDX-License-Identifier: MIT */
/* The window over a webhook's queue (see webhook-queue.h).
 *
 * Every order with something in memory has an OrderTrack: its head in the window, or its parked
 * head, and the number of its later rows that were skipped while paging. The paging cursor: every
 * queue row with seq <= cursor is in the window, parked, or counted as skipped by its order's track.
 * Rows beyond the cursor are read when the window has room. */
#include <stdlib.h>
#include <string.h>

#include "alloc-util.h"
#include "hashmap.h"
#include "macro.h"
#include "scheduler.h"
#include "string-util.h"
#include "webhook-queue.h"

#define WINDOW_MAX 256u /* queue rows in memory per webhook */
#define QUEUE_PAGE_SIZE 256u
#define QUEUE_PAGE_MIN 16u /* pages are sized to what is wanted: every row read is copied, body and all */
#define FILL_SCAN_MAX 1024u /* queue rows read per call when filling: a long queue is read in several */

/* Exists while the order has a head in the window, a parked head or skipped rows in the store. */
struct OrderTrack {
        char *customer_id;
        char *order_id;
        QueueRow *head;
        /* Or, while the head waits for a retry, only this: parked.due is when (realtime), and
         * parked is in the queue's heap. The in-memory schedule wins over the store's, whose
         * update may have failed. */
        HeapItem parked;
        int64_t parked_seq;
        unsigned parked_attempts;
        size_t n_skipped;   /* queue rows of this order with seq <= cursor, neither head nor parked */
        int64_t scan_after; /* they all have a seq above this */
};

struct WebhookQueue {
        Store *store;
        char *name;
        void *userdata;

        QueueRow *rows_head, *rows_tail;
        size_t n_rows;

        Hashmap *tracks; /* OrderTrack by customer and order id */
        Heap parked;     /* OrderTrack.parked, by due time */
        bool orphans;    /* some track lost its head and could not fetch the next row yet */

        int64_t cursor;
        bool at_end;    /* nothing beyond cursor at the last look; cleared by kicks */
        bool fill_more; /* reading beyond cursor stopped at FILL_SCAN_MAX rows with room left */
};

/* ---- order tracks ---- */

static uint64_t order_track_hash(const void *key) {
        const OrderTrack *t = key;
        uint64_t h = hash_bytes(t->customer_id, strlen(t->customer_id), FNV_OFFSET);
        h = hash_bytes("", 1, h);
        return hash_bytes(t->order_id, strlen(t->order_id), h);
}

static bool order_track_equal(const void *a, const void *b) {
        const OrderTrack *x = a, *y = b;
        return streq(x->order_id, y->order_id) && streq(x->customer_id, y->customer_id);
}

static const HashOps order_track_hash_ops = { .hash = order_track_hash, .equal = order_track_equal };

static OrderTrack *track_find(WebhookQueue *q, const char *customer_id, const char *order_id) {
        const OrderTrack probe = { .customer_id = (char *) customer_id, .order_id = (char *) order_id };
        return hashmap_get(q->tracks, &probe);
}

static void track_free(OrderTrack *t) {
        free(t->customer_id);
        free(t->order_id);
        free(t);
}

static int track_add(WebhookQueue *q, const char *customer_id, const char *order_id, OrderTrack **ret) {
        OrderTrack *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->parked.heap_pos = SIZE_MAX;
        t->customer_id = strdup(customer_id);
        t->order_id = strdup(order_id);
        if (!t->customer_id || !t->order_id || hashmap_put(q->tracks, t, t) < 0) {
                track_free(t);
                return -ENOMEM;
        }
        *ret = t;
        return 0;
}

static bool track_parked(const OrderTrack *t) {
        return heap_item_queued(&t->parked);
}

/* Drops the track once it has nothing left to remember. */
static void track_release(WebhookQueue *q, OrderTrack *t) {
        if (t->head || track_parked(t) || t->n_skipped > 0)
                return;
        (void) hashmap_remove(q->tracks, t);
        track_free(t);
}

/* ---- the window ---- */

static QueueRow *row_free(QueueRow *row) {
        if (!row)
                return NULL;
        free(row->ev.event_id);
        free(row->ev.event_type);
        free(row->ev.customer_id);
        free(row->ev.order_id);
        free(row->ev.body);
        free(row->ev.summary);
        free(row->last_error);
        free(row);
        return NULL;
}

static void window_insert(WebhookQueue *q, QueueRow *row) {
        QueueRow *after = q->rows_tail;
        while (after && after->ev.seq > row->ev.seq)
                after = after->prev;
        row->prev = after;
        row->next = after ? after->next : q->rows_head;
        if (row->next)
                row->next->prev = row;
        else
                q->rows_tail = row;
        if (after)
                after->next = row;
        else
                q->rows_head = row;
        q->n_rows++;
}

static void window_remove(WebhookQueue *q, QueueRow *row) {
        if (row->prev)
                row->prev->next = row->next;
        else
                q->rows_head = row->next;
        if (row->next)
                row->next->prev = row->prev;
        else
                q->rows_tail = row->prev;
        row->prev = row->next = NULL;
        q->n_rows--;
}

/* Takes the page entry *ev (its strings move) into the window as the head of track t. */
static int window_admit(WebhookQueue *q, OrderTrack *t, QueuedEvent *ev) {
        QueueRow *row = calloc(1, sizeof *row);
        if (!row)
                return -ENOMEM;
        row->queue = q;
        row->track = t;
        row->ev = *ev;
        *ev = (QueuedEvent) {};
        row->state = QUEUE_ROW_WAITING;
        t->head = row;
        window_insert(q, row);
        return 0;
}

/* The head of t (not in the window) waits until due. -ENOMEM. */
static int track_park(WebhookQueue *q, OrderTrack *t, int64_t seq, unsigned attempts, uint64_t due) {
        t->parked_seq = seq;
        t->parked_attempts = attempts;
        t->parked.due = due;
        return heap_push(&q->parked, &t->parked);
}

/* Takes the page entry *ev as the head of track t: into the window when it is due, else parked (its
 * strings stay in *ev). */
static int track_take_head(WebhookQueue *q, OrderTrack *t, QueuedEvent *ev, uint64_t now) {
        if (ev->next_attempt_usec > now && track_park(q, t, ev->seq, ev->attempts, ev->next_attempt_usec) >= 0)
                return 0;
        return window_admit(q, t, ev); /* also without memory for parking: it waits in the window */
}

/* A head waiting for a retry leaves the window, so that its slot goes to events that are due. */
void webhook_queue_park(WebhookQueue *q, QueueRow *row, uint64_t now) {
        OrderTrack *t = row->track;

        if (row->ev.next_attempt_usec <= now ||
            track_park(q, t, row->ev.seq, row->ev.attempts, row->ev.next_attempt_usec) < 0)
                return;
        window_remove(q, row);
        t->head = NULL;
        row_free(row);
}

/* ---- reading the store ---- */

/* Reads the queue beyond the cursor while the window has room, up to FILL_SCAN_MAX rows: a queue of
 * orders that all wait for retries is read in several calls. */
static int queue_read_more(WebhookQueue *q, uint64_t now) {
        size_t scanned = 0;
        int r = 0;

        q->fill_more = false;
        while (r >= 0 && !q->at_end && q->n_rows < WINDOW_MAX) {
                if (scanned >= FILL_SCAN_MAX) {
                        q->fill_more = true;
                        break;
                }
                QueuedEvent *page = NULL;
                size_t n = 0, i;
                /* after a delivery there is room for one row: a whole page would be read and copied
                 * to admit it */
                size_t limit = WINDOW_MAX - q->n_rows < QUEUE_PAGE_MIN ? QUEUE_PAGE_MIN : WINDOW_MAX - q->n_rows;

                r = store_queue_list(q->store, q->name, q->cursor, limit, &page, &n);
                if (r < 0)
                        return r;
                scanned += n;
                for (i = 0; i < n && q->n_rows < WINDOW_MAX; i++) {
                        QueuedEvent *ev = &page[i];
                        int64_t seq = ev->seq; /* *ev moves into the window */
                        OrderTrack *t = track_find(q, ev->customer_id, ev->order_id);
                        if (t) {
                                /* an earlier event of this order is still queued: this one waits */
                                if (t->n_skipped++ == 0)
                                        t->scan_after = ev->seq - 1;
                        } else {
                                r = track_add(q, ev->customer_id, ev->order_id, &t);
                                if (r >= 0) {
                                        r = track_take_head(q, t, ev, now);
                                        if (r < 0)
                                                track_release(q, t);
                                }
                                if (r < 0)
                                        break;
                        }
                        q->cursor = seq;
                }
                if (r >= 0 && i == n && n < limit)
                        q->at_end = true;
                queued_events_free(page, n);
        }
        return r;
}

/* Finds the next queued event of an order whose head is gone: the first row of the order after
 * scan_after, which lies at or below the cursor. */
static int queue_scan_order(WebhookQueue *q, OrderTrack *t, uint64_t now) {
        size_t limit = QUEUE_PAGE_MIN; /* the next event of an order is often close: growing pages */

        while (!t->head && !track_parked(t) && t->n_skipped > 0) {
                QueuedEvent *page = NULL;
                size_t n = 0;
                int r;

                r = store_queue_list(q->store, q->name, t->scan_after, limit, &page, &n);
                if (r < 0)
                        return r;
                bool end = n < limit;
                if (limit < QUEUE_PAGE_SIZE)
                        limit *= 2;
                for (size_t i = 0; i < n; i++) {
                        QueuedEvent *ev = &page[i];
                        if (ev->seq > q->cursor) {
                                end = true;
                                break;
                        }
                        if (streq(ev->order_id, t->order_id) && streq(ev->customer_id, t->customer_id)) {
                                int64_t seq = ev->seq; /* *ev may move into the window */
                                r = track_take_head(q, t, ev, now);
                                if (r < 0) {
                                        queued_events_free(page, n);
                                        return r;
                                }
                                t->n_skipped--;
                                t->scan_after = seq;
                                break;
                        }
                        t->scan_after = ev->seq;
                }
                queued_events_free(page, n);
                if (!t->head && !track_parked(t) && end)
                        t->n_skipped = 0; /* gone from the store meanwhile */
        }
        return 0;
}

int webhook_queue_rescan(WebhookQueue *q, uint64_t now) {
        if (!q->orphans)
                return 0;
        /* collected first: releasing a track changes the map, which an iteration must not see */
        _cleanup_free_ OrderTrack **orphans = calloc(hashmap_size(q->tracks) + 1, sizeof *orphans);
        if (!orphans)
                return -ENOMEM;
        size_t n = 0, it = 0;
        void *v;
        while (hashmap_iterate(q->tracks, &it, &v, NULL))
                if (!((OrderTrack *) v)->head && !track_parked(v))
                        orphans[n++] = v;
        for (size_t i = 0; i < n; i++) {
                int r = queue_scan_order(q, orphans[i], now);
                if (r < 0)
                        return r;
                track_release(q, orphans[i]);
        }
        q->orphans = false;
        return 0;
}

/* Brings parked heads whose retry is due back into the window while it has room, read again from
 * the store. */
static int queue_unpark(WebhookQueue *q, uint64_t now) {
        HeapItem *it;

        while (q->n_rows < WINDOW_MAX && (it = heap_peek(&q->parked)) && it->due <= now) {
                OrderTrack *t = container_of(it, OrderTrack, parked);
                QueuedEvent *page = NULL;
                size_t n = 0;

                int r = store_queue_list(q->store, q->name, t->parked_seq - 1, 1, &page, &n);
                if (r < 0)
                        return r; /* stays parked */
                if (n == 1 && page[0].seq == t->parked_seq) {
                        page[0].attempts = t->parked_attempts;
                        page[0].next_attempt_usec = it->due;
                        r = window_admit(q, t, &page[0]);
                        if (r >= 0)
                                heap_remove(&q->parked, it);
                } else {
                        /* gone from the store meanwhile: the order's next event takes its place */
                        heap_remove(&q->parked, it);
                        r = queue_scan_order(q, t, now);
                        if (r >= 0)
                                track_release(q, t);
                        else
                                q->orphans = true;
                }
                queued_events_free(page, n);
                if (r < 0)
                        return r;
        }
        return 0;
}

int webhook_queue_fill(WebhookQueue *q, uint64_t now) {
        /* parked rows first: they are older than any row beyond the cursor */
        int r = queue_unpark(q, now);
        if (r < 0)
                return r;
        return queue_read_more(q, now);
}

int webhook_queue_finish(WebhookQueue *q, QueueRow *row, uint64_t now) {
        OrderTrack *t = row->track;

        window_remove(q, row);
        t->head = NULL;
        row_free(row);

        int r = queue_scan_order(q, t, now);
        if (r < 0) {
                q->orphans = true;
                return r;
        }
        track_release(q, t);
        return 0;
}

void webhook_queue_kick(WebhookQueue *q) {
        q->at_end = false;
}

/* ---- state ---- */

QueueRow *webhook_queue_first(const WebhookQueue *q) {
        return q->rows_head;
}

void *webhook_queue_userdata(const WebhookQueue *q) {
        return q->userdata;
}

uint64_t webhook_queue_next_wakeup(const WebhookQueue *q) {
        /* with the window full, a row that leaves it is what makes room */
        if (q->n_rows >= WINDOW_MAX)
                return UINT64_MAX;
        if (q->fill_more)
                return 0;
        HeapItem *parked = heap_peek(&q->parked);
        return parked ? parked->due : UINT64_MAX;
}

size_t webhook_queue_due(const WebhookQueue *q, uint64_t until) {
        size_t n = 0;

        for (QueueRow *row = q->rows_head; row; row = row->next)
                if (row->state == QUEUE_ROW_WAITING && row->ev.next_attempt_usec <= until)
                        n++;
        for (size_t i = 0; i < q->parked.n; i++)
                if (q->parked.items[i]->due <= until)
                        n++;
        if (q->fill_more)
                n++; /* the queue beyond the cursor may hold due events */
        return n;
}

/* ---- life cycle ---- */

int webhook_queue_new(Store *store, const char *webhook, void *userdata, WebhookQueue **ret) {
        WebhookQueue *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->store = store;
        q->userdata = userdata;
        q->name = strdup(webhook);
        q->tracks = hashmap_new(&order_track_hash_ops);
        if (!q->name || !q->tracks) {
                webhook_queue_free(q);
                return -ENOMEM;
        }
        *ret = q;
        return 0;
}

WebhookQueue *webhook_queue_free(WebhookQueue *q) {
        if (!q)
                return NULL;
        for (QueueRow *row = q->rows_head, *next; row; row = next) {
                next = row->next;
                row_free(row);
        }
        heap_done(&q->parked);
        size_t it = 0;
        void *t;
        while (q->tracks && hashmap_iterate(q->tracks, &it, &t, NULL))
                track_free(t);
        hashmap_free(q->tracks);
        free(q->name);
        free(q);
        return NULL;
}
