/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hashmap.h"
#include "util.h"

/* ---- integer keys with a chosen amount of collisions ---- */

static unsigned hash_modulus; /* 0: every key its own hash */

static uint64_t int_hash(const void *key) {
        unsigned v = *(const unsigned *) key;
        return hash_modulus ? v % hash_modulus : v;
}

static bool int_equal(const void *a, const void *b) {
        return *(const unsigned *) a == *(const unsigned *) b;
}

static const HashOps int_hash_ops = { .hash = int_hash, .equal = int_equal };
/* The same map with one pointer a slot: each value is its own key (key_offset 0). */
static const HashOps int_set_ops = { .hash = int_hash, .equal = int_equal, .key_in_value = true };
static bool set_mode; /* the tests below run with int_set_ops */

static uint64_t constant_hash(const void *key) {
        return 42;
}

static const HashOps constant_hash_ops = { .hash = constant_hash, .equal = int_equal };

#define N_KEYS 2000u
static unsigned keys[N_KEYS], probes[N_KEYS]; /* equal values, different pointers */

static int setup_keys(void **state) {
        for (unsigned i = 0; i < N_KEYS; i++)
                keys[i] = probes[i] = i;
        return 0;
}

static void *value_of(unsigned i) {
        return set_mode ? (void *) &keys[i] : (void *) (uintptr_t) (i + 1);
}

static const HashOps *ops(void) {
        return set_mode ? &int_set_ops : &int_hash_ops;
}

static void test_fnv(void **state) {
        /* the published FNV-1a 64-bit test vectors */
        assert_true(hash_bytes("", 0, FNV_OFFSET) == UINT64_C(0xcbf29ce484222325));
        assert_true(hash_bytes("a", 1, FNV_OFFSET) == UINT64_C(0xaf63dc4c8601ec8c));
        assert_true(hash_bytes("foobar", 6, FNV_OFFSET) == UINT64_C(0x85944171f73967e8));
        /* parts fed one after the other are the whole */
        assert_true(hash_bytes("bar", 3, hash_bytes("foo", 3, FNV_OFFSET)) == UINT64_C(0x85944171f73967e8));
        assert_true(hash_string_case("FooBAR", FNV_OFFSET) == UINT64_C(0x85944171f73967e8));
        assert_true(hash_string_case("", FNV_OFFSET) == FNV_OFFSET);
}

static void test_strings(void **state) {
        Hashmap *h = hashmap_new(&string_hash_ops);
        assert_non_null(h);
        assert_int_equal(hashmap_size(h), 0);
        assert_null(hashmap_get(h, "a"));
        assert_null(hashmap_remove(h, "a"));

        assert_int_equal(hashmap_put(h, "a", (void *) "A"), 0);
        assert_int_equal(hashmap_put(h, "b", (void *) "B"), 0);
        assert_int_equal(hashmap_put(h, "a", (void *) "other"), -EEXIST);
        assert_int_equal(hashmap_put(h, NULL, (void *) "x"), -EINVAL);
        assert_int_equal(hashmap_size(h), 2);

        char a[] = "a"; /* another pointer, the same string */
        assert_string_equal(hashmap_get(h, a), "A");
        assert_string_equal(hashmap_get(h, "b"), "B");
        assert_null(hashmap_get(h, "A"));
        assert_null(hashmap_get(h, NULL));

        assert_string_equal(hashmap_remove(h, a), "A");
        assert_null(hashmap_get(h, "a"));
        assert_null(hashmap_remove(h, "a"));
        assert_int_equal(hashmap_size(h), 1);
        assert_int_equal(hashmap_put(h, "a", (void *) "again"), 0);
        assert_string_equal(hashmap_get(h, "a"), "again");
        assert_null(hashmap_free(h));

        assert_null(hashmap_free(NULL));
        assert_int_equal(hashmap_size(NULL), 0);
        assert_null(hashmap_get(NULL, "a"));
        assert_null(hashmap_new(NULL));
}

static void test_case_insensitive(void **state) {
        _cleanup_(hashmap_freep) Hashmap *h = hashmap_new(&string_case_hash_ops);
        assert_non_null(h);
        assert_int_equal(hashmap_put(h, "Contoso-ABC", (void *) "1"), 0);
        assert_int_equal(hashmap_put(h, "contoso-abc", (void *) "2"), -EEXIST);
        assert_string_equal(hashmap_get(h, "CONTOSO-abc"), "1");
        assert_null(hashmap_get(h, "contoso-abd"));
        assert_string_equal(hashmap_remove(h, "contoso-ABC"), "1");
        assert_int_equal(hashmap_size(h), 0);
}

/* The manager's order table: a key is the caller's struct of two strings. */
typedef struct OrderKey {
        const char *customer_id;
        const char *order_id;
} OrderKey;

