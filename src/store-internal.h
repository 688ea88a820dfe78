/* SPDX-License-Identifier: MIT */
#pragma once

/* What store.c (the database, its schema, statements, transactions and small settings),
 * store-orders.c (the orders table) and store-queue.c (events, webhook queues and dead letters)
 * share. Not for use outside the store. */

#include <sqlite3.h>

#include "store.h"

typedef enum StoreStatement {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_SAVEPOINT,
        STMT_RELEASE,
        STMT_ROLLBACK_TO,
        STMT_PUT_ORDER,
        STMT_PUT_ORDER_KEEP_SNAPSHOT,
        STMT_TOUCH_ORDER,
        STMT_TOUCH_ORDER_AT,
        STMT_GET_ORDER,
        STMT_LIST_ORDERS,
        STMT_LOAD_ORDERS,
        STMT_ADD_EVENT,
        STMT_QUEUE_ADD,
        STMT_QUEUE_LIST,
        STMT_QUEUE_DELETE,
        STMT_QUEUE_RESCHEDULE,
        STMT_EVENT_DELETE_UNREFERENCED,
        STMT_DEAD_LETTER_ADD,
        STMT_QUEUE_DEPTH,
        STMT_QUEUE_DEPTH_ALL,
        STMT_DEAD_LETTER_COUNT,
        STMT_DEAD_LETTER_COUNT_ALL,
        STMT_WEBHOOK_NAMES,
        STMT_KV_GET,
        STMT_KV_SET,
        STMT_SET_NAMES,
        STMT_SEEN_GET,
        STMT_SEEN_ADD,
        STMT_SEEN_PRUNE,
        _STMT_MAX,
} StoreStatement;

struct Store {
        sqlite3 *db;
        char *path;
        StoreMode mode;
        bool transaction; /* between store_begin() and store_commit()/store_rollback() */
        sqlite3_stmt *statements[_STMT_MAX];
        char error[512];
};

/* Records the message for store_error(); returns r. */
int store_set_error(Store *s, int r, const char *format, ...) _printf_(3, 4);
int store_fail(Store *s, int rc);
int store_oom(Store *s);
void statement_resetp(sqlite3_stmt **st);
#define _cleanup_reset_ _cleanup_(statement_resetp)
/* A prepared statement of the table, reset by _cleanup_reset_. */
int store_statement(Store *s, StoreStatement id, sqlite3_stmt **ret);
/* Binds the variadic arguments by types: 't' a string (NULL: null), 'i' an int64_t. */
int store_bind(Store *s, sqlite3_stmt *st, const char *types, ...);
int store_step_done(Store *s, sqlite3_stmt *st);
/* A savepoint, so that a failing call undoes itself inside a caller's transaction. */
int store_savepoint(Store *s, bool *ret_outer);
int store_savepoint_end(Store *s, bool outer, int r);
int store_column_strdup(sqlite3_stmt *st, int i, char **ret);
uint64_t store_column_u64(sqlite3_stmt *st, int i);
