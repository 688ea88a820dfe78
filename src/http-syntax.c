/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "http-syntax.h"
#include "string-util.h"

char *url_mask_password(const char *url) {
        const char *s = strstr(url, "://");
        if (!s)
                return strdup(url);
        s += 3;
        size_t authority = strcspn(s, "/?#");
        const char *at = NULL;
        for (const char *p = s; p < s + authority; p++)
                if (*p == '@')
                        at = p;
        const char *colon = at ? memchr(s, ':', (size_t) (at - s)) : NULL;
        if (!colon)
                return strdup(url);
        return strdup_printf("%.*s***%s", (int) (colon + 1 - url), url, at);
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
