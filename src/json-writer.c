/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "json-writer.h"
#include "macro.h"

bool json_writer_reserve(JsonWriter *w, size_t n) {
        if (w->failed)
                return false;
        if (w->size + n + 1 <= w->alloc)
                return true;
        /* An event is ~600 bytes; 512 keeps the first block out of glibc's large bins, whose
         * allocation consolidates the fast bins every time. */
        size_t a = w->alloc ? w->alloc : 512;
        while (a < w->size + n + 1)
                a *= 2;
        char *b = realloc(w->buf, a);
        if (!b) {
                w->failed = true;
                return false;
        }
        w->buf = b;
        w->alloc = a;
        return true;
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

/* The first byte in [p, end) that needs escaping, or end. */
static const char *plain_run(const char *p, const char *end) {
        for (uint64_t x; end - p >= 8; p += 8) {
                memcpy(&x, p, sizeof x);
                if (word_needs_escape(x))
                        break;
        }
        while (p < end && !needs_escape((unsigned char) *p))
                p++;
        return p;
}

void json_writer_escaped(JsonWriter *w, const char *s, size_t n) {
        const char *end = s + n;
        for (const char *p = s; p < end;) {
                const char *q = plain_run(p, end);
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
}

void json_writer_string(JsonWriter *w, const char *s) {
        size_t n = strlen(s);
        if (!json_writer_reserve(w, n + 2))
                return;
        w->buf[w->size++] = '"';
        json_writer_escaped(w, s, n);
        json_writer_char(w, '"');
}

void json_writer_key_string(JsonWriter *w, const char *key) {
        json_writer_next(w);
        json_writer_string(w, key);
        json_writer_char(w, ':');
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

char *json_writer_finish(JsonWriter *w) {
        json_writer_reserve(w, 0); /* room for the NUL */
        char *s = w->buf;
        if (w->failed)
                s = mfree(s);
        else
                s[w->size] = 0;
        *w = (JsonWriter) {};
        return s;
}
