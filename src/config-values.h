/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* What one value of provwatch.conf may be (SPEC §2), by kind: checked, then converted into the
 * field of Config or WebhookConfig that the key names. Pure; used by config.c's key table. */

typedef enum ValueType {
        VALUE_STRING, /* no white space or control characters */
        VALUE_PATH,   /* no control characters */
        VALUE_URL,
        VALUE_ENDPOINT, /* URL without query, trailing slashes dropped */
        VALUE_API_VERSION,
        VALUE_AUTH,
        VALUE_TENANT_ID,
        VALUE_CLIENT_ID,
        VALUE_LOCALE,
        VALUE_TIMESPAN,
        VALUE_UNSIGNED,
        VALUE_BOOLEAN,
        VALUE_STATUSES, /* replaces the list; lowercased */
        VALUE_JOURNAL,
        VALUE_WEBHOOK_FORMAT,
        VALUE_SECRET_FILE, /* a path, kept until the secret is loaded: not for value_set() */
        /* repeatable, each adding to a list: */
        VALUE_ORDER, /* into an OrderList: not for value_set() */
        VALUE_EVENTS,
        VALUE_HEADER,
        VALUE_CUSTOMERS,
} ValueType;

typedef struct ValueRange {
        unsigned min, max; /* VALUE_UNSIGNED; VALUE_TIMESPAN: min 1 means "not zero" */
        uint64_t max_usec; /* VALUE_TIMESPAN: the longest allowed, 0 for no limit */
} ValueRange;

/* A tenant: a GUID or a domain name. */
bool tenant_id_is_valid(const char *s);

/* Sets *field (of the C type the value type implies) from the non-empty text v. A value that is not
 * allowed leaves the field alone and returns -EINVAL with *ret_error saying why, the value quoted
 * (e.g. "\"5 parsecs\" is not a time span"; never the value of a header, which may be a
 * credential). -ENOMEM. */
int value_set(ValueType type, const ValueRange *range, void *field, const char *v, char **ret_error);
