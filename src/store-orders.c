/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

/* The orders table: one row per order (its last committed poll result, the snapshot, names), read
 * and written through the statements of store.c. */

void order_row_done(OrderRow *r) {
        if (!r)
                return;
        free(r->customer_id);
        free(r->order_id);
        free(r->snapshot_json);
        free(r->last_error);
        order_names_free(r->names);
        *r = (OrderRow) {};
}

int order_row_copy(const OrderRow *src, OrderRow *dst) {
        *dst = *src;
        dst->customer_id = strdup(src->customer_id);
        dst->order_id = strdup(src->order_id);
        dst->snapshot_json = src->snapshot_json ? strdup(src->snapshot_json) : NULL;
        dst->last_error = src->last_error ? strdup(src->last_error) : NULL;
        dst->names = NULL;
        if (!dst->customer_id || !dst->order_id || (src->snapshot_json && !dst->snapshot_json) ||
            (src->last_error && !dst->last_error) || (src->names && order_names_copy(src->names, &dst->names) < 0)) {
                order_row_done(dst);
                return -ENOMEM;
        }
        return 0;
}

bool order_row_same_but_poll_times(const OrderRow *a, const OrderRow *b) {
        return a->not_found_since_usec == b->not_found_since_usec &&
               a->consecutive_failures == b->consecutive_failures && a->last_http_status == b->last_http_status &&
               a->fetch_failed == b->fetch_failed && a->not_found == b->not_found && a->settled == b->settled &&
               a->stalled == b->stalled && streq_ptr(a->last_error, b->last_error) &&
               a->has_answer_digest == b->has_answer_digest &&
               memcmp(a->answer_digest, b->answer_digest, sizeof a->answer_digest) == 0 &&
               a->changed_usec == b->changed_usec;
        /* left out as well: snapshot_stored and store_rowid, which say where the store is, not what
         * the poll found */
}

/* A row of STMT_GET_ORDER or STMT_LIST_ORDERS; of STMT_LOAD_ORDERS when snapshot_read is false
 * (column 2 then says whether there is a snapshot). */
static int order_row_from_statement(sqlite3_stmt *st, bool snapshot_read, OrderRow *ret) {
        OrderRow row = {
                .last_poll_usec = store_column_u64(st, 3),
                .last_success_usec = store_column_u64(st, 4),
                .next_poll_usec = store_column_u64(st, 5),
                .not_found_since_usec = store_column_u64(st, 6),
                .consecutive_failures = (unsigned) sqlite3_column_int64(st, 7),
                .fetch_failed = sqlite3_column_int(st, 8) != 0,
                .not_found = sqlite3_column_int(st, 9) != 0,
                .settled = sqlite3_column_int(st, 10) != 0,
                .last_http_status = (int) sqlite3_column_int64(st, 11),
        };

        const void *digest = sqlite3_column_type(st, 13) == SQLITE_BLOB ? sqlite3_column_blob(st, 13) : NULL;
        if (digest && sqlite3_column_bytes(st, 13) == (int) sizeof row.answer_digest) {
                memcpy(row.answer_digest, digest, sizeof row.answer_digest);
                row.has_answer_digest = true;
        }
        row.discovered_usec = store_column_u64(st, 15);
        row.changed_usec = store_column_u64(st, 16);
        row.stalled = sqlite3_column_int(st, 17) != 0;
        row.store_rowid = sqlite3_column_int64(st, 18);
        if (snapshot_read)
                row.snapshot_stored = sqlite3_column_type(st, 2) != SQLITE_NULL;
        else
                row.snapshot_stored = sqlite3_column_int(st, 2) != 0;
        if (store_column_strdup(st, 0, &row.customer_id) < 0 || store_column_strdup(st, 1, &row.order_id) < 0 ||
            (snapshot_read && store_column_strdup(st, 2, &row.snapshot_json) < 0) ||
            store_column_strdup(st, 12, &row.last_error) < 0 || !row.customer_id || !row.order_id) {
                order_row_done(&row);
                return -ENOMEM;
        }
        /* names are a courtesy: unreadable ones are no names */
        const char *names = (const char *) sqlite3_column_text(st, 14);
        if (names && order_names_from_json(names, &row.names) == -ENOMEM) {
                order_row_done(&row);
                return -ENOMEM;
        }
        *ret = row;
        return 0;
}

