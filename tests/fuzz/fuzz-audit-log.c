/* SPDX-License-Identifier: MIT */
/* The activity log reader (SPEC §8) on arbitrary bytes: audit_parse_page() judges every record of a
 * page, twice, with the same result; the sweep's lists (pc_parse_customer_orders(),
 * pc_parse_customers()) on the same bytes; and the first 16 bytes as a cursor and a clock through
 * audit_log_start() and audit_log_url(). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "audit-log.h"
#include "fuzz.h"

#define ID_MAX 128
#define OVERLAP_USEC ((uint64_t) 15 * USEC_PER_MINUTE)
#define LOOKBACK_MAX_USEC ((uint64_t) 89 * USEC_PER_DAY)
/* 9999-12-31T23:59:59Z: beyond it a date is not YYYY-MM-DD */
#define DATE_MAX_USEC ((uint64_t) 253402300799 * USEC_PER_SEC)
#define FILTER "%7B%22Field%22%3A%22ResourceType%22%2C%22Value%22%3A%22Order%22%2C%22Operator%22%3A%22equals%22%7D"

static char sentinel[] = "untouched";

/* What a watched order's ids must be: they end up in URLs, the store and log lines. */
static bool id_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > ID_MAX)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("-_.", *s)))
                        return false;
        return true;
}

static void check_reason(int r, const char *reason) {
        fuzz_assert(r == -EBADMSG || r == -E2BIG || r == -ENOMEM);
        fuzz_assert(reason && reason != sentinel && *reason);
        fuzz_assert(!fuzz_has_control_chars(reason, ""));
}

static void check_page(const PcPage *p) {
        if (!p->next_uri) {
                fuzz_assert(!p->next_headers);
                return;
        }
        fuzz_assert(p->next_uri[0] == '/');
        for (const char *c = p->next_uri; *c; c++)
                fuzz_assert((unsigned char) *c > ' ' && (unsigned char) *c < 0x7f);
        fuzz_assert(p->next_headers);
        for (char **h = p->next_headers; *h; h++) {
                const char *colon = strstr(*h, ": ");
                fuzz_assert(colon && colon > *h);
                fuzz_assert(!fuzz_has_control_chars(*h, "\t"));
        }
}

/* Sorted by number, unique, quantities known (>= 0) or -1; the store's JSON round-trips exactly. */
static void check_names(const OrderNames *n) {
        fuzz_assert(n);
        fuzz_assert(!n->customer_name || *n->customer_name);
        fuzz_assert(n->n_items == 0 || n->items);
        for (size_t i = 0; i < n->n_items; i++) {
                const LineItemName *li = &n->items[i];
                fuzz_assert(li->number >= 0);
                fuzz_assert(i == 0 || n->items[i - 1].number < li->number);
                fuzz_assert(li->quantity >= -1);
                fuzz_assert(order_names_find(n, li->number) == li);
        }

        _cleanup_free_ char *json = order_names_to_json(n), *again = NULL;
        _cleanup_(order_names_freep) OrderNames *back = NULL;
        fuzz_assert(json);
        int r = order_names_from_json(json, &back);
        if (r < 0)
                fprintf(stderr, "order_names_from_json() failed (%s) on: %s\n", strerror(-r), json);
        fuzz_assert(r == 0);
        again = order_names_to_json(back);
        fuzz_assert(again && strcmp(json, again) == 0);
}

static bool used(AuditVerdict v) {
        return v == AUDIT_CREATE_ORDER || v == AUDIT_UPDATE_ORDER;
}

static void check_record(const AuditRecord *rec) {
        fuzz_assert(rec->verdict >= AUDIT_CREATE_ORDER && rec->verdict <= AUDIT_UNUSABLE);
        /* every record gets a key (de-duplication) and a label (the log line naming it) */
        fuzz_assert(rec->key && *rec->key);
        fuzz_assert(rec->label && *rec->label);
        if (used(rec->verdict)) {
                fuzz_assert(!rec->why);
                fuzz_assert(id_is_valid(rec->customer_id));
                fuzz_assert(id_is_valid(rec->order_id));
                fuzz_assert(rec->operation_usec > 0);
                check_names(rec->names);
        } else {
                fuzz_assert(rec->why && *rec->why && !fuzz_has_control_chars(rec->why, ""));
                fuzz_assert(!rec->customer_id && !rec->order_id && !rec->names);
        }
}

