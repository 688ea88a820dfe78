/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "names.h"
#include "util.h"

/* The state store of SPEC §5: one SQLite database "provwatch.db" (WAL) in the state directory.
 * Everything is plain data in, plain data out; callers group writes in transactions with
 * store_begin()/store_commit() so that a snapshot and its events land together. A committed
 * transaction survives the process being killed at any moment (kill -9); opening after a crash
 * always works. One Store is used from one thread.
 *
 * Errors: -ENOSPC (disk full), -EROFS (read-only), -EBUSY (locked by another process beyond the
 * 5 s busy timeout), -EUCLEAN (corrupt, not a database), -ENOENT (no such row / no database),
 * -EEXIST (duplicate event id), -EPROTO (schema from a newer provwatch, not our database),
 * -EALREADY (store_begin() inside a transaction), -ECANCELED (SQLite rolled back the open transaction
 * after an earlier error, e.g. disk full: only store_rollback() is accepted until then), -ENOMEM,
 * -EINVAL, -EIO (other); store_error()
 * then gives the message of that failure (SQLite's, where SQLite failed) for logs. Nothing is
 * logged above debug: callers decide what to say. */

typedef struct Store Store;

typedef enum StoreMode {
        STORE_READ_WRITE, /* creates the directory (0700) and the database as needed */
        STORE_READ_ONLY,  /* for `provwatch status` while the daemon runs */
} StoreMode;

typedef struct OrderRow {
        char *customer_id;
        char *order_id;
        char *snapshot_json; /* NULL before the first good poll */
        uint64_t last_poll_usec;    /* realtime of the last completed attempt, 0 = never */
        uint64_t last_success_usec; /* realtime of the last good poll, 0 = never */
        uint64_t next_poll_usec;    /* realtime, informational (for status) */
        uint64_t not_found_since_usec; /* realtime of the first 404 in the current run of 404s, 0 = none */
        unsigned consecutive_failures;
        int last_http_status;
        bool fetch_failed; /* order.fetch_failed was emitted and no recovery since */
        bool not_found;    /* order.not_found was emitted and no recovery since */
        bool settled;
        bool stalled;      /* order.stalled was emitted for the stall clock running now */
        bool has_answer_digest; /* answer_digest below is set */
        bool snapshot_stored;   /* the store holds a snapshot (snapshot_json is NULL when it was not read) */
        char *last_error; /* NULL when the last poll was good */
        /* Identifies the answer snapshot_json was made from (see the manager): the same answer again
         * need not be parsed. Only for an answer of one page. */
        uint8_t answer_digest[16];
        OrderNames *names;        /* what the activity log or a customer's order list named; NULL: none */
        uint64_t discovered_usec; /* realtime when discovery found the order, 0 = never (configured only) */
        uint64_t changed_usec;    /* the stall clock (SPEC §9): last change, else the first good poll; 0 = none */
        /* Where the store keeps the row (its rowid), learnt when the row is read or written; 0 = not
         * known. A hint only: store_touch_order() checks the ids there, so a stale one costs a lookup. */
        int64_t store_rowid;
} OrderRow; /* the fields are ordered to leave little padding: the table holds one per order. A new
             * field is compared in order_row_same_but_poll_times() or named there as left out. */

void order_row_done(OrderRow *r);
/* Deep copy; -ENOMEM leaves *dst empty. */
int order_row_copy(const OrderRow *src, OrderRow *dst);
/* Whether a and b, rows of the same order, hold the same poll result: every field compared but the
 * poll times (last_poll, last_success, next_poll), the snapshot (only known when it was read) and
 * what discovery owns (names, the discovery mark). */
bool order_row_same_but_poll_times(const OrderRow *a, const OrderRow *b);

typedef struct QueuedEvent {
        int64_t seq;
        char *event_id;
        char *event_type;
        char *customer_id;
        char *order_id;
        char *body; /* the CloudEvent JSON exactly as committed */
        char *summary; /* its one-line summary (the journal MESSAGE), NULL for events of older versions */
        unsigned attempts;
        uint64_t created_usec;       /* realtime of commit */
        uint64_t next_attempt_usec;  /* realtime, 0 = now */
} QueuedEvent;

void queued_events_free(QueuedEvent *q, size_t n);

/* -ENOENT in STORE_READ_ONLY mode when there is no (initialized) database; -EPROTO for an unknown
 * schema version. store_error(NULL) gives the reason of the last failed store_open() in this thread. */
int store_open(const char *directory, StoreMode mode, Store **ret);
Store *store_free(Store *s);
static inline void store_freep(Store **s) {
        store_free(*s);
}
const char *store_error(Store *s); /* message of the last failure; never NULL */
const char *store_path(Store *s);

