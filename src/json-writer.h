/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* JSON written directly into a growing buffer, for what is written for every answer or event (the
 * store's snapshots, CloudEvents): json-c spent most of the time of a first run building objects,
 * hashing their keys and printing them. The output is byte for byte what json-c prints with
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, keys in the order they are written.
 * A writer may hold several documents one after another (json_writer_raw() a NUL between them):
 * a batch of events is rendered into one buffer. */

typedef struct JsonWriter {
        char *buf;
        size_t size, alloc;
        bool failed; /* ENOMEM at some point: json_writer_finish() returns NULL */
        bool comma;  /* a value was written in the current object or array: the next one needs ',' */
} JsonWriter;

/* Room for n more bytes and a NUL; false after ENOMEM. */
bool json_writer_reserve(JsonWriter *w, size_t n);

static inline void json_writer_raw(JsonWriter *w, const char *s, size_t n) {
        if (w->size + n >= w->alloc && !json_writer_reserve(w, n))
                return;
        memcpy(w->buf + w->size, s, n);
        w->size += n;
}

static inline void json_writer_char(JsonWriter *w, char c) {
        if (w->size + 1 >= w->alloc && !json_writer_reserve(w, 1))
                return;
        w->buf[w->size++] = c;
}

/* The n bytes of s as the inside of a JSON string, escaped as json-c escapes them: '"', '\',
 * \b \f \n \r \t, other control characters as \u00XX. */
void json_writer_escaped(JsonWriter *w, const char *s, size_t n);
/* A string, quoted and escaped. */
void json_writer_string(JsonWriter *w, const char *s);
void json_writer_int(JsonWriter *w, int64_t v);

/* Structure: '{' and '}' / '[' and ']', and "key": before a member (with the ',' when needed). */
static inline void json_writer_open(JsonWriter *w, char c) {
        json_writer_char(w, c);
        w->comma = false;
}

static inline void json_writer_close(JsonWriter *w, char c) {
        json_writer_char(w, c);
        w->comma = true;
}

/* A value inside an array (with the ',' when needed). */
static inline void json_writer_next(JsonWriter *w) {
        if (w->comma)
                json_writer_char(w, ',');
        w->comma = true;
}

/* A key already quoted, with its ':' ("\"status\":"): written as it is. */
static inline void json_writer_key_raw(JsonWriter *w, const char *quoted, size_t n) {
        json_writer_next(w);
        json_writer_raw(w, quoted, n);
}

/* A key given as a string literal, which must need no escaping (no '"', '\' or control character;
 * every key provwatch writes is plain ASCII): it is copied as it is, without being scanned. A key
 * that is not a literal does not compile; those go through json_writer_key_string(). */
#define json_writer_key(w, lit) json_writer_key_raw((w), "\"" lit "\":", sizeof("\"" lit "\":") - 1)
/* Any key (a status from Partner Center), escaped. */
void json_writer_key_string(JsonWriter *w, const char *key);

static inline void json_writer_null(JsonWriter *w) {
        json_writer_raw(w, "null", 4);
}

/* A string, or null when s is NULL. */
static inline void json_writer_string_or_null(JsonWriter *w, const char *s) {
        if (s)
                json_writer_string(w, s);
        else
                json_writer_null(w);
}

/* An integer, or null when !present. */
static inline void json_writer_int_or_null(JsonWriter *w, bool present, int64_t v) {
        if (present)
                json_writer_int(w, v);
        else
                json_writer_null(w);
}

/* Members with a literal key (json_writer_key()). */
#define json_writer_member_string(w, lit, s)                                                                          \
        do {                                                                                                          \
                json_writer_key(w, lit);                                                                              \
                json_writer_string_or_null(w, s);                                                                     \
        } while (0)
#define json_writer_member_int(w, lit, v)                                                                             \
        do {                                                                                                          \
                json_writer_key(w, lit);                                                                              \
                json_writer_int(w, v);                                                                                \
        } while (0)
#define json_writer_member_int_or_null(w, lit, present, v)                                                            \
        do {                                                                                                          \
                json_writer_key(w, lit);                                                                              \
                json_writer_int_or_null(w, present, v);                                                               \
        } while (0)

/* The NUL-terminated text (free()), or NULL on ENOMEM. */
char *json_writer_finish(JsonWriter *w);
