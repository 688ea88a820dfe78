/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* The state store of SPEC §5: one SQLite database "provwatch.db" (WAL) in the state directory.
 * Everything is plain data in, plain data out; callers group writes in transactions with
 * store_begin()/store_commit() so that a snapshot and its events land together.
 *
 * Errors: -ENOSPC (disk full), -EROFS (read-only), -EBUSY, -EUCLEAN (corrupt), -ENOENT (no such
 * row), -EIO (other); store_error() then gives SQLite's message for logs. */

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
        bool fetch_failed; /* order.fetch_failed was emitted and no recovery since */
        bool not_found;    /* order.not_found was emitted and no recovery since */
        bool settled;
        long last_http_status;
        char *last_error; /* NULL when the last poll was good */
} OrderRow;

void order_row_done(OrderRow *r);

typedef struct QueuedEvent {
        int64_t seq;
        char *event_id;
        char *event_type;
        char *customer_id;
        char *order_id;
        char *body; /* the CloudEvent JSON exactly as committed */
        unsigned attempts;
        uint64_t created_usec;       /* realtime of commit */
        uint64_t next_attempt_usec;  /* realtime, 0 = now */
} QueuedEvent;

void queued_events_free(QueuedEvent *q, size_t n);

int store_open(const char *directory, StoreMode mode, Store **ret);
Store *store_free(Store *s);
static inline void store_freep(Store **s) {
        store_free(*s);
}
const char *store_error(Store *s);
const char *store_path(Store *s);

int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

/* Insert or replace the row of (customer_id, order_id). */
int store_put_order(Store *s, const OrderRow *row);
int store_get_order(Store *s, const char *customer_id, const char *order_id, OrderRow *ret);
/* Calls cb for every order row, in (customer_id, order_id) order; a negative return stops. */
int store_foreach_order(Store *s, int (*cb)(const OrderRow *row, void *userdata), void *userdata);

/* Adds an event and queues it for each named webhook (none: the event is not stored). */
int store_add_event(Store *s, const char *event_id, const char *event_type, const char *customer_id,
                    const char *order_id, uint64_t created_usec, const char *body,
                    char *const *webhooks, size_t n_webhooks);

/* Queue of one webhook in commit order (seq ascending), at most limit rows with seq > after_seq. */
int store_queue_list(Store *s, const char *webhook, int64_t after_seq, size_t limit, QueuedEvent **ret,
                     size_t *ret_n);
int store_queue_delivered(Store *s, const char *webhook, int64_t seq);
int store_queue_reschedule(Store *s, const char *webhook, int64_t seq, unsigned attempts,
                           uint64_t next_attempt_usec, const char *last_error);
/* Moves the queue entry to the dead letters (with the body and reason). */
int store_queue_dead_letter(Store *s, const char *webhook, int64_t seq, const char *reason,
                            uint64_t now_usec);
int store_queue_depth(Store *s, const char *webhook, uint64_t *ret);
int store_dead_letter_count(Store *s, const char *webhook, uint64_t *ret);
/* Names of webhooks that have queue entries or dead letters, NULL-terminated, sorted. */
int store_webhook_names(Store *s, char ***ret);

/* Small key/value settings, e.g. "refresh-token" and "refresh-token-source". */
int store_kv_get(Store *s, const char *key, char **ret); /* -ENOENT when absent */
int store_kv_set(Store *s, const char *key, const char *value);