/* BEGIN IMMEDIATE. Any error inside a transaction means: store_rollback(), nothing else (after disk
 * full SQLite may have rolled back already; further calls then fail with -ECANCELED rather than
 * commit piecemeal). A failing store_commit() rolls back before returning the error, so the store
 * stays usable; store_rollback() never fails and is a no-op without an open transaction. */
int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

/* Insert or replace the row of (customer_id, order_id). An existing row keeps its names and discovery
 * mark: those belong to store_set_order_names(), so that a poll under way never undoes them. */
int store_put_order(Store *s, OrderRow *row);
/* The same, except that an existing row keeps the snapshot it has (row->snapshot_json is stored only
 * for a new row): what a poll that did not change the snapshot writes, without holding it in memory.
 * Both set row->store_rowid when they add the row. */
int store_put_order_keep_snapshot(Store *s, OrderRow *row);
/* Only the poll times (last_poll, last_success, next_poll) of an existing row; nothing else of row
 * is read but its ids and store_rowid. No row: nothing happens. Many rows are written fastest in
 * store_rowid order (the pages of the table in turn). */
int store_touch_order(Store *s, const OrderRow *row);
/* -ENOENT when absent; release the result with order_row_done(). */
int store_get_order(Store *s, const char *customer_id, const char *order_id, OrderRow *ret);
/* Calls cb for every order row, in (customer_id, order_id) order; a negative return stops and is
 * returned. row is valid during the call only. cb may write to the store but must not call
 * store_foreach_order() again (-EBUSY). */
int store_foreach_order(Store *s, int (*cb)(const OrderRow *row, void *userdata), void *userdata);
/* The same for the daemon's start-up: in the order the rows are stored (each page of the table read
 * once, whatever the number of rows), and without the snapshots' text (snapshot_json NULL,
 * snapshot_stored set). */
int store_load_orders(Store *s, int (*cb)(const OrderRow *row, void *userdata), void *userdata);

/* Adds an event and queues it for each named webhook (none: the event is not stored; a name given
 * twice queues once). Atomic on its own; inside a transaction a failure (-EEXIST for a duplicate
 * event id) undoes only this call, the transaction can still be committed or rolled back. */
int store_add_event(Store *s, const char *event_id, const char *event_type, const char *customer_id,
                    const char *order_id, uint64_t created_usec, const char *body, const char *summary,
                    char *const *webhooks, size_t n_webhooks);

/* Queue of one webhook in commit order (seq ascending), at most limit rows (0 = no limit) with
 * seq > after_seq. seq never decreases, also across restarts. *ret is NULL when empty; release with
 * queued_events_free(). */
int store_queue_list(Store *s, const char *webhook, int64_t after_seq, size_t limit, QueuedEvent **ret,
                     size_t *ret_n);
/* Removes the entry (-ENOENT if there is none) and, when no other webhook's queue holds it, the event. */
int store_queue_delivered(Store *s, const char *webhook, int64_t seq);
int store_queue_reschedule(Store *s, const char *webhook, int64_t seq, unsigned attempts,
                           uint64_t next_attempt_usec, const char *last_error);
/* Moves the queue entry to the dead letters (with its own copy of the body, attempts, last error and
 * reason); the event row goes as in store_queue_delivered(). -ENOENT if there is no such entry. */
int store_queue_dead_letter(Store *s, const char *webhook, int64_t seq, const char *reason,
                            uint64_t now_usec);
/* webhook NULL: summed over all webhooks. */
int store_queue_depth(Store *s, const char *webhook, uint64_t *ret);
int store_dead_letter_count(Store *s, const char *webhook, uint64_t *ret);
/* Names of webhooks that have queue entries or dead letters, NULL-terminated (never NULL itself),
 * sorted; release with strv_free(). */
int store_webhook_names(Store *s, char ***ret);

/* Small key/value settings, e.g. "refresh-token" and "refresh-token-source". */
int store_kv_get(Store *s, const char *key, char **ret); /* -ENOENT when absent (*ret untouched) */
int store_kv_set(Store *s, const char *key, const char *value);

/* The names of an order and, when discovered_usec > 0, its discovery mark (a row is created when there
 * is none; an existing mark is kept). */
int store_set_order_names(Store *s, const char *customer_id, const char *order_id, const OrderNames *names,
                          uint64_t discovered_usec);

/* De-duplication keys of activity log records already processed (SPEC §8): 1 when key is there,
 * 0 when not; adding one twice keeps the first; pruning drops those of records older than before. */
int store_seen_has(Store *s, const char *key);
int store_seen_add(Store *s, const char *key, uint64_t operation_usec);
int store_seen_prune(Store *s, uint64_t before_usec);