static bool streq_null(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

static bool names_equal(const OrderNames *a, const OrderNames *b) {
        if (!a || !b)
                return a == b;
        _cleanup_free_ char *x = order_names_to_json(a), *y = order_names_to_json(b);
        fuzz_assert(x && y);
        return strcmp(x, y) == 0;
}

static bool records_equal(const AuditRecord *a, const AuditRecord *b) {
        return a->verdict == b->verdict && streq_null(a->key, b->key) && streq_null(a->label, b->label) &&
               streq_null(a->why, b->why) && streq_null(a->customer_id, b->customer_id) &&
               streq_null(a->order_id, b->order_id) && a->operation_usec == b->operation_usec &&
               names_equal(a->names, b->names);
}

static void fuzz_audit_page(const char *body, size_t size) {
        AuditPage p = { .n_records = 7 }, q = {};
        const char *reason = sentinel;

        int r = audit_parse_page(body, size, &p, &reason);
        if (r < 0) {
                check_reason(r, reason);
                /* nothing written on failure */
                fuzz_assert(p.n_records == 7 && !p.records && !p.next.next_uri && !p.next.next_headers);
                return;
        }
        fuzz_assert(r == 0);
        fuzz_assert(p.n_records == 0 || p.records);
        check_page(&p.next);
        for (size_t i = 0; i < p.n_records; i++)
                check_record(&p.records[i]);

        /* the same bytes again: the same records, the same keys (a page read twice de-duplicates) */
        reason = sentinel;
        fuzz_assert(audit_parse_page(body, size, &q, &reason) == 0);
        fuzz_assert(q.n_records == p.n_records);
        for (size_t i = 0; i < p.n_records; i++)
                fuzz_assert(records_equal(&p.records[i], &q.records[i]));
        fuzz_assert(streq_null(p.next.next_uri, q.next.next_uri));

        audit_page_done(&q);
        audit_page_done(&p);
        fuzz_assert(!p.records && p.n_records == 0 && !p.next.next_uri);
}

static void fuzz_sweep_lists(const char *body, size_t size) {
        CustomerOrder *orders = (CustomerOrder *) sentinel;
        size_t n = 7;
        PcPage page = {};
        const char *reason = sentinel;

        int r = pc_parse_customer_orders(body, size, &orders, &n, &page, &reason);
        if (r < 0) {
                check_reason(r, reason);
                fuzz_assert(orders == (CustomerOrder *) sentinel && n == 7 && !page.next_uri);
        } else {
                fuzz_assert(r == 0);
                check_page(&page);
                for (size_t i = 0; i < n; i++) {
                        fuzz_assert(id_is_valid(orders[i].order_id));
                        check_names(orders[i].names);
                        /* no customer name there: the sweep takes it from the customer list */
                        fuzz_assert(!orders[i].names->customer_name);
                }
                customer_orders_free(orders, n);
                pc_page_done(&page);
        }

        Customer *customers = (Customer *) sentinel;
        n = 7;
        reason = sentinel;
        r = pc_parse_customers(body, size, &customers, &n, &page, &reason);
        if (r < 0) {
                check_reason(r, reason);
                fuzz_assert(customers == (Customer *) sentinel && n == 7 && !page.next_uri);
                return;
        }
        fuzz_assert(r == 0);
        check_page(&page);
        for (size_t i = 0; i < n; i++)
                fuzz_assert(id_is_valid(customers[i].id));
        customers_free(customers, n);
        pc_page_done(&page);
}

/* The first day a read covers, and its request. */
static void fuzz_start(uint64_t cursor, uint64_t now) {
        bool clamped = !cursor;
        uint64_t start = audit_log_start(cursor, now, &clamped);
        uint64_t wanted = cursor > OVERLAP_USEC ? cursor - OVERLAP_USEC : 0;
        uint64_t oldest = now > LOOKBACK_MAX_USEC ? now - LOOKBACK_MAX_USEC : 0;

        fuzz_assert(audit_log_start(cursor, now, NULL) == start);
        /* never more than 89 days back; otherwise the cursor minus the overlap */
        fuzz_assert(start >= oldest);
        fuzz_assert(clamped == (wanted < oldest));
        fuzz_assert(clamped ? start == oldest : start == wanted);

        if (start > DATE_MAX_USEC)
                return;
        char date[32];
        struct tm tm;
        time_t t = (time_t) (start / USEC_PER_SEC);
        fuzz_assert(gmtime_r(&t, &tm) && strftime(date, sizeof date, "%Y-%m-%d", &tm) == 10);
        _cleanup_free_ char *want = strdup_printf("https://pc.example/v1/auditrecords?startDate=%s&size=500&filter=%s",
                                                  date, FILTER);
        fuzz_assert(want);
        static const char *const endpoints[] = { "https://pc.example", "https://pc.example/", "https://pc.example///" };
        for (size_t i = 0; i < ELEMENTSOF(endpoints); i++) {
                _cleanup_free_ char *url = audit_log_url(endpoints[i], "1", start);
                fuzz_assert(url && strcmp(url, want) == 0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_audit_page((const char *) data, size);
        fuzz_sweep_lists((const char *) data, size);
        if (size >= 16) {
                uint64_t cursor, now;
                memcpy(&cursor, data, 8);
                memcpy(&now, data + 8, 8);
                /* clocks up to the year 10000 and beyond; 0 and small values stay as they are */
                fuzz_start(cursor % (DATE_MAX_USEC + 2 * USEC_PER_DAY), now % (DATE_MAX_USEC + 2 * USEC_PER_DAY));
        }
        return 0;
}
