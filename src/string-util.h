/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"

/* String helpers: comparison, formatting, trimming, character classes, and quoting values for
 * messages. Pure. */

#define WHITESPACE " \t"

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

/* Formatted allocation, NULL on ENOMEM. */
char *strdup_printf(const char *fmt, ...) _printf_(1, 2);

/* Lowercase ASCII copy. NULL on ENOMEM. */
char *ascii_strlower_dup(const char *s);
/* Lowercases ASCII letters in place; returns s. */
char *ascii_strlower(char *s);

/* Drops leading and trailing white space (isspace()) in place; returns the start. */
char *strip(char *s);

/* dir + "/" + name, without doubling a trailing slash of dir. NULL on ENOMEM. */
char *path_join(const char *dir, const char *name);

/* A copy of s with every occurrence of old (not empty) replaced by new. NULL on ENOMEM. */
char *replace_all(const char *s, const char *old, const char *new);

/* Control characters: bytes below 0x20 and 0x7f. */
bool has_control_chars(const char *s);
/* The same, or a space. */
bool has_space_or_control_chars(const char *s);
/* Whether each of the len bytes of s is an ASCII letter or digit or one of extra (and no NUL). */
bool ascii_alnum_or_in(const char *s, size_t len, const char *extra);

/* Values quoted in messages are cut after this many input bytes. */
#define ESCAPE_MAX 200
#define ESCAPE_BUF (ESCAPE_MAX * 4 + 8)

/* Writes s for a message into buf and returns it: control characters and non-ASCII bytes as
 * \xNN, cut after ESCAPE_MAX bytes ("..." then); with quotes, also surrounded by double quotes,
 * with '"' and '\' escaped. */
const char *escape_message(char buf[static ESCAPE_BUF], const char *s, bool quotes);

/* The length of the valid UTF-8 sequence at s and its code point in *ret; 0 when s starts none
 * (overlong forms, surrogates and truncated sequences included). */
size_t utf8_decode(const char *s, uint32_t *ret);
bool utf8_is_valid(const char *s);
