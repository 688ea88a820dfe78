/* SPDX-License-Identifier: MIT */
/* pc_parse_provisioning_page() on arbitrary bytes. A form feed separates pages, which are fed one
 * after the other into one snapshot, as the poller does when it follows links.next: a form feed is
 * neither JSON whitespace nor allowed raw in a strict JSON string, so it never splits a valid page. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "partner-center.h"

#define PAGE_SEPARATOR '\f'
#define PAGES_MAX 8

static char *const terminal[] = { "fulfilled", "unfulfilled", NULL };
static char sentinel_uri[] = "untouched";

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

static void check_reason(int r, const char *reason) {
        if (r == 0) {
                fuzz_assert(!reason);
                return;
        }
        fuzz_assert(r == -EBADMSG || r == -EEXIST || r == -E2BIG || r == -ENOMEM);
        fuzz_assert(reason && *reason);
        fuzz_assert(!fuzz_has_control_chars(reason, ""));
}

/* The fast path for plain answers must give what the full parser gives: the same result, the same
 * line items, the same page. */
static void check_same_as_full(const char *body, size_t size, const Snapshot *before, const Snapshot *after, int r,
                               const PcPage *page, bool want_page) {
        _cleanup_(snapshot_freep) Snapshot *full = NULL;
        PcPage full_page = { .next_uri = sentinel_uri };
        const char *reason = "unset";

        fuzz_assert(snapshot_copy(before, &full) == 0);
        int r_full = pc_parse_provisioning_page_full(body, size, full, want_page ? &full_page : NULL, &reason);
        fuzz_assert(r == r_full);
        fuzz_assert(snapshot_equal(after, full));
        if (r == 0 && want_page) {
                fuzz_assert((page->next_uri == NULL) == (full_page.next_uri == NULL));
                fuzz_assert(!page->next_uri || strcmp(page->next_uri, full_page.next_uri) == 0);
                fuzz_assert(!page->next_headers == !full_page.next_headers);
                for (size_t i = 0; page->next_headers && (page->next_headers[i] || full_page.next_headers[i]); i++)
                        fuzz_assert(page->next_headers[i] && full_page.next_headers[i] &&
                                    strcmp(page->next_headers[i], full_page.next_headers[i]) == 0);
                pc_page_done(&full_page);
        }
}

/* Parses one page into snap and checks the contract: all or nothing, page written only on success. */
static int parse_page(const char *body, size_t size, Snapshot *snap, bool want_page) {
        _cleanup_free_ char *before = snapshot_to_json(snap);
        _cleanup_(snapshot_freep) Snapshot *copy = NULL;
        PcPage page = { .next_uri = sentinel_uri };
        const char *reason = "unset";

        fuzz_assert(before);
        fuzz_assert(snapshot_copy(snap, &copy) == 0);
        int r = pc_parse_provisioning_page(body, size, snap, want_page ? &page : NULL, &reason);
        check_reason(r, reason);
        check_same_as_full(body, size, copy, snap, r, &page, want_page);
        if (r < 0) {
                _cleanup_free_ char *after = snapshot_to_json(snap);
                fuzz_assert(after && strcmp(before, after) == 0);
                fuzz_assert(page.next_uri == sentinel_uri && !page.next_headers);
                return r;
        }
        if (want_page) {
                fuzz_assert(page.next_uri != sentinel_uri);
                check_page(&page);
                pc_page_done(&page);
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(snapshot_freep) Snapshot *snap = snapshot_new();
        const char *p = (const char *) data, *end = p + size;
        size_t good = 0;

        fuzz_assert(snap);
        /* The whole input as one body, so that the separator byte is also seen by the parser... */
        if (size == 0 || !memchr(data, PAGE_SEPARATOR, size)) {
                good += parse_page(p, size, snap, true) == 0;
        } else {
                /* ...or, when it has separators, page after page. */
                for (size_t i = 0; i < PAGES_MAX && p <= end; i++) {
                        const char *sep = i + 1 < PAGES_MAX ? memchr(p, PAGE_SEPARATOR, (size_t) (end - p)) : NULL;
                        size_t len = sep ? (size_t) (sep - p) : (size_t) (end - p);
                        good += parse_page(p, len, snap, i % 2 == 0) == 0;
                        if (!sep)
                                break;
                        p = sep + 1;
                }
        }
        if (good == 0)
                return 0;

        fuzz_check_snapshot(snap);
        fuzz_check_snapshot_round_trip(snap);
        fuzz_assert(fuzz_check_diff(snap, snap, terminal, "C", "O", UINT64_C(1795470913000000), 0) == 0);
        size_t n = fuzz_check_diff(NULL, snap, terminal, "C", "O", UINT64_C(1795470913000000), 0);
        fuzz_assert(n == snap->n_items + snapshot_is_settled(snap, terminal));
        return 0;
}
