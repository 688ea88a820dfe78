/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

/* Small json-c helpers shared by the parsers and the event/snapshot writers. */

static inline void json_object_putp(json_object **o) {
        json_object_put(*o);
}

/* Adds v under key, taking ownership; -ENOMEM when v is NULL or cannot be added. */
int json_add(json_object *o, const char *key, json_object *v);

/* An int64 that json-c really holds: it clamps integers it cannot hold to INT64_MIN / UINT64_MAX
 * instead of failing, so INT64_MIN and anything above INT64_MAX count as out of range (-ERANGE).
 * -EBADMSG when o is not an integer. */
int json_get_int64(json_object *o, int64_t *ret);

/* The string of o; NULL when o is no string or holds a NUL byte. */
const char *json_get_cstring(json_object *o);

/* The member key of o, NULL when o is no object or has no such member. */
json_object *json_get(json_object *o, const char *key);
