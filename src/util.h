/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Clocks, whole files, UUIDs and cheap randomness. The macros and string helpers nearly every
 * module wants come along, so that one include is enough for them. */
#include "macro.h"
#include "string-util.h"

#define USEC_PER_SEC ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)
#define USEC_PER_MINUTE (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MINUTE)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)
#define USEC_INFINITY ((uint64_t) UINT64_MAX)

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

/* Read a whole (small) file; strips nothing. Returns -errno. Fails with -EFBIG above max. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);

/* Write atomically: temp file in the same directory, fsync, rename. Returns -errno. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* Random double in [0,1) from a cheap PRNG seeded from OpenSSL; for jitter only. */
double random_unit(void);