static uint64_t order_key_hash(const void *key) {
        const OrderKey *k = key;
        uint64_t h = hash_bytes(k->customer_id, strlen(k->customer_id), FNV_OFFSET);
        h = hash_bytes("", 1, h); /* "ab"+"c" is not "a"+"bc" */
        return hash_bytes(k->order_id, strlen(k->order_id), h);
}

static bool order_key_equal(const void *a, const void *b) {
        const OrderKey *x = a, *y = b;
        return streq(x->customer_id, y->customer_id) && streq(x->order_id, y->order_id);
}

static const HashOps order_key_hash_ops = { .hash = order_key_hash, .equal = order_key_equal };

static void test_composite_key(void **state) {
        static const OrderKey k1 = { "ab", "c" }, k2 = { "a", "bc" }, k3 = { "c1", "o1" };
        _cleanup_(hashmap_freep) Hashmap *h = hashmap_new(&order_key_hash_ops);
        assert_non_null(h);
        assert_int_equal(hashmap_put(h, &k1, (void *) &k1), 0);
        assert_int_equal(hashmap_put(h, &k2, (void *) &k2), 0);
        assert_int_equal(hashmap_put(h, &k3, (void *) &k3), 0);

        char customer[] = "c1", order[] = "o1";
        OrderKey probe = { customer, order };
        assert_ptr_equal(hashmap_get(h, &probe), &k3);
        assert_int_equal(hashmap_put(h, &probe, NULL), -EEXIST);
        probe.customer_id = "ab";
        probe.order_id = "c";
        assert_ptr_equal(hashmap_get(h, &probe), &k1);
        probe.customer_id = "a";
        probe.order_id = "bc";
        assert_ptr_equal(hashmap_remove(h, &probe), &k2);
        assert_int_equal(hashmap_size(h), 2);
}

/* Every key hashes alike: one run that wraps around the end of the table. */
static void test_collisions(void **state) {
        _cleanup_(hashmap_freep) Hashmap *h = hashmap_new(&constant_hash_ops);
        assert_non_null(h);
        for (unsigned i = 0; i < 12; i++)
                assert_int_equal(hashmap_put(h, &keys[i], value_of(i)), 0);
        for (unsigned i = 0; i < 12; i++)
                assert_ptr_equal(hashmap_get(h, &probes[i]), value_of(i));
        assert_null(hashmap_get(h, &probes[12]));
        assert_int_equal(hashmap_put(h, &probes[5], NULL), -EEXIST);

        /* from the middle, the start and the end of the run */
        static const unsigned order[] = { 5, 0, 11, 6, 1, 10, 2, 9, 3, 8, 4, 7 };
        for (size_t n = 0; n < ELEMENTSOF(order); n++) {
                assert_ptr_equal(hashmap_remove(h, &probes[order[n]]), value_of(order[n]));
                for (size_t m = 0; m < ELEMENTSOF(order); m++)
                        assert_ptr_equal(hashmap_get(h, &probes[order[m]]), m <= n ? NULL : value_of(order[m]));
        }
        assert_int_equal(hashmap_size(h), 0);
}

static void check_against(const Hashmap *h, const bool *present) {
        size_t n = 0;
        for (unsigned i = 0; i < N_KEYS; i++) {
                assert_ptr_equal(hashmap_get(h, &probes[i]), present[i] ? value_of(i) : NULL);
                n += present[i];
        }
        assert_int_equal(hashmap_size(h), n);

        /* iteration: each entry once, with its key and value */
        bool seen[N_KEYS] = {};
        size_t state = 0, visited = 0;
        void *value;
        const void *key;
        while (hashmap_iterate(h, &state, &value, &key)) {
                unsigned k = *(const unsigned *) key;
                assert_true(k < N_KEYS);
                assert_ptr_equal(key, &keys[k]);
                assert_true(present[k]);
                assert_false(seen[k]);
                assert_ptr_equal(value, value_of(k));
                seen[k] = true;
                visited++;
        }
        assert_int_equal(visited, n);
        assert_false(hashmap_iterate(h, &state, &value, &key));
}

/* Random puts and removes, checked against a plain array after every batch. */
static void random_round(unsigned modulus, unsigned span, unsigned seed) {
        _cleanup_(hashmap_freep) Hashmap *h = hashmap_new(ops());
        bool present[N_KEYS] = {};
        assert_non_null(h);
        hash_modulus = modulus;

        for (unsigned step = 0; step < 40000; step++) {
                unsigned i = (unsigned) rand_r(&seed) % span;
                if (rand_r(&seed) % 3 == 0) {
                        assert_ptr_equal(hashmap_remove(h, &probes[i]), present[i] ? value_of(i) : NULL);
                        present[i] = false;
                } else {
                        assert_int_equal(hashmap_put(h, &keys[i], value_of(i)), present[i] ? -EEXIST : 0);
                        present[i] = true;
                }
                if (step % 2000 == 0)
                        check_against(h, present);
        }
        check_against(h, present);

        /* and empty again, in random order */
        for (unsigned left = (unsigned) hashmap_size(h); left > 0;) {
                unsigned i = (unsigned) rand_r(&seed) % span;
                if (!present[i])
                        continue;
                assert_ptr_equal(hashmap_remove(h, &probes[i]), value_of(i));
                present[i] = false;
                left--;
        }
        check_against(h, present);
        hash_modulus = 0;
}