static int store_put_order_internal(Store *s, OrderRow *row, StoreStatement id) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!s || !row || !row->customer_id || !row->order_id)
                return -EINVAL;

        r = store_statement(s, id, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "tttiiiiiiiiit", row->customer_id, row->order_id, row->snapshot_json,
                       (int64_t) row->last_poll_usec, (int64_t) row->last_success_usec,
                       (int64_t) row->next_poll_usec, (int64_t) row->not_found_since_usec,
                       (int64_t) row->consecutive_failures, (int64_t) row->fetch_failed,
                       (int64_t) row->not_found, (int64_t) row->settled, (int64_t) row->last_http_status,
                       row->last_error);
        if (r < 0)
                return r;
        int rc = row->has_answer_digest
                         ? sqlite3_bind_blob(st, 14, row->answer_digest, sizeof row->answer_digest, SQLITE_STATIC)
                         : sqlite3_bind_null(st, 14);
        if (rc != SQLITE_OK)
                return store_fail(s, rc);
        _cleanup_free_ char *names = NULL;
        if (!order_names_is_empty(row->names) && !(names = order_names_to_json(row->names)))
                return store_oom(s);
        rc = names ? sqlite3_bind_text(st, 15, names, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 15);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 16, (int64_t) row->discovered_usec);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 17, (int64_t) row->changed_usec);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 18, (int64_t) row->stalled);
        if (rc != SQLITE_OK)
                return store_fail(s, rc);
        /* A new row has a new rowid (rows are never deleted); an updated one keeps the rowid it had,
         * which row->store_rowid already holds or does not know. Cheaper than RETURNING, which
         * costs an ephemeral table per statement (+2 µs per row). */
        int64_t last = sqlite3_last_insert_rowid(s->db);
        r = store_step_done(s, st);
        if (r < 0)
                return r;
        if (sqlite3_last_insert_rowid(s->db) != last)
                row->store_rowid = sqlite3_last_insert_rowid(s->db);
        if (row->snapshot_json)
                row->snapshot_stored = true;
        return 0;
}

int store_put_order(Store *s, OrderRow *row) {
        return store_put_order_internal(s, row, STMT_PUT_ORDER);
}

int store_put_order_keep_snapshot(Store *s, OrderRow *row) {
        return store_put_order_internal(s, row, STMT_PUT_ORDER_KEEP_SNAPSHOT);
}

int store_touch_order(Store *s, const OrderRow *row) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!s || !row || !row->customer_id || !row->order_id)
                return -EINVAL;
        bool at = row->store_rowid > 0;
        r = store_statement(s, at ? STMT_TOUCH_ORDER_AT : STMT_TOUCH_ORDER, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, at ? "ttiiii" : "ttiii", row->customer_id, row->order_id,
                       (int64_t) row->last_poll_usec, (int64_t) row->last_success_usec,
                       (int64_t) row->next_poll_usec, row->store_rowid);
        if (r < 0)
                return r;
        r = store_step_done(s, st);
        if (r < 0 || !at || sqlite3_changes(s->db) > 0)
                return r;
        /* the row is elsewhere now (say the file was vacuumed): look it up by its ids */
        OrderRow by_key = *row;
        by_key.store_rowid = 0;
        return store_touch_order(s, &by_key);
}

int store_get_order(Store *s, const char *customer_id, const char *order_id, OrderRow *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int rc, r;

        if (!s || !customer_id || !order_id || !ret)
                return -EINVAL;

        r = store_statement(s, STMT_GET_ORDER, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "tt", customer_id, order_id);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return store_set_error(s, -ENOENT, "No such order");
        if (rc != SQLITE_ROW)
                return store_fail(s, rc);
        if (order_row_from_statement(st, true, ret) < 0)
                return store_oom(s);
        return 0;
}

static int foreach_order(Store *s, StoreStatement id, int (*cb)(const OrderRow *row, void *userdata),
                         void *userdata) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!s || !cb)
                return -EINVAL;

        r = store_statement(s, id, &st);
        if (r < 0)
                return r;
        for (;;) {
                OrderRow row;
                int rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return store_fail(s, rc);
                /* A copy, not pointers into SQLite's row: the callback may write to the store. */
                if (order_row_from_statement(st, id != STMT_LOAD_ORDERS, &row) < 0)
                        return store_oom(s);
                r = cb(&row, userdata);
                order_row_done(&row);
                if (r < 0)
                        return r;
        }
}

int store_foreach_order(Store *s, int (*cb)(const OrderRow *row, void *userdata), void *userdata) {
        return foreach_order(s, STMT_LIST_ORDERS, cb, userdata);
}

int store_load_orders(Store *s, int (*cb)(const OrderRow *row, void *userdata), void *userdata) {
        return foreach_order(s, STMT_LOAD_ORDERS, cb, userdata);
}

int store_set_order_names(Store *s, const char *customer_id, const char *order_id, const OrderNames *names,
                          uint64_t discovered_usec) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *json = NULL;
        if (!order_names_is_empty(names) && !(json = order_names_to_json(names)))
                return store_oom(s);
        int r = store_statement(s, STMT_SET_NAMES, &st);
        if (r < 0)
                return r;
        r = store_bind(s, st, "ttti", customer_id, order_id, json, (int64_t) discovered_usec);
        return r < 0 ? r : store_step_done(s, st);
}
