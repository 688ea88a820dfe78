/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hashmap.h"

#define FNV_PRIME UINT64_C(0x100000001b3)
#define SLOTS_MIN 8

typedef struct Slot {
        const void *key; /* NULL: free */
        void *value;
} Slot;

struct Hashmap {
        const HashOps *ops;
        union {
                Slot *slots;   /* key and value */
                void **values; /* ops->key_in_value: the value, which holds its key; NULL: free */
        };
        size_t n_slots; /* 0 or a power of two */
        size_t n;
};

/* The slots through these, whichever their shape. */
static size_t slot_size(const HashOps *ops) {
        return ops->key_in_value ? sizeof(void *) : sizeof(Slot);
}

static void *slot_value(const Hashmap *h, size_t i) {
        return h->ops->key_in_value ? h->values[i] : h->slots[i].value;
}

/* NULL: the slot is free */
static const void *slot_key(const Hashmap *h, size_t i) {
        if (!h->ops->key_in_value)
                return h->slots[i].key;
        return h->values[i] ? (const char *) h->values[i] + h->ops->key_offset : NULL;
}

static void slot_set(Hashmap *h, size_t i, const void *key, void *value) {
        if (h->ops->key_in_value)
                h->values[i] = value;
        else
                h->slots[i] = (Slot) { .key = key, .value = value };
}

static void slot_move(Hashmap *h, size_t to, size_t from) {
        slot_set(h, to, slot_key(h, from), slot_value(h, from));
}

uint64_t hash_bytes(const void *p, size_t n, uint64_t h) {
        const unsigned char *b = p;
        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * FNV_PRIME;
        return h;
}

uint64_t hash_string_case(const char *s, uint64_t h) {
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c >= 'A' && c <= 'Z')
                        c = (unsigned char) (c - 'A' + 'a');
                h = (h ^ c) * FNV_PRIME;
        }
        return h;
}

static uint64_t string_hash(const void *key) {
        return hash_bytes(key, strlen(key), FNV_OFFSET);
}

static bool string_equal(const void *a, const void *b) {
        return strcmp(a, b) == 0;
}

static uint64_t string_case_hash(const void *key) {
        return hash_string_case(key, FNV_OFFSET);
}

static bool string_case_equal(const void *a, const void *b) {
        return strcasecmp(a, b) == 0;
}

const HashOps string_hash_ops = { .hash = string_hash, .equal = string_equal };
const HashOps string_case_hash_ops = { .hash = string_case_hash, .equal = string_case_equal };

/* The home slot: FNV's low bits depend on the last bytes only, so they are mixed with the high
 * ones first (the finalizer of MurmurHash3). */
static size_t home_slot(const Hashmap *h, const void *key) {
        uint64_t x = h->ops->hash(key);
        x ^= x >> 33;
        x *= UINT64_C(0xff51afd7ed558ccd);
        x ^= x >> 33;
        return (size_t) x & (h->n_slots - 1);
}

static bool fits(size_t n, size_t n_slots) {
        return n <= n_slots / 10 * 7 + n_slots % 10 * 7 / 10;
}

Hashmap *hashmap_new(const HashOps *ops) {
        if (!ops || !ops->hash || !ops->equal)
                return NULL;
        Hashmap *h = calloc(1, sizeof *h);
        if (h)
                h->ops = ops;
        return h;
}

Hashmap *hashmap_free(Hashmap *h) {
        if (h) {
                free(h->slots);
                free(h);
        }
        return NULL;
}

static int resize(Hashmap *h, size_t n_slots) {
        Hashmap old = *h;
        void *slots = calloc(n_slots, slot_size(h->ops));
        if (!slots)
                return -ENOMEM;
        h->slots = slots;
        h->n_slots = n_slots;
        for (size_t i = 0; i < old.n_slots; i++) {
                const void *key = slot_key(&old, i);
                if (!key)
                        continue;
                size_t j = home_slot(h, key);
                while (slot_key(h, j))
                        j = (j + 1) & (n_slots - 1);
                slot_set(h, j, key, slot_value(&old, i));
        }
        free(old.slots);
        return 0;
}

int hashmap_reserve(Hashmap *h, size_t n) {
        size_t n_slots = h->n_slots ? h->n_slots : SLOTS_MIN;

        while (!fits(n, n_slots)) {
                if (n_slots > SIZE_MAX / 2 / slot_size(h->ops))
                        return -ENOMEM;
                n_slots *= 2;
        }
        return n_slots == h->n_slots ? 0 : resize(h, n_slots);
}

/* The slot holding key, or the free slot where the search ended. */
static size_t find(const Hashmap *h, const void *key) {
        size_t i = home_slot(h, key);
        for (const void *k; (k = slot_key(h, i)) && !h->ops->equal(k, key);)
                i = (i + 1) & (h->n_slots - 1);
        return i;
}

int hashmap_put(Hashmap *h, const void *key, void *value) {
        if (!key || (h->ops->key_in_value && (!value || (const char *) value + h->ops->key_offset != key)))
                return -EINVAL;
        /* (a repeated key may grow the table for nothing, once) */
        int r = hashmap_reserve(h, h->n + 1);
        if (r < 0)
                return r;
        size_t i = find(h, key);
        if (slot_key(h, i))
                return -EEXIST;
        slot_set(h, i, key, value);
        h->n++;
        return 0;
}

void *hashmap_get(const Hashmap *h, const void *key) {
        if (!h || h->n == 0 || !key)
                return NULL;
        return slot_value(h, find(h, key));
}

/* Whether slot k lies in the cyclic range (i, j]. */
static bool cyclic_between(size_t i, size_t k, size_t j) {
        return i <= j ? i < k && k <= j : i < k || k <= j;
}

void *hashmap_remove(Hashmap *h, const void *key) {
        if (!h || h->n == 0 || !key)
                return NULL;
        size_t i = find(h, key);
        if (!slot_key(h, i))
                return NULL;
        void *value = slot_value(h, i);

        /* Close the gap: an entry further along the run moves back into it unless its home slot
         * lies after the gap (then the gap does not separate it from its home). */
        for (size_t j = (i + 1) & (h->n_slots - 1); slot_key(h, j); j = (j + 1) & (h->n_slots - 1))
                if (!cyclic_between(i, home_slot(h, slot_key(h, j)), j)) {
                        slot_move(h, i, j);
                        i = j;
                }
        slot_set(h, i, NULL, NULL);
        h->n--;
        return value;
}

size_t hashmap_size(const Hashmap *h) {
        return h ? h->n : 0;
}

bool hashmap_iterate(const Hashmap *h, size_t *state, void **ret_value, const void **ret_key) {
        for (size_t i = *state; h && i < h->n_slots; i++)
                if (slot_key(h, i)) {
                        *state = i + 1;
                        if (ret_value)
                                *ret_value = slot_value(h, i);
                        if (ret_key)
                                *ret_key = slot_key(h, i);
                        return true;
                }
        *state = SIZE_MAX;
        return false;
}
