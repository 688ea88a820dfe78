/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "string-util.h"

char *strdup_printf(const char *fmt, ...) {
        va_list ap;
        char *r;
        va_start(ap, fmt);
        int n = vasprintf(&r, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : r;
}

char *ascii_strlower(char *s) {
        for (char *p = s; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return s;
}

char *ascii_strlower_dup(const char *s) {
        char *r = strdup(s);
        return r ? ascii_strlower(r) : NULL;
}

char *strip(char *s) {
        while (isspace((unsigned char) *s))
                s++;
        size_t l = strlen(s);
        while (l > 0 && isspace((unsigned char) s[l - 1]))
                s[--l] = 0;
        return s;
}

char *path_join(const char *dir, const char *name) {
        size_t l = strlen(dir);
        return strdup_printf("%s%s%s", dir, l > 0 && dir[l - 1] == '/' ? "" : "/", name);
}

char *replace_all(const char *s, const char *old, const char *new) {
        size_t lo = strlen(old), ln = strlen(new), n = 0;

        if (lo == 0)
                return strdup(s);
        for (const char *p = strstr(s, old); p; p = strstr(p + lo, old))
                n++;
        if (ln > 0 && n > (SIZE_MAX - strlen(s) - 1) / ln)
                return NULL;
        char *r = malloc(strlen(s) + n * ln + 1), *o = r;
        if (!r)
                return NULL;
        for (const char *p; (p = strstr(s, old)); s = p + lo) {
                memcpy(o, s, (size_t) (p - s));
                o += p - s;
                memcpy(o, new, ln);
                o += ln;
        }
        strcpy(o, s);
        return r;
}

bool has_control_chars(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s == 0x7f)
                        return true;
        return false;
}

bool has_space_or_control_chars(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s <= 0x20 || (unsigned char) *s == 0x7f)
                        return true;
        return false;
}

bool ascii_alnum_or_in(const char *s, size_t len, const char *extra) {
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) s[i];
                if (ch == 0 || ((!isalnum(ch) || ch >= 0x80) && !strchr(extra, ch)))
                        return false;
        }
        return true;
}

const char *escape_message(char buf[static ESCAPE_BUF], const char *s, bool quotes) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0, i;

        if (quotes)
                buf[o++] = '"';
        for (i = 0; s[i] && i < ESCAPE_MAX; i++) {
                unsigned char ch = (unsigned char) s[i];
                if (quotes && (ch == '"' || ch == '\\')) {
                        buf[o++] = '\\';
                        buf[o++] = (char) ch;
                } else if (ch < 0x20 || ch >= 0x7f) {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        buf[o++] = hex[ch >> 4];
                        buf[o++] = hex[ch & 15];
                } else
                        buf[o++] = (char) ch;
        }
        if (s[i]) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        if (quotes)
                buf[o++] = '"';
        buf[o] = 0;
        return buf;
}

/* The length of the valid UTF-8 sequence at s and its code point; 0 when s starts none (overlong
 * forms, surrogates and truncated sequences included). */
size_t utf8_decode(const char *s, uint32_t *ret) {
        const unsigned char *u = (const unsigned char *) s;
        uint32_t cp;
        size_t n;

        if (u[0] < 0x80) {
                *ret = u[0];
                return 1;
        }
        if (u[0] >= 0xc2 && u[0] <= 0xdf) {
                n = 2;
                cp = u[0] & 0x1f;
        } else if ((u[0] & 0xf0) == 0xe0) {
                n = 3;
                cp = u[0] & 0x0f;
        } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
                n = 4;
                cp = u[0] & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((u[i] & 0xc0) != 0x80) /* also stops at the NUL */
                        return 0;
                cp = cp << 6 | (u[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret = cp;
        return n;
}

bool utf8_is_valid(const char *s) {
        for (uint32_t cp; *s;) {
                size_t n = utf8_decode(s, &cp);
                if (n == 0)
                        return false;
                s += n;
        }
        return true;
}
