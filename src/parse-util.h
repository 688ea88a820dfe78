/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Values as people write and read them (SPEC §2): time spans, booleans, numbers. Pure. */

/* "90s", "5m", "1h30m", "1h 30m", "250ms", "0"; a bare number is seconds. 0 or -EINVAL. */
int parse_timespan(const char *s, uint64_t *ret_usec);
/* yes/no/true/false (any case), 1/0: 1, 0, or -EINVAL. */
int parse_boolean(const char *s);
/* Decimal digits only, at most max: 0 or -EINVAL. */
int parse_unsigned(const char *s, unsigned max, unsigned *ret);

/* The one way a time span is shown, in logs, status and summaries: "1d 2h", "1h 30m", "5m 3s",
 * "250ms", "0". Exact, largest unit first, units d h m s ms us, the zero ones left out; what
 * parse_timespan() reads back (but for "us"). Returns buf, which FORMAT_TIMESPAN_MAX always fits. */
#define FORMAT_TIMESPAN_MAX 64
char *format_timespan(char *buf, size_t size, uint64_t usec);

/* A measured duration rounded for people: to whole seconds from a second up, to milliseconds
 * below (format_timespan() then prints "2h 5m 3s" or "250ms", not microseconds). */
uint64_t timespan_round_for_display(uint64_t usec);
