/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "parse-util.h"
#include "util.h"

int parse_timespan(const char *s, uint64_t *ret_usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "ms", USEC_PER_MSEC }, { "s", USEC_PER_SEC }, { "m", USEC_PER_MINUTE },
                { "h", USEC_PER_HOUR },  { "d", USEC_PER_DAY },
        };
        uint64_t total = 0;
        bool any = false;

        if (!s)
                return -EINVAL;
        for (const char *p = s;;) {
                p += strspn(p, WHITESPACE);
                if (!*p) {
                        if (!any)
                                return -EINVAL;
                        break;
                }
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                uint64_t n = 0;
                for (; isdigit((unsigned char) *p); p++) {
                        unsigned d = (unsigned) (*p - '0');
                        if (n > (UINT64_MAX - d) / 10)
                                return -EINVAL;
                        n = n * 10 + d;
                }
                p += strspn(p, WHITESPACE);
                size_t l = strspn(p, "abcdefghijklmnopqrstuvwxyz");
                uint64_t mul = 0;
                if (l == 0) {
                        /* A bare number means seconds, but only on its own: "1h30" is more likely a
                         * mistake than 1h and 30s. */
                        if (any || *p)
                                return -EINVAL;
                        mul = USEC_PER_SEC;
                } else
                        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                                if (strlen(units[i].suffix) == l && strncmp(p, units[i].suffix, l) == 0)
                                        mul = units[i].usec;
                if (mul == 0)
                        return -EINVAL;
                if (n > UINT64_MAX / mul)
                        return -EINVAL;
                if (total > UINT64_MAX - n * mul)
                        return -EINVAL;
                total += n * mul;
                p += l;
                any = true;
        }
        if (total == USEC_INFINITY)
                return -EINVAL;
        *ret_usec = total;
        return 0;
}

int parse_boolean(const char *s) {
        if (!s)
                return -EINVAL;
        if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 || streq(s, "1"))
                return 1;
        if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 || streq(s, "0"))
                return 0;
        return -EINVAL;
}

int parse_unsigned(const char *s, unsigned max, unsigned *ret) {
        uint64_t n = 0;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                n = n * 10 + (uint64_t) (*p - '0');
                if (n > max)
                        return -EINVAL;
        }
        *ret = (unsigned)n;
        return 0;
}

char *format_timespan(char *buf, size_t size, uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d", USEC_PER_DAY }, { "h", USEC_PER_HOUR },    { "m", USEC_PER_MINUTE },
                { "s", USEC_PER_SEC }, { "ms", USEC_PER_MSEC }, { "us", 1 },
        };
        size_t o = 0;

        if (size == 0)
                return buf;
        if (usec == 0) {
                snprintf(buf, size, "0");
                return buf;
        }
        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(units) && usec > 0; i++) {
                if (usec < units[i].usec)
                        continue;
                int k = snprintf(buf + o, size - o, "%s%" PRIu64 "%s", o > 0 ? " " : "",
                                 usec / units[i].usec, units[i].suffix);
                if (k < 0 || (size_t) k >= size - o)
                        break;
                o += (size_t) k;
                usec %= units[i].usec;
        }
        return buf;
}

uint64_t timespan_round_for_display(uint64_t usec) {
        uint64_t unit = usec < USEC_PER_SEC ? USEC_PER_MSEC : USEC_PER_SEC;
        if (usec > UINT64_MAX - unit / 2)
                return usec / unit * unit;
        return (usec + unit / 2) / unit * unit;
}
