/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define USEC_PER_SEC ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)
#define USEC_INFINITY ((uint64_t) UINT64_MAX)

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Take ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                 \
        ({                                          \
                __typeof__(p) _tmp_ = (p);          \
                (p) = NULL;                         \
                _tmp_;                              \
        })

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}
static inline bool isempty(const char *s) {
        return !s || !*s;
}

/* Clocks. */
uint64_t now_monotonic_usec(void);
uint64_t now_realtime_usec(void);

/* "2026-11-23T21:54:16Z" into buf (at least 21 bytes). */
char *format_rfc3339(char *buf, size_t size, uint64_t realtime_usec);
/* "2026-12-01T09:14:02.5531200Z" (fractions beyond microseconds dropped) or with a ±hh:mm offset.
 * -EINVAL when malformed, -ERANGE before 1970. */
int parse_rfc3339(const char *s, uint64_t *ret_usec);

/* Random UUID v4 in canonical lowercase form into buf[37] (OpenSSL RAND_bytes). */
int uuid_random(char buf[static 37]);

/* Lowercase ASCII copy. NULL on ENOMEM. */
char *ascii_strlower_dup(const char *s);

/* Formatted allocation, NULL on ENOMEM. */
char *strdup_printf(const char *fmt, ...) _printf_(1, 2);

/* Read a whole (small) file; strips nothing. Returns -errno. Fails with -EFBIG above max. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);

/* Write atomically: temp file in the same directory, fsync, rename. Returns -errno. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* Random double in [0,1) from a cheap PRNG seeded from OpenSSL; for jitter only. */
double random_unit(void);

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))
