/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JSON written directly into a growing buffer, for what is written for every answer or event (the
 * store's snapshots, CloudEvents): json-c spent most of the time of a first run building objects,
 * hashing their keys and printing them. The output is byte for byte what json-c prints with
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, keys in the order they are written. */

typedef struct JsonWriter {
        char *buf;
        size_t size, alloc;
        bool failed; /* ENOMEM at some point: json_writer_finish() returns NULL */
        bool comma;  /* a value was written in the current object or array: the next one needs ',' */
} JsonWriter;

void json_writer_raw(JsonWriter *w, const char *s, size_t n);
/* A string as json-c escapes it: '"', '\', \b \f \n \r \t, other control characters as \u00XX. */
void json_writer_string(JsonWriter *w, const char *s);
void json_writer_int(JsonWriter *w, int64_t v);

/* Structure: '{' and '}' / '[' and ']', and "key": before a member (with the ',' when needed). */
void json_writer_open(JsonWriter *w, char c);
void json_writer_close(JsonWriter *w, char c);
void json_writer_key(JsonWriter *w, const char *key);
/* A value inside an array (with the ',' when needed). */
void json_writer_next(JsonWriter *w);

void json_writer_null(JsonWriter *w);
/* A string member, or null when s is NULL. */
void json_writer_member_string(JsonWriter *w, const char *key, const char *s);
void json_writer_member_int(JsonWriter *w, const char *key, int64_t v);
/* An integer member, or null when !present. */
void json_writer_member_int_or_null(JsonWriter *w, const char *key, bool present, int64_t v);

/* The NUL-terminated text (free()), or NULL on ENOMEM. */
char *json_writer_finish(JsonWriter *w);
