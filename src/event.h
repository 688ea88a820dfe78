/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "json-writer.h"
#include "names.h"
#include "snapshot.h"

typedef enum EventType {
        EVENT_LINEITEM_ADDED,
        EVENT_LINEITEM_CHANGED,
        EVENT_LINEITEM_REMOVED,
        EVENT_ORDER_COMPLETED,
        EVENT_ORDER_NOT_FOUND,
        EVENT_ORDER_FETCH_FAILED,
        EVENT_ORDER_RECOVERED,
        EVENT_ORDER_DISCOVERED,
        EVENT_ORDER_STALLED,
        EVENT_AUTH_FAILED,
        EVENT_AUTH_RECOVERED,
        _EVENT_TYPE_MAX,
        _EVENT_TYPE_INVALID = -EINVAL,
} EventType;

/* "provwatch.lineitem.added", … */
const char *event_type_to_string(EventType t);
EventType event_type_from_string(const char *s);
/* The MESSAGE_ID of SPEC §6 as 32 hex chars. */
const char *event_type_message_id(EventType t);
int event_type_priority(EventType t); /* syslog priority of SPEC §6 */
/* auth.*: about the partner tenant, not an order */
bool event_type_is_auth(EventType t);

typedef struct Event {
        EventType type;
        char id[37]; /* UUID, set by event_assign_id() */
        const char *customer_id; /* NULL for auth.*; inside the event's allocation */
        const char *order_id;    /* NULL for auth.*; inside the event's allocation */
        uint64_t time_usec;          /* realtime, when the poll completed */
        uint64_t previous_poll_usec; /* realtime of the previous good poll, 0 = none (null) */

        /* Everything below is owned by the event and freed by event_free(). */

        /* The order's names (SPEC §8): customer_name on every order event, offer_id and friendly_name
         * of the line item on lineitem.* events; NULL when none are known. */
        OrderNames *names;

        /* lineitem.*: the line item before and after (NULL for added's old, removed's new), each one
         * allocation made by line_item_dup(). */
        LineItem *old;
        LineItem *new;

        /* order.completed: the complete snapshot (snapshot_dup()); order.stalled: the line items not
         * yet terminal */
        Snapshot *line_items;

        /* order.fetch_failed; auth.failed */
        long http_status; /* 0 = no HTTP answer */
        char *reason;
        /* order.fetch_failed: the support handles of the last request (SPEC §3), NULL when unknown */
        char *correlation_id, *request_id, *ms_cv;

        /* order.not_found; auth.failed (Entra's error_description, at most 300 characters) */
        char *code;
        char *description;

        /* order.discovered: the record's operationDate; line items from names */
        uint64_t operation_usec;

        /* order.stalled: when the clock started; the line items not yet terminal in line_items */
        uint64_t since_usec;

        /* auth.*: subject tenants/TENANT_ID ("-" for a token file) */
        char *tenant_id;
        char *grant; /* "refresh_token", "client_credentials", "token_file" */
        char *error; /* OAuth error */
        int64_t *error_codes;
        size_t n_error_codes;
        char *action; /* one sentence: what the operator must do */
} Event;

/* customer_id and order_id are required but for auth.* events (NULL there). */
Event *event_new(EventType type, const char *customer_id, const char *order_id, uint64_t time_usec,
                 uint64_t previous_poll_usec);
/* A copy of names for the event (NULL or empty: none). */
int event_set_names(Event *e, const OrderNames *names);
Event *event_free(Event *e);
static inline void event_freep(Event **e) {
        event_free(*e);
}
void events_free(Event **events, size_t n);
int event_assign_id(Event *e);

/* The CloudEvent of SPEC §4 as compact JSON, keys in the order shown there. NULL with errno
 * EINVAL when the event has no id yet (event_assign_id()) or lacks its line item, else ENOMEM. */
char *event_to_json(const Event *e, const char *hostname);
/* -EINVAL when event_to_json() would refuse e (no id yet, a lineitem.* event without its line item). */
int event_validate(const Event *e);
/* The same appended to w (no NUL): -EINVAL, or -ENOMEM once w failed. */
int event_write_json(JsonWriter *w, const Event *e, const char *hostname);

/* One-line MESSAGE, e.g. "Order O (customer C) line item 0: prefulfillmentpending → fulfilled
 * (fulfilled 3, prefulfillmentpending 2)". Control characters (from server-provided text) become
 * spaces. NULL with errno EINVAL when a lineitem.* event lacks its old/new line item. */
char *event_summary(const Event *e);

/* "customers/C/orders/O", ".../lineitems/N" or "tenants/T" */
char *event_subject(const Event *e);
