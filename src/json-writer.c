/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-writer.h"
#include "macro.h"

static void writer_grow(JsonWriter *w, size_t n) {
        if (w->failed || w->size + n + 1 <= w->alloc)
                return;
        size_t a = w->alloc ? w->alloc : 1024; /* an event is ~600 bytes: one allocation */
        while (a < w->size + n + 1)
                a *= 2;
        char *b = realloc(w->buf, a);
        if (!b) {
                w->failed = true;
                return;
        }
        w->buf = b;
        w->alloc = a;
}

void json_writer_raw(JsonWriter *w, const char *s, size_t n) {
        writer_grow(w, n);
        if (w->failed)
                return;
        memcpy(w->buf + w->size, s, n);
        w->size += n;
}

#define raw_lit(w, lit) json_writer_raw((w), "" lit, sizeof(lit) - 1)

/* The bytes a JSON string cannot hold as they are: '"', '\\' and the control characters. */
static bool needs_escape(unsigned char c) {
        return c < 0x20 || c == '"' || c == '\\';
}

/* Whether one of the 8 bytes in x is below 0x20 (NUL included), '"' or '\\': the bit tricks of
 * "Bit Twiddling Hacks" (haszero, hasless) on a word at a time. */
static bool word_needs_escape(uint64_t x) {
        const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
        uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
        return (((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash)) & highs;
}

void json_writer_string(JsonWriter *w, const char *s) {
        raw_lit(w, "\"");
        const char *end = s + strlen(s);
        for (const char *p = s; p < end;) {
                const char *q = p;
                for (uint64_t x; end - q >= 8; q += 8) {
                        memcpy(&x, q, sizeof x);
                        if (word_needs_escape(x))
                                break;
                }
                while (q < end && !needs_escape((unsigned char) *q))
                        q++;
                json_writer_raw(w, p, (size_t) (q - p));
                p = q;
                if (p == end)
                        break;
                unsigned char c = (unsigned char) *p++;
                char esc[8];
                switch (c) {
                case '"':
                        raw_lit(w, "\\\"");
                        break;
                case '\\':
                        raw_lit(w, "\\\\");
                        break;
                case '\b':
                        raw_lit(w, "\\b");
                        break;
                case '\f':
                        raw_lit(w, "\\f");
                        break;
                case '\n':
                        raw_lit(w, "\\n");
                        break;
                case '\r':
                        raw_lit(w, "\\r");
                        break;
                case '\t':
                        raw_lit(w, "\\t");
                        break;
                default:
                        snprintf(esc, sizeof esc, "\\u%04x", c);
                        json_writer_raw(w, esc, 6);
                }
        }
        raw_lit(w, "\"");
}

void json_writer_int(JsonWriter *w, int64_t v) {
        /* digits from the end, without snprintf (a first run writes half a million numbers) */
        char b[24], *p = b + sizeof b;
        uint64_t u = v < 0 ? -(uint64_t) v : (uint64_t) v;
        do
                *--p = (char) ('0' + u % 10);
        while ((u /= 10) > 0);
        if (v < 0)
                *--p = '-';
        json_writer_raw(w, p, (size_t) (b + sizeof b - p));
}

void json_writer_open(JsonWriter *w, char c) {
        json_writer_raw(w, &c, 1);
        w->comma = false;
}

void json_writer_close(JsonWriter *w, char c) {
        json_writer_raw(w, &c, 1);
        w->comma = true;
}

void json_writer_next(JsonWriter *w) {
        if (w->comma)
                raw_lit(w, ",");
        w->comma = true;
}

void json_writer_key(JsonWriter *w, const char *key) {
        json_writer_next(w);
        json_writer_string(w, key);
        raw_lit(w, ":");
}

void json_writer_null(JsonWriter *w) {
        raw_lit(w, "null");
}

void json_writer_member_string(JsonWriter *w, const char *key, const char *s) {
        json_writer_key(w, key);
        if (s)
                json_writer_string(w, s);
        else
                json_writer_null(w);
}

void json_writer_member_int(JsonWriter *w, const char *key, int64_t v) {
        json_writer_key(w, key);
        json_writer_int(w, v);
}

void json_writer_member_int_or_null(JsonWriter *w, const char *key, bool present, int64_t v) {
        json_writer_key(w, key);
        if (present)
                json_writer_int(w, v);
        else
                json_writer_null(w);
}

char *json_writer_finish(JsonWriter *w) {
        writer_grow(w, 0); /* room for the NUL */
        char *s = w->buf;
        if (w->failed)
                s = mfree(s);
        else
                s[w->size] = 0;
        *w = (JsonWriter) {};
        return s;
}
