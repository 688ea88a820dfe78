/* SPDX-License-Identifier: MIT */
/* diff_snapshots() on two snapshots built from the input, read as a little program:
 *
 *   byte 0: bits 0-1 the terminal statuses (default, one uppercase entry, empty list, NULL),
 *           bit 2 whether there was a previous poll
 *   then at most OPS_MAX ops, the low 3 bits of a byte saying which (the high bits are its
 *   first argument):
 *     0 switch to the other snapshot (a first, then b)
 *     1, 2 add an item: number (signed byte), status, olid, quantities from a small alphabet
 *     3 add an item with 64-bit number, olid and quantities (overflows, extremes)
 *     4 merge a batch of items with snapshot_merge_items()
 *     5 copy the other snapshot's item at an index here, maybe with a changed status or quantity
 *     6 add an item whose status is raw bytes of the input
 *     7 set the customer or order id from raw bytes (control characters included)
 *
 * and checked against SPEC §4 (fuzz_check_diff()): diff(a, a) and diff(b, b) give nothing,
 * diff(NULL, b) one added per item (and completed when settled), diff(a, b) and diff(b, a) exactly
 * the expected events, and every event renders as JSON and as a one-line summary. */
#include <string.h>

#include "fuzz.h"

#define Q_MAX 4
#define BATCH_MAX 4
#define RAW_MAX 80
#define ID_MAX 32
/* Enough for every case of the diff; more only makes each run slower (every event is rendered). */
#define OPS_MAX 64

static const char *const alphabet[8] = {
        "fulfilled", "Fulfilled", "PrefulfillmentPending", "prefulfillmentpending",
        "unfulfilled", "cancelled", "processing", "x",
};

static char *const terminal_default[] = { "fulfilled", "unfulfilled", NULL };
static char *const terminal_upper[] = { "FULFILLED", NULL };
static char *const terminal_empty[] = { NULL };

typedef struct Reader {
        const uint8_t *p;
        size_t n;
} Reader;

static uint8_t next(Reader *r) {
        if (r->n == 0)
                return 0;
        r->n--;
        return *r->p++;
}

/* Never INT64_MIN: json-c clamps any smaller number to it, so the parsers (and with them the
 * snapshot JSON of the state store) reject it, and no snapshot of the daemon holds it. */
static int64_t next64(Reader *r) {
        uint64_t v = 0;
        for (size_t i = 0; i < 8; i++)
                v = v << 8 | next(r);
        return (int64_t) v == INT64_MIN ? INT64_MIN + 1 : (int64_t) v;
}

/* The arguments of line_item_init(), read from the input. */
typedef struct ItemSpec {
        int64_t number;
        bool has_olid;
        int64_t olid;
        const char *status;
        const char *q_status[Q_MAX];
        int64_t q_quantity[Q_MAX];
        size_t n_q;
} ItemSpec;

static void read_item(Reader *r, uint8_t arg, bool wide, ItemSpec *s) {
        uint8_t olid = next(r);

        *s = (ItemSpec) {
                .number = wide ? next64(r) : (int8_t) next(r),
                .status = alphabet[arg & 7],
                .has_olid = olid & 0x80,
                .n_q = (arg >> 3) & 3,
        };
        s->olid = s->has_olid ? (wide ? next64(r) : olid & 0x7f) : 0;
        if (wide)
                s->n_q++;
        for (size_t i = 0; i < s->n_q; i++) {
                uint8_t b = next(r);
                s->q_status[i] = alphabet[b & 7];
                s->q_quantity[i] = wide ? next64(r) : b >> 3;
        }
}

static void add_item(Snapshot *s, const ItemSpec *i) {
        (void) snapshot_add_item(s, i->number, i->has_olid, i->olid, i->status, i->q_status, i->q_quantity, i->n_q);
}

static void op_merge(Reader *r, uint8_t arg, Snapshot *s) {
        LineItem items[BATCH_MAX] = {};
        size_t n = 0, want = (arg & 3) + 1;

        for (size_t k = 0; k < want; k++) {
                ItemSpec spec;
                read_item(r, next(r), false, &spec);
                if (line_item_init(&items[n], spec.number, spec.has_olid, spec.olid, spec.status, spec.q_status,
                                   spec.q_quantity, spec.n_q) == 0)
                        n++;
        }
        size_t before = s->n_items;
        int64_t dup = 0;
        int ret = snapshot_merge_items(s, items, n, &dup);
        fuzz_assert(ret == 0 ? s->n_items == before + n : s->n_items == before);
        fuzz_assert(ret != -EEXIST || snapshot_find(s, dup) || n > 1);
        for (size_t k = 0; k < n; k++)
                line_item_done(&items[k]);
}