static void test_random_against_reference(void **state) {
        random_round(0, N_KEYS, 1);     /* distinct hashes */
        random_round(13, N_KEYS, 2);    /* long runs of equal hashes */
        random_round(1, 300, 3);        /* every key alike */
        random_round(0, 40, 4);         /* small: growth and many removals in a small table */
        random_round(1024, N_KEYS, 5);  /* hashes equal in the low bits only */
}

static void test_iteration(void **state) {
        _cleanup_(hashmap_freep) Hashmap *h = hashmap_new(ops());
        size_t it = 0;
        assert_false(hashmap_iterate(h, &it, NULL, NULL));
        it = 0;
        assert_false(hashmap_iterate(NULL, &it, NULL, NULL));

        bool present[N_KEYS] = {};
        for (unsigned i = 0; i < N_KEYS; i += 3) {
                assert_int_equal(hashmap_put(h, &keys[i], value_of(i)), 0);
                present[i] = true;
        }
        check_against(h, present);

        it = 0;
        size_t n = 0;
        while (hashmap_iterate(h, &it, NULL, NULL))
                n++;
        assert_int_equal(n, hashmap_size(h));
}

static void test_growth(void **state) {
        _cleanup_(hashmap_freep) Hashmap *h = hashmap_new(&int_hash_ops);
        static unsigned many[100000];
        assert_non_null(h);

        assert_int_equal(hashmap_reserve(h, 0), 0);
        assert_int_equal(hashmap_reserve(h, ELEMENTSOF(many)), 0);
        for (unsigned i = 0; i < ELEMENTSOF(many); i++) {
                many[i] = i * 7919u;
                assert_int_equal(hashmap_put(h, &many[i], (void *) (uintptr_t) (i + 1)), 0);
        }
        assert_int_equal(hashmap_size(h), ELEMENTSOF(many));
        for (unsigned i = 0; i < ELEMENTSOF(many); i++) {
                unsigned probe = i * 7919u;
                assert_ptr_equal(hashmap_get(h, &probe), (void *) (uintptr_t) (i + 1));
        }
        /* a smaller reservation keeps what is there */
        assert_int_equal(hashmap_reserve(h, 10), 0);
        assert_int_equal(hashmap_size(h), ELEMENTSOF(many));

        /* growing from empty one by one */
        _cleanup_(hashmap_freep) Hashmap *g = hashmap_new(ops());
        for (unsigned i = 0; i < N_KEYS; i++) {
                assert_int_equal(hashmap_put(g, &keys[i], value_of(i)), 0);
                assert_ptr_equal(hashmap_get(g, &probes[i / 2]), value_of(i / 2));
        }
        assert_int_equal(hashmap_size(g), N_KEYS);
}

/* One pointer a slot: the same tests, and a key that is not the value's is refused. */
static int setup_set_mode(void **state) {
        set_mode = true;
        return setup_keys(state);
}

static int teardown_set_mode(void **state) {
        set_mode = false;
        return 0;
}

static void test_set_mode_key_must_be_values(void **state) {
        _cleanup_(hashmap_freep) Hashmap *h = hashmap_new(&int_set_ops);
        assert_int_equal(hashmap_put(h, &probes[1], &keys[1]), -EINVAL);
        assert_int_equal(hashmap_put(h, &keys[1], NULL), -EINVAL);
        assert_int_equal(hashmap_put(h, &keys[1], &keys[1]), 0);
        assert_int_equal(hashmap_put(h, &keys[1], &keys[1]), -EEXIST);
        assert_ptr_equal(hashmap_get(h, &probes[1]), &keys[1]);
        assert_ptr_equal(hashmap_remove(h, &probes[1]), &keys[1]);
        assert_int_equal(hashmap_size(h), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fnv),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_case_insensitive),
                cmocka_unit_test(test_composite_key),
                cmocka_unit_test_setup(test_collisions, setup_keys),
                cmocka_unit_test_setup(test_random_against_reference, setup_keys),
                cmocka_unit_test_setup(test_iteration, setup_keys),
                cmocka_unit_test_setup(test_growth, setup_keys),
                cmocka_unit_test_setup_teardown(test_random_against_reference, setup_set_mode, teardown_set_mode),
                cmocka_unit_test_setup_teardown(test_iteration, setup_set_mode, teardown_set_mode),
                cmocka_unit_test_setup_teardown(test_growth, setup_set_mode, teardown_set_mode),
                cmocka_unit_test_setup_teardown(test_set_mode_key_must_be_values, setup_set_mode, teardown_set_mode),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
