/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-syntax.h"
#include "string-util.h"

/* ASCII, as escape_message() shortens: messages escape anything else */
#define MASK "..."

/* Random-looking text: long, or letters mixed with digits, or mixed case. Words such as "hooks",
 * "services", "v1", "invoke" or "provwatch" are not. */
static bool looks_like_token(const char *s, size_t n) {
        bool digit = false, lower = false, upper = false;

        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char) s[i];
                digit = digit || isdigit(ch);
                lower = lower || islower(ch);
                upper = upper || isupper(ch);
        }
        return n >= 16 || (n >= 4 && digit && (lower || upper)) || (n >= 8 && lower && upper);
}

static char *append(char *o, const char *s, size_t n) {
        memcpy(o, s, n);
        return o + n;
}

char *url_mask(const char *url) {
        /* a masked part is never longer than what it replaces, but for ":***", "?..." and "#..." */
        char *out = malloc(strlen(url) + 16), *o = out;
        const char *p = url, *scheme = strstr(url, "://");

        if (!out)
                return NULL;
        if (scheme) {
                o = append(o, url, (size_t) (scheme + 3 - url));
                p = scheme + 3;
                size_t authority = strcspn(p, "/?#");
                const char *at = NULL;
                for (const char *q = p; q < p + authority; q++)
                        if (*q == '@')
                                at = q;
                if (at) {
                        const char *colon = memchr(p, ':', (size_t) (at - p));
                        size_t user = (size_t) ((colon ? colon : at) - p);
                        o = looks_like_token(p, user) ? append(o, MASK, strlen(MASK)) : append(o, p, user);
                        if (colon)
                                o = append(o, ":***", 4);
                        o = append(o, "@", 1);
                        authority -= (size_t) (at + 1 - p);
                        p = at + 1;
                }
                o = append(o, p, authority);
                p += authority;
        }
        while (*p && *p != '?' && *p != '#') {
                size_t n = *p == '/' ? 1 : strcspn(p, "/?#");
                o = n > 1 && looks_like_token(p, n) ? append(o, MASK, strlen(MASK)) : append(o, p, n);
                p += n;
        }
        if (*p == '?') {
                o = append(o, "?", 1);
                if (p[1] && p[1] != '#')
                        o = append(o, MASK, strlen(MASK));
                p += 1 + strcspn(p + 1, "#");
        }
        if (*p == '#')
                o = append(o, "#" MASK, 1 + strlen(MASK));
        *o = 0;
        return out;
}

bool url_is_valid(const char *url, bool no_query) {
        const char *s;

        if (strncasecmp(url, "http://", 7) == 0)
                s = url + 7;
        else if (strncasecmp(url, "https://", 8) == 0)
                s = url + 8;
        else
                return false;

        for (const char *p = url; *p; p++) {
                unsigned char ch = (unsigned char) *p;
                if (ch <= 0x20 || ch >= 0x7f || strchr("\"<>\\^`{|}", ch))
                        return false;
        }
        if (no_query && strpbrk(url, "?#"))
                return false;

        size_t authority = strcspn(s, "/?#");
        const char *end = s + authority, *host = s;
        for (const char *p = s; p < end; p++)
                if (*p == '@')
                        host = p + 1;

        const char *port;
        if (host < end && *host == '[') {
                const char *close = memchr(host, ']', (size_t) (end - host));
                if (!close || close == host + 1)
                        return false;
                port = close + 1;
                if (port < end && *port != ':')
                        return false;
        } else {
                port = memchr(host, ':', (size_t) (end - host));
                if (!port)
                        port = end;
                if (port == host)
                        return false;
        }
        if (port < end) {
                /* ':' then 1..65535 */
                unsigned long v = 0;
                const char *p = port + 1;
                if (p == end)
                        return false;
                for (; p < end; p++) {
                        if (!isdigit((unsigned char) *p))
                                return false;
                        v = v * 10 + (unsigned long) (*p - '0');
                        if (v > 65535)
                                return false;
                }
                if (v == 0)
                        return false;
        }
        return true;
}

static bool http_token_char(unsigned char ch) {
        return ch != 0 && ch < 0x80 && (isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch));
}

bool http_header_name_is_valid(const char *s) {
        if (isempty(s))
                return false;
        for (; *s; s++)
                if (!http_token_char((unsigned char) *s))
                        return false;
        return true;
}

bool http_header_value_is_valid(const char *s) {
        for (; *s; s++)
                if (((unsigned char) *s < 0x20 && *s != '\t') || *s == 0x7f)
                        return false;
        return true;
}
