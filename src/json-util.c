/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "json-util.h"

int json_add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int json_get_int64(json_object *o, int64_t *ret) {
        if (!json_object_is_type(o, json_type_int))
                return -EBADMSG;
        int64_t v = json_object_get_int64(o);
        if (v == INT64_MIN || (v == INT64_MAX && json_object_get_uint64(o) != (uint64_t) INT64_MAX))
                return -ERANGE;
        *ret = v;
        return 0;
}

const char *json_get_cstring(json_object *o) {
        if (!json_object_is_type(o, json_type_string))
                return NULL;
        const char *s = json_object_get_string(o);
        if (strlen(s) != (size_t) json_object_get_string_len(o))
                return NULL;
        return s;
}

json_object *json_get(json_object *o, const char *key) {
        json_object *v = NULL;
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
                return NULL;
        return v;
}
