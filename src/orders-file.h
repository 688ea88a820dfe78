/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "message-list.h"
#include "string-util.h"

/* The orders to watch as configured: "order = CUSTOMER_ID ORDER_ID" keys and the orders.d
 * directory, whose *.list files hold one "CUSTOMER_ID ORDER_ID" per line (blank lines and "#"
 * comments ignored). config_load() reads both; the daemon reads the directory again when it
 * changes. */

/* A file orders were read from, shared (counted) by the orders read from it: a string per order
 * would cost more than the order's IDs, and freeing them leaves holes between the IDs that stay. */
typedef struct OrderFile {
        unsigned n_ref;
        char path[];
} OrderFile;

OrderFile *order_file_unref(OrderFile *s); /* NULL */

typedef struct OrderRef {
        /* Both ids in one allocation: customer_id is it, order_id lies inside it (after the
         * customer id's NUL). An order table of 20,000 holds them as they are (orders_ensure_take()):
         * one allocator header instead of two, 16 bytes an order. */
        char *customer_id;
        char *order_id;
        OrderFile *file; /* a reference; with line, where it was read: "provwatch.conf:12" */
        unsigned line;
} OrderRef;

/* printf arguments for "%s:%u", where o was read */
#define ORDER_REF_WHERE(o) (o)->file->path, (o)->line

void order_refs_free(OrderRef *orders, size_t n);

/* An OrderRef array being built. */
typedef struct OrderList {
        OrderRef *items;
        size_t n, allocated;
        OrderFile *file; /* of the file read last (a reference), for its next lines */
} OrderList;

/* Moves the array out of l (*ret, *ret_n) and empties l. */
void order_list_take(OrderList *l, OrderRef **ret, size_t *ret_n);

void order_list_done(OrderList *l);

/* A customer or order ID (client IDs follow the same rule). */
#define ORDER_REF_ID_RULE "1 to 128 characters of A-Z a-z 0-9 . _ ~ -"
bool order_ref_id_is_valid(const char *s, size_t len);

/* Parses "CUSTOMER_ID ORDER_ID" (white space around and between) and appends it, read from
 * file:line. A bad value gives -EINVAL and a message in why (the value quoted, never more than
 * ORDER_WHY_MAX bytes); -ENOMEM. */
#define ORDER_WHY_MAX (ESCAPE_BUF + 128)
int order_list_add_line(OrderList *l, const char *value, const char *file, unsigned line, char *why,
                        size_t why_size);

/* Appends the orders of every *.list file in dir, in name order. Each bad line, and each file or
 * directory that cannot be read, adds a message "dir/file.list:3: …" to errors; the result is
 * then -EINVAL or that -errno. A missing directory holds no orders. -ENOMEM. */
int order_list_read_dir(OrderList *l, const char *dir, MessageList *errors);

/* Drops repeated orders (IDs compare case-insensitively), keeping the first of each in place.
 * With warnings, appends for each repetition where it was and where the first one is. */
int order_list_dedup(OrderList *l, char ***warnings);

/* The whole directory for the daemon: read, de-duplicated, problems printed on err (may be NULL) as
 * by config_load(). -EINVAL when a problem was printed, or -errno; *orders is then untouched. */
int config_read_orders_dir(const char *dir, FILE *err, OrderRef **orders, size_t *n_orders);
