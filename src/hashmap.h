/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A small hash map: open addressing with linear probing and backward-shift deletion, so there are
 * no tombstones and a slot is just the key and value pointers (or the value alone, see HashOps). The load factor stays at most 0.7;
 * the table doubles when needed and never shrinks. Keys are caller pointers compared through the
 * HashOps: the map never copies or frees a key or a value, and a key must stay valid and unchanged
 * while it is in the map. Composite keys (a struct of several strings) work through their own
 * HashOps, built with hash_bytes() or hash_string_case(). */

typedef struct HashOps {
        uint64_t (*hash)(const void *key);
        bool (*equal)(const void *a, const void *b);
        /* Set when every value holds its own key, at key_offset (a struct with its key inside, like
         * the order table's Orders): a slot is then one pointer, the value, and the key is found
         * from it (the order table at 20,000 orders: 256 KiB instead of 512). hashmap_put()'s key
         * must then be the value's. */
        bool key_in_value;
        size_t key_offset;
} HashOps;

extern const HashOps string_hash_ops;      /* NUL-terminated strings */
extern const HashOps string_case_hash_ops; /* the same, ASCII letters compared case-insensitively */

/* FNV-1a: start from FNV_OFFSET, feed the parts one after the other. The map mixes the result
 * further, so its low bits need not be good. */
#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
uint64_t hash_bytes(const void *p, size_t n, uint64_t h);
/* The bytes of s with ASCII letters lowercased. */
uint64_t hash_string_case(const char *s, uint64_t h);

typedef struct Hashmap Hashmap;

/* NULL on ENOMEM. Allocates no table until the first put or reserve. */
Hashmap *hashmap_new(const HashOps *ops);
/* Frees the map, not the keys or values; returns NULL. */
Hashmap *hashmap_free(Hashmap *h);
static inline void hashmap_freep(Hashmap **h) {
        hashmap_free(*h);
}

/* Room for n entries without growing. -ENOMEM. */
int hashmap_reserve(Hashmap *h, size_t n);

/* -EEXIST when an equal key is in the map already (it is left as it is), -EINVAL for a NULL key,
 * -ENOMEM. */
int hashmap_put(Hashmap *h, const void *key, void *value);

/* The value, or NULL when the key is not there. */
void *hashmap_get(const Hashmap *h, const void *key);

/* Removes the entry and returns its value (NULL when the key is not there). */
void *hashmap_remove(Hashmap *h, const void *key);

size_t hashmap_size(const Hashmap *h);

/* Visits every entry once, in no particular order: start with *state = 0, call until it returns
 * false. ret_value and ret_key may be NULL. The map must not change during an iteration. */
bool hashmap_iterate(const Hashmap *h, size_t *state, void **ret_value, const void **ret_key);
