/* SPDX-License-Identifier: MIT */
#include <json-c/json.h>

#include "json-util.h"
#include "names.h"

OrderNames *order_names_new(void) {
        return calloc(1, sizeof(OrderNames));
}

static void item_done(LineItemName *li) {
        free(li->offer_id);
        free(li->friendly_name);
        *li = (LineItemName) {};
}

OrderNames *order_names_free(OrderNames *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_items; i++)
                item_done(&n->items[i]);
        free(n->items);
        free(n->customer_name);
        return mfree(n);
}

bool order_names_is_empty(const OrderNames *n) {
        return !n || (!n->customer_name && n->n_items == 0);
}

static int dup_or_null(const char *s, char **ret) {
        *ret = s ? strdup(s) : NULL;
        return !s || *ret ? 0 : -ENOMEM;
}

const LineItemName *order_names_find(const OrderNames *n, int64_t number) {
        size_t lo = 0, hi = n ? n->n_items : 0;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (n->items[mid].number == number)
                        return &n->items[mid];
                if (n->items[mid].number < number)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

int order_names_set_item(OrderNames *n, int64_t number, const char *offer_id, const char *friendly_name,
                         int64_t quantity) {
        LineItemName li = { .number = number, .quantity = quantity < 0 ? -1 : quantity };
        if (dup_or_null(offer_id, &li.offer_id) < 0 || dup_or_null(friendly_name, &li.friendly_name) < 0) {
                item_done(&li);
                return -ENOMEM;
        }
        size_t pos = 0;
        while (pos < n->n_items && n->items[pos].number < number)
                pos++;
        if (pos < n->n_items && n->items[pos].number == number) {
                item_done(&n->items[pos]);
                n->items[pos] = li;
                return 0;
        }
        LineItemName *items = realloc(n->items, (n->n_items + 1) * sizeof *items);
        if (!items) {
                item_done(&li);
                return -ENOMEM;
        }
        n->items = items;
        memmove(items + pos + 1, items + pos, (n->n_items - pos) * sizeof *items);
        items[pos] = li;
        n->n_items++;
        return 0;
}

int order_names_copy(const OrderNames *src, OrderNames **ret) {
        _cleanup_(order_names_freep) OrderNames *n = order_names_new();
        if (!n || dup_or_null(src->customer_name, &n->customer_name) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < src->n_items; i++) {
                const LineItemName *li = &src->items[i];
                int r = order_names_set_item(n, li->number, li->offer_id, li->friendly_name, li->quantity);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(n);
        return 0;
}

int order_names_merge(OrderNames *older, const OrderNames *newer) {
        if (newer->customer_name && !streq_ptr(older->customer_name, newer->customer_name)) {
                char *s = strdup(newer->customer_name);
                if (!s)
                        return -ENOMEM;
                free(older->customer_name);
                older->customer_name = s;
        }
        for (size_t i = 0; i < newer->n_items; i++) {
                const LineItemName *li = &newer->items[i], *old = order_names_find(older, li->number);
                int r = order_names_set_item(older, li->number, li->offer_id ?: old ? old->offer_id : NULL,
                                             li->friendly_name ?: old ? old->friendly_name : NULL,
                                             li->quantity >= 0 ? li->quantity : old ? old->quantity : -1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_string_or_skip(json_object *o, const char *key, const char *s) {
        return s ? json_add(o, key, json_object_new_string(s)) : 0;
}

char *order_names_to_json(const OrderNames *n) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *items = json_object_new_array();
        if (!o || json_add(o, "items", items) < 0 || add_string_or_skip(o, "customer", n->customer_name) < 0)
                return NULL;
        for (size_t i = 0; i < n->n_items; i++) {
                const LineItemName *li = &n->items[i];
                json_object *it = json_object_new_object();
                if (!it || json_object_array_add(items, it) < 0) {
                        json_object_put(it);
                        return NULL;
                }
                if (json_add(it, "n", json_object_new_int64(li->number)) < 0 ||
                    add_string_or_skip(it, "offer", li->offer_id) < 0 ||
                    add_string_or_skip(it, "name", li->friendly_name) < 0 ||
                    (li->quantity >= 0 && json_add(it, "q", json_object_new_int64(li->quantity)) < 0))
                        return NULL;
        }
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        return s ? strdup(s) : NULL;
}

/* An absent member is NULL; a present one must be a string. */
static int get_optional_string(json_object *o, const char *key, const char **ret) {
        json_object *v = json_get(o, key);
        *ret = v ? json_get_cstring(v) : NULL;
        return v && !*ret ? -EBADMSG : 0;
}

int order_names_from_json(const char *json, OrderNames **ret) {
        _cleanup_(json_object_putp) json_object *o = json ? json_tokener_parse(json) : NULL;
        _cleanup_(order_names_freep) OrderNames *n = order_names_new();
        const char *customer;
        json_object *items = json_get(o, "items");

        if (!n)
                return -ENOMEM;
        if (!json_object_is_type(o, json_type_object) || !json_object_is_type(items, json_type_array) ||
            get_optional_string(o, "customer", &customer) < 0)
                return -EBADMSG;
        if (dup_or_null(customer, &n->customer_name) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *it = json_object_array_get_idx(items, i);
                const char *offer, *name;
                int64_t number, q = -1;
                if (json_get_int64(json_get(it, "n"), &number) < 0 || get_optional_string(it, "offer", &offer) < 0 ||
                    get_optional_string(it, "name", &name) < 0 ||
                    (json_get(it, "q") && (json_get_int64(json_get(it, "q"), &q) < 0 || q < 0)) ||
                    order_names_find(n, number))
                        return -EBADMSG;
                int r = order_names_set_item(n, number, offer, name, q);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(n);
        return 0;
}
