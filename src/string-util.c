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