static void op_copy(Reader *r, uint8_t arg, Snapshot *to, const Snapshot *from) {
        uint8_t b = next(r);
        ItemSpec spec = {};

        if (from->n_items == 0)
                return;
        const LineItem *li = &from->items[b % from->n_items];
        spec.number = li->number;
        spec.has_olid = li->has_order_line_item_id;
        spec.olid = li->order_line_item_id;
        spec.status = li->status;
        for (size_t i = 0; i < li->n_quantities && i < Q_MAX; i++) {
                spec.q_status[i] = li->quantities[i].status;
                spec.q_quantity[i] = li->quantities[i].quantity;
                spec.n_q++;
        }
        switch (arg & 3) {
        case 1:
                spec.status = alphabet[(arg >> 2) & 7];
                break;
        case 2:
                if (spec.n_q > 0 && spec.q_quantity[(arg >> 2) % spec.n_q] < INT64_MAX)
                        spec.q_quantity[(arg >> 2) % spec.n_q]++;
                break;
        case 3:
                spec.has_olid = !spec.has_olid;
                break;
        }
        add_item(to, &spec);
}

static void op_raw_status(Reader *r, uint8_t arg, Snapshot *s) {
        char status[RAW_MAX + 1];
        size_t len = next(r) % (RAW_MAX + 1);

        for (size_t i = 0; i < len; i++)
                status[i] = (char) next(r);
        status[len] = 0;
        const char *q_status[1] = { status };
        int64_t q_quantity[1] = { arg >> 1 };
        (void) snapshot_add_item(s, (int8_t) next(r), false, 0, status, q_status, q_quantity, arg & 1);
}

/* Any 7-bit character but NUL: JSON must escape them and summaries must flatten them. */
static void op_id(Reader *r, uint8_t arg, char *customer_id, char *order_id) {
        char *id = arg & 1 ? order_id : customer_id;
        size_t len = next(r) % ID_MAX + 1;

        for (size_t i = 0; i < len; i++) {
                char c = (char) (next(r) & 0x7f);
                id[i] = c ? c : '-';
        }
        id[len] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(snapshot_freep) Snapshot *a = snapshot_new(), *b = snapshot_new();
        char customer_id[ID_MAX + 1] = "C", order_id[ID_MAX + 1] = "O";
        Reader r = { data, size };
        Snapshot *cur;

        fuzz_assert(a && b);
        cur = a;

        uint8_t flags = next(&r);
        char *const *terminal = (char *const *[]) { terminal_default, terminal_upper, terminal_empty, NULL }[flags & 3];
        uint64_t now = UINT64_C(1795470913000000), previous = flags & 4 ? now - 120 * USEC_PER_SEC : 0;

        for (size_t ops = 0; r.n > 0 && ops < OPS_MAX; ops++) {
                uint8_t op = next(&r), arg = op >> 3;
                ItemSpec spec;

                switch (op & 7) {
                case 0:
                        cur = cur == a ? b : a;
                        break;
                case 1:
                case 2:
                        read_item(&r, arg, false, &spec);
                        add_item(cur, &spec);
                        break;
                case 3:
                        read_item(&r, arg, true, &spec);
                        add_item(cur, &spec);
                        break;
                case 4:
                        op_merge(&r, arg, cur);
                        break;
                case 5:
                        op_copy(&r, arg, cur, cur == a ? b : a);
                        break;
                case 6:
                        op_raw_status(&r, arg, cur);
                        break;
                case 7:
                        op_id(&r, arg, customer_id, order_id);
                        break;
                }
        }

        fuzz_check_snapshot(a);
        fuzz_check_snapshot(b);
        fuzz_check_snapshot_round_trip(a);
        fuzz_check_snapshot_round_trip(b);

        fuzz_assert(fuzz_check_diff(a, a, terminal, customer_id, order_id, now, previous) == 0);
        fuzz_assert(fuzz_check_diff(b, b, terminal, customer_id, order_id, now, previous) == 0);
        size_t n = fuzz_check_diff(NULL, b, terminal, customer_id, order_id, now, previous);
        fuzz_assert(n == b->n_items + snapshot_is_settled(b, terminal));
        (void) fuzz_check_diff(a, b, terminal, customer_id, order_id, now, previous);
        (void) fuzz_check_diff(b, a, terminal, customer_id, order_id, now, previous);
        return 0;
}
