/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc-util.h"
#include "provisioning-scan.h"

/* The fast path of a provisioning page.
 *
 * A first run parses every answer, and json-c spent 85,000 instructions on an average one (525 bytes):
 * an object with a hash table for every JSON object, a copy of every string. Nearly every answer has
 * the same plain shape, which one pass reads directly. It accepts only what it knows the full parser
 * accepts and reads the same way: printable ASCII strings without escapes, integers of at most 18
 * digits, true/false/null, objects and arrays nested at most FAST_MAX_DEPTH deep, and none of the keys
 * it reads twice in one object. Anything else (an escape, UTF-8, a fraction, a null where a value is
 * read, links.next, an error of any kind) gives up, and the body goes through json-c, which also words
 * the errors. */

#define FAST_MAX_DEPTH 16
#define FAST_MAX_QUANTITIES 16
/* Longer statuses (a status may have up to 256 bytes, SPEC §3) are left to json-c: real ones are short. */
#define FAST_STATUS_MAX 64

typedef struct Scan {
        const char *p, *end;
} Scan;

static void scan_space(Scan *s) {
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static bool scan_char(Scan *s, char c) {
        scan_space(s);
        if (s->p < s->end && *s->p == c) {
                s->p++;
                return true;
        }
        return false;
}

static bool scan_string(Scan *s, const char **ret, size_t *ret_len) {
        scan_space(s);
        if (s->p >= s->end || *s->p != '"')
                return false;
        const char *b = ++s->p;
        for (; s->p < s->end; s->p++) {
                unsigned char c = (unsigned char) *s->p;
                if (c == '"') {
                        *ret = b;
                        *ret_len = (size_t) (s->p++ - b);
                        return true;
                }
                if (c < 0x20 || c >= 0x7f || c == '\\')
                        return false;
        }
        return false;
}

static bool scan_int(Scan *s, int64_t *ret) {
        scan_space(s);
        const char *q = s->p;
        bool negative = q < s->end && *q == '-';
        if (negative)
                q++;
        /* a leading zero is not JSON; -0 is left to json-c */
        if (q >= s->end || *q < '0' || *q > '9' || (*q == '0' && (negative || (q + 1 < s->end && q[1] >= '0' && q[1] <= '9'))))
                return false;
        int64_t v = 0;
        for (unsigned n = 0; q < s->end && *q >= '0' && *q <= '9'; q++)
                if (++n > 18)
                        return false;
                else
                        v = v * 10 + (*q - '0');
        if (q < s->end && (*q == '.' || *q == 'e' || *q == 'E'))
                return false;
        s->p = q;
        *ret = negative ? -v : v;
        return true;
}

static bool scan_literal(Scan *s, const char *word) {
        size_t n = strlen(word);
        if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
                return false;
        s->p += n;
        return true;
}

static bool scan_skip(Scan *s, unsigned depth);

/* Calls key() for every member of the object at s->p ('{' already read). */
static bool scan_members(Scan *s, unsigned depth, bool (*key)(Scan *s, const char *k, size_t n, unsigned depth, void *u),
                         void *u) {
        if (scan_char(s, '}'))
                return true;
        do {
                const char *k;
                size_t n;
                if (!scan_string(s, &k, &n) || !scan_char(s, ':'))
                        return false;
                if (!(key ? key(s, k, n, depth, u) : scan_skip(s, depth)))
                        return false;
        } while (scan_char(s, ','));
        return scan_char(s, '}');
}

static bool scan_skip(Scan *s, unsigned depth) {
        const char *str;
        size_t n;
        int64_t v;

        if (depth >= FAST_MAX_DEPTH)
                return false;
        scan_space(s);
        if (s->p >= s->end)
                return false;
        switch (*s->p) {
        case '"':
                return scan_string(s, &str, &n);
        case '{':
                s->p++;
                return scan_members(s, depth + 1, NULL, NULL);
        case '[':
                s->p++;
                if (scan_char(s, ']'))
                        return true;
                do
                        if (!scan_skip(s, depth + 1))
                                return false;
                while (scan_char(s, ','));
                return scan_char(s, ']');
        case 't':
                return scan_literal(s, "true");
        case 'f':
                return scan_literal(s, "false");
        case 'n':
                return scan_literal(s, "null");
        default:
                return scan_int(s, &v);
        }
}

static bool key_is(const char *k, size_t n, const char *name) {
        return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* A status string, NUL-terminated into buf (FAST_STATUS_MAX + 1 bytes); line_item_init() checks it. */
static bool scan_status(Scan *s, char *buf, size_t size) {
        const char *str;
        size_t n;
        if (!scan_string(s, &str, &n) || n >= size)
                return false;
        memcpy(buf, str, n);
        buf[n] = 0;
        return true;
}

typedef struct FastQuantity {
        char status[FAST_STATUS_MAX + 1];
        int64_t quantity;
        bool has_status, has_quantity;
} FastQuantity;

static bool fast_quantity_key(Scan *s, const char *k, size_t n, unsigned depth, void *u) {
        FastQuantity *q = u;
        if (key_is(k, n, "quantity")) {
                if (q->has_quantity || !scan_int(s, &q->quantity) || q->quantity < 0)
                        return false;
                return (q->has_quantity = true);
        }
        if (key_is(k, n, "status")) {
                if (q->has_status || !scan_status(s, q->status, sizeof q->status))
                        return false;
                return (q->has_status = true);
        }
        return scan_skip(s, depth);
}

typedef struct FastItem {
        int64_t number, olid;
        bool has_number, has_olid, has_status, has_quantities;
        char status[FAST_STATUS_MAX + 1];
        FastQuantity q[FAST_MAX_QUANTITIES];
        size_t n_q;
} FastItem;

static bool fast_item_key(Scan *s, const char *k, size_t n, unsigned depth, void *u) {
        FastItem *it = u;
        if (key_is(k, n, "lineItemNumber")) {
                if (it->has_number || !scan_int(s, &it->number))
                        return false;
                return (it->has_number = true);
        }
        if (key_is(k, n, "orderLineItemId")) {
                if (it->has_olid || !scan_int(s, &it->olid))
                        return false;
                return (it->has_olid = true);
        }
        if (key_is(k, n, "status")) {
                if (it->has_status || !scan_status(s, it->status, sizeof it->status))
                        return false;
                return (it->has_status = true);
        }
        if (key_is(k, n, "quantityProvisioningInformation")) {
                if (it->has_quantities || !scan_char(s, '['))
                        return false;
                it->has_quantities = true;
                if (scan_char(s, ']'))
                        return true;
                do {
                        if (it->n_q >= FAST_MAX_QUANTITIES || !scan_char(s, '{'))
                                return false;
                        FastQuantity *q = &it->q[it->n_q++];
                        *q = (FastQuantity) {};
                        if (!scan_members(s, depth + 2, fast_quantity_key, q) || !q->has_quantity || !q->has_status)
                                return false;
                } while (scan_char(s, ','));
                return scan_char(s, ']');
        }
        return scan_skip(s, depth);
}

typedef struct FastPage {
        LineItemArray items;
        size_t alloc;
        bool has_items, has_total, has_links;
        bool failed_nomem;
} FastPage;

static bool fast_item(Scan *s, unsigned depth, FastPage *fp) {
        FastItem it = {};
        if (!scan_char(s, '{') || !scan_members(s, depth, fast_item_key, &it) || !it.has_number || !it.has_status)
                return false;
        if (fp->items.n == fp->alloc) {
                size_t a = fp->alloc ? fp->alloc * 2 : 4;
                LineItem *n = realloc(fp->items.items, a * sizeof *n);
                if (!n) {
                        fp->failed_nomem = true;
                        return false;
                }
                fp->items.items = n;
                fp->alloc = a;
        }
        const char *q_status[FAST_MAX_QUANTITIES];
        int64_t q_quantity[FAST_MAX_QUANTITIES];
        for (size_t j = 0; j < it.n_q; j++) {
                q_status[j] = it.q[j].status;
                q_quantity[j] = it.q[j].quantity;
        }
        int r = line_item_init(&fp->items.items[fp->items.n], it.number, it.has_olid, it.olid, it.status,
                               q_status, q_quantity, it.n_q);
        if (r < 0) {
                fp->failed_nomem = r == -ENOMEM; /* anything else: json-c words what is wrong */
                return false;
        }
        fp->items.n++;
        return true;
}

static bool fast_links_key(Scan *s, const char *k, size_t n, unsigned depth, void *u) {
        return !key_is(k, n, "next") && scan_skip(s, depth); /* pages: the full parser */
}

static bool fast_root_key(Scan *s, const char *k, size_t n, unsigned depth, void *u) {
        FastPage *fp = u;
        if (key_is(k, n, "totalCount")) {
                int64_t total;
                if (fp->has_total || !scan_int(s, &total))
                        return false;
                return (fp->has_total = true);
        }
        if (key_is(k, n, "links")) {
                if (fp->has_links || !scan_char(s, '{'))
                        return false;
                fp->has_links = true;
                return scan_members(s, depth + 1, fast_links_key, fp);
        }
        if (key_is(k, n, "items")) {
                if (fp->has_items || !scan_char(s, '['))
                        return false;
                fp->has_items = true;
                if (scan_char(s, ']'))
                        return true;
                do
                        if (!fast_item(s, depth + 2, fp))
                                return false;
                while (scan_char(s, ','));
                return scan_char(s, ']');
        }
        return scan_skip(s, depth);
}

int provisioning_scan_page(const char *body, size_t size, Snapshot *snap, PcPage *page) {
        _cleanup_(line_item_array_done) LineItemArray a = {};
        FastPage fp = {};
        int64_t dup;

        if (size > PC_MAX_BODY || !body)
                return -EAGAIN;
        if (size >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0) {
                body += 3;
                size -= 3;
        }
        Scan s = { body, body + size };
        bool ok = scan_char(&s, '{') && scan_members(&s, 1, fast_root_key, &fp) && fp.has_items;
        a = fp.items;
        if (!ok)
                return fp.failed_nomem ? -ENOMEM : -EAGAIN;
        scan_space(&s);
        if (s.p != s.end)
                return -EAGAIN;
        int r = snapshot_merge_items(snap, a.items, a.n, &dup);
        if (r < 0)
                return r == -ENOMEM ? r : -EAGAIN;
        if (page)
                *page = (PcPage) {};
        return 0;
}
