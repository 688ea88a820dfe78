/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The words people know an order by (SPEC §8): the customer's name and, per line item, the offer id,
 * the product's friendly name and the quantity ordered, as the activity log or a customer's order
 * list told them. Pure data; every field may be unknown (NULL, or quantity < 0). */

typedef struct LineItemName {
        int64_t number;
        char *offer_id;
        char *friendly_name;
        int64_t quantity; /* -1 when unknown */
} LineItemName;

typedef struct OrderNames {
        char *customer_name;
        LineItemName *items; /* sorted by number, unique */
        size_t n_items;
} OrderNames;

OrderNames *order_names_new(void);
OrderNames *order_names_free(OrderNames *n);
static inline void order_names_freep(OrderNames **n) {
        order_names_free(*n);
}
int order_names_copy(const OrderNames *src, OrderNames **ret);
bool order_names_is_empty(const OrderNames *n);

/* Adds or replaces the names of line item number (strings copied, NULL allowed). */
int order_names_set_item(OrderNames *n, int64_t number, const char *offer_id, const char *friendly_name,
                         int64_t quantity);
const LineItemName *order_names_find(const OrderNames *n, int64_t number);
/* What newer knows wins; what only older knows is kept (an update record may name fewer items). */
int order_names_merge(OrderNames *older, const OrderNames *newer);

/* Compact JSON for the store: {"customer":"…","items":[{"n":0,"offer":"…","name":"…","q":25}]};
 * round-trips exactly through order_names_from_json(). */
char *order_names_to_json(const OrderNames *n);
/* -EBADMSG for anything malformed, -ENOMEM. */
int order_names_from_json(const char *json, OrderNames **ret);
