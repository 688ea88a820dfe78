/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <strings.h>

#include "json-writer.h"
#include "snapshot.h"
#include "json-util.h"

#define STATUS_MAX 256

Snapshot *snapshot_new(void) {
        return calloc(1, sizeof(Snapshot));
}

void line_item_done(LineItem *li) {
        if (!li)
                return;
        free(li->status);
        for (size_t i = 0; i < li->n_quantities; i++)
                free(li->quantities[i].status);
        free(li->quantities);
        *li = (LineItem) {};
}

static void line_items_free(LineItem *items, size_t n) {
        for (size_t i = 0; i < n; i++)
                line_item_done(&items[i]);
        free(items);
}

void line_item_array_done(LineItemArray *a) {
        line_items_free(a->items, a->n);
        *a = (LineItemArray) {};
}

Snapshot *snapshot_free(Snapshot *s) {
        if (!s)
                return NULL;
        if (!s->packed)
                line_items_free(s->items, s->n_items);
        return mfree(s);
}

int line_item_copy(const LineItem *src, LineItem *dst) {
        _cleanup_(line_item_done) LineItem li = {
                .number = src->number,
                .has_order_line_item_id = src->has_order_line_item_id,
                .order_line_item_id = src->order_line_item_id,
        };

        li.status = strdup(src->status);
        if (!li.status)
                return -ENOMEM;
        if (src->n_quantities > 0) {
                li.quantities = calloc(src->n_quantities, sizeof(Quantity));
                if (!li.quantities)
                        return -ENOMEM;
                for (size_t i = 0; i < src->n_quantities; i++) {
                        li.quantities[i].status = strdup(src->quantities[i].status);
                        if (!li.quantities[i].status)
                                return -ENOMEM;
                        li.quantities[i].quantity = src->quantities[i].quantity;
                        li.n_quantities++;
                }
        }
        *dst = li;
        li = (LineItem) {};
        return 0;
}

/* The bytes li's status and quantity statuses take, NULs included. */
static size_t strings_size(const LineItem *li) {
        size_t size = strlen(li->status) + 1;
        for (size_t i = 0; i < li->n_quantities; i++)
                size += strlen(li->quantities[i].status) + 1;
        return size;
}

/* li into *dst, its quantities into q (room for li->n_quantities) and its strings from p on; returns
 * where the strings end. The packed copies below are made of these. */
static char *pack_line_item(LineItem *dst, const LineItem *li, Quantity *q, char *p) {
        *dst = (LineItem) {
                .number = li->number,
                .has_order_line_item_id = li->has_order_line_item_id,
                .order_line_item_id = li->order_line_item_id,
                .status = p,
                .quantities = li->n_quantities > 0 ? q : NULL,
                .n_quantities = li->n_quantities,
        };
        p = stpcpy(p, li->status) + 1;
        for (size_t i = 0; i < li->n_quantities; i++) {
                q[i] = (Quantity) { .status = p, .quantity = li->quantities[i].quantity };
                p = stpcpy(p, li->quantities[i].status) + 1;
        }
        return p;
}

LineItem *line_item_dup(const LineItem *li) {
        LineItem *c = malloc(sizeof(LineItem) + li->n_quantities * sizeof(Quantity) + strings_size(li));
        if (!c)
                return NULL;
        Quantity *q = (Quantity *) (c + 1);
        pack_line_item(c, li, q, (char *) (q + li->n_quantities));
        return c;
}

Snapshot *snapshot_dup(const Snapshot *s) {
        /* the Snapshot, its items, every item's quantities, then the strings (no alignment needed) */
        size_t n_q = 0, strings = 0;
        for (size_t i = 0; i < s->n_items; i++) {
                n_q += s->items[i].n_quantities;
                strings += strings_size(&s->items[i]);
        }
        Snapshot *c = malloc(sizeof(Snapshot) + s->n_items * sizeof(LineItem) + n_q * sizeof(Quantity) + strings);
        if (!c)
                return NULL;
        LineItem *items = (LineItem *) (c + 1);
        Quantity *q = (Quantity *) (items + s->n_items);
        char *p = (char *) (q + n_q);
        *c = (Snapshot) { .items = s->n_items > 0 ? items : NULL, .n_items = s->n_items, .packed = true };
        for (size_t i = 0; i < s->n_items; i++) {
                p = pack_line_item(&items[i], &s->items[i], q, p);
                q += s->items[i].n_quantities;
        }
        return c;
}

bool line_item_equal(const LineItem *a, const LineItem *b) {
        if (strcasecmp(a->status, b->status) != 0)
                return false;
        if (a->n_quantities != b->n_quantities)
                return false;
        for (size_t i = 0; i < a->n_quantities; i++)
                if (strcasecmp(a->quantities[i].status, b->quantities[i].status) != 0 ||
                    a->quantities[i].quantity != b->quantities[i].quantity)
                        return false;
        return true;
}

bool snapshot_equal(const Snapshot *a, const Snapshot *b) {
        if (a->n_items != b->n_items)
                return false;
        for (size_t i = 0; i < a->n_items; i++) {
                const LineItem *x = &a->items[i], *y = &b->items[i];
                if (x->number != y->number || x->has_order_line_item_id != y->has_order_line_item_id ||
                    (x->has_order_line_item_id && x->order_line_item_id != y->order_line_item_id) ||
                    !line_item_equal(x, y))
                        return false;
        }
        return true;
}

/* SPEC §3: quantity statuses are undocumented, so anything Partner Center sends is a status to
 * report; only an empty or absurdly long one is not. */
bool status_is_valid(const char *s) {
        size_t n = s ? strnlen(s, STATUS_MAX + 1) : 0;
        return n > 0 && n <= STATUS_MAX && utf8_is_valid(s); /* a JSON string is UTF-8 */
}

static int quantity_compare(const void *a, const void *b) {
        return strcmp(((const Quantity *) a)->status, ((const Quantity *) b)->status);
}

/* Sorts q by status and folds equal statuses into one sum, dropping zero sums; returns the new
 * count or -EOVERFLOW. Entries past the returned count are freed. */
static int quantities_fold(Quantity *q, size_t n, size_t *ret_n) {
        size_t k = 0;
        int r = 0;

        qsort(q, n, sizeof(Quantity), quantity_compare);
        for (size_t i = 0; i < n; i++) {
                if (k > 0 && streq(q[k - 1].status, q[i].status)) {
                        if (r == 0 && __builtin_add_overflow(q[k - 1].quantity, q[i].quantity, &q[k - 1].quantity))
                                r = -EOVERFLOW;
                        free(q[i].status);
                        q[i].status = NULL;
                        continue;
                }
                if (k > 0 && q[k - 1].quantity == 0) {
                        free(q[k - 1].status);
                        k--;
                }
                q[k++] = q[i];
        }
        if (k > 0 && q[k - 1].quantity == 0) {
                free(q[k - 1].status);
                k--;
        }
        *ret_n = k;
        return r;
}

int line_item_init(LineItem *li, int64_t number, bool has_olid, int64_t olid, const char *status,
                   const char *const *q_status, const int64_t *q_quantity, size_t n_q) {
        _cleanup_(line_item_done) LineItem item = {
                .number = number,
                .has_order_line_item_id = has_olid,
                .order_line_item_id = has_olid ? olid : 0,
        };

        if (!status_is_valid(status))
                return -EINVAL;
        for (size_t i = 0; i < n_q; i++)
                if (!status_is_valid(q_status[i]) || q_quantity[i] < 0)
                        return -EINVAL;

        item.status = ascii_strlower_dup(status);
        if (!item.status)
                return -ENOMEM;

        if (n_q > 0) {
                item.quantities = calloc(n_q, sizeof(Quantity));
                if (!item.quantities)
                        return -ENOMEM;
                for (size_t i = 0; i < n_q; i++) {
                        item.quantities[i].status = ascii_strlower_dup(q_status[i]);
                        if (!item.quantities[i].status)
                                return -ENOMEM;
                        item.quantities[i].quantity = q_quantity[i];
                        item.n_quantities++;
                }
                int r = quantities_fold(item.quantities, item.n_quantities, &item.n_quantities);
                if (r < 0)
                        return r;
                if (item.n_quantities == 0)
                        item.quantities = mfree(item.quantities);
        }

        *li = item;
        item = (LineItem) {};
        return 0;
}

/* Index of the first item whose number is >= number. */
static size_t snapshot_lower_bound(const Snapshot *s, int64_t number) {
        size_t lo = 0, hi = s->n_items;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->items[mid].number < number)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

int snapshot_add_item(Snapshot *s, int64_t number, bool has_olid, int64_t olid, const char *status,
                      const char *const *q_status, const int64_t *q_quantity, size_t n_q) {
        _cleanup_(line_item_done) LineItem li = {};
        size_t pos;
        int r;

        if (s->n_items == 0 || s->items[s->n_items - 1].number < number)
                pos = s->n_items;
        else {
                pos = snapshot_lower_bound(s, number);
                if (pos < s->n_items && s->items[pos].number == number)
                        return -EEXIST;
        }

        r = line_item_init(&li, number, has_olid, olid, status, q_status, q_quantity, n_q);
        if (r < 0)
                return r;

        if (s->n_items >= SIZE_MAX / sizeof(LineItem) - 1)
                return -ENOMEM;
        LineItem *items = realloc(s->items, (s->n_items + 1) * sizeof(LineItem));
        if (!items)
                return -ENOMEM;
        s->items = items;
        memmove(items + pos + 1, items + pos, (s->n_items - pos) * sizeof(LineItem));
        items[pos] = li;
        li = (LineItem) {};
        s->n_items++;
        return 0;
}

static int line_item_compare_number(const void *a, const void *b) {
        int64_t x = ((const LineItem *) a)->number, y = ((const LineItem *) b)->number;
        return (x > y) - (x < y);
}

int snapshot_merge_items(Snapshot *s, LineItem *items, size_t n, int64_t *ret_duplicate) {
        size_t i = 0, j = 0, k = 0;

        if (n == 0)
                return 0;
        qsort(items, n, sizeof(LineItem), line_item_compare_number);
        for (size_t x = 1; x < n; x++)
                if (items[x - 1].number == items[x].number) {
                        if (ret_duplicate)
                                *ret_duplicate = items[x].number;
                        return -EEXIST;
                }

        if (s->n_items > SIZE_MAX / sizeof(LineItem) - n)
                return -ENOMEM;
        LineItem *merged = malloc((s->n_items + n) * sizeof(LineItem));
        if (!merged)
                return -ENOMEM;

        /* Shallow copies first: nothing is owned by merged until the walk found no duplicate. */
        while (i < s->n_items || j < n) {
                if (j == n || (i < s->n_items && s->items[i].number < items[j].number))
                        merged[k++] = s->items[i++];
                else if (i == s->n_items || items[j].number < s->items[i].number)
                        merged[k++] = items[j++];
                else {
                        if (ret_duplicate)
                                *ret_duplicate = items[j].number;
                        free(merged);
                        return -EEXIST;
                }
        }

        free(s->items);
        s->items = merged;
        s->n_items = k;
        memset(items, 0, n * sizeof(LineItem));
        return 0;
}

void snapshot_finish(Snapshot *s) {
        if (s->n_items > 1)
                qsort(s->items, s->n_items, sizeof(LineItem), line_item_compare_number);
}

int snapshot_copy(const Snapshot *s, Snapshot **ret) {
        _cleanup_(snapshot_freep) Snapshot *c = snapshot_new();
        if (!c)
                return -ENOMEM;
        if (s->n_items > 0) {
                c->items = calloc(s->n_items, sizeof(LineItem));
                if (!c->items)
                        return -ENOMEM;
                for (size_t i = 0; i < s->n_items; i++) {
                        int r = line_item_copy(&s->items[i], &c->items[i]);
                        if (r < 0)
                                return r;
                        c->n_items++;
                }
        }
        *ret = TAKE_PTR(c);
        return 0;
}

const LineItem *snapshot_find(const Snapshot *s, int64_t number) {
        if (!s)
                return NULL;
        size_t pos = snapshot_lower_bound(s, number);
        if (pos < s->n_items && s->items[pos].number == number)
                return &s->items[pos];
        return NULL;
}

static bool status_in(const char *status, char *const *list) {
        for (char *const *p = list; p && *p; p++)
                if (strcasecmp(status, *p) == 0)
                        return true;
        return false;
}

bool snapshot_is_settled(const Snapshot *s, char *const *terminal) {
        if (!s || s->n_items == 0 || !terminal)
                return false;
        for (size_t i = 0; i < s->n_items; i++)
                if (!status_in(s->items[i].status, terminal))
                        return false;
        return true;
}

/* The store's JSON is written directly (json-writer.h): it is made for every changed answer. */
char *snapshot_to_json(const Snapshot *s) {
        JsonWriter w = {};
        json_writer_open(&w, '{');
        json_writer_key(&w, "items");
        json_writer_open(&w, '[');
        for (size_t i = 0; i < s->n_items; i++) {
                const LineItem *li = &s->items[i];
                json_writer_next(&w);
                json_writer_open(&w, '{');
                json_writer_member_int(&w, "n", li->number);
                if (li->has_order_line_item_id)
                        json_writer_member_int(&w, "olid", li->order_line_item_id);
                json_writer_member_string(&w, "status", li->status);
                json_writer_key(&w, "q");
                json_writer_open(&w, '{');
                for (size_t k = 0; k < li->n_quantities; k++) {
                        json_writer_key_string(&w, li->quantities[k].status);
                        json_writer_int(&w, li->quantities[k].quantity);
                }
                json_writer_close(&w, '}');
                json_writer_close(&w, '}');
        }
        json_writer_close(&w, ']');
        json_writer_close(&w, '}');
        return json_writer_finish(&w);
}

static int snapshot_item_from_json(json_object *o, LineItem *ret) {
        json_object *v;
        int64_t number, olid = 0;
        bool has_olid = false;
        const char *status;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (!json_object_object_get_ex(o, "n", &v) || json_get_int64(v, &number) < 0)
                return -EBADMSG;
        if (json_object_object_get_ex(o, "olid", &v) && v) {
                if (json_get_int64(v, &olid) < 0)
                        return -EBADMSG;
                has_olid = true;
        }
        if (!json_object_object_get_ex(o, "status", &v) || !(status = json_get_cstring(v)))
                return -EBADMSG;

        size_t n_q = 0;
        json_object *q = NULL;
        if (json_object_object_get_ex(o, "q", &q) && q) {
                if (!json_object_is_type(q, json_type_object))
                        return -EBADMSG;
                n_q = (size_t) json_object_object_length(q);
        }
        _cleanup_free_ const char **q_status = n_q > 0 ? calloc(n_q, sizeof(char *)) : NULL;
        _cleanup_free_ int64_t *q_quantity = n_q > 0 ? calloc(n_q, sizeof(int64_t)) : NULL;
        if (n_q > 0 && (!q_status || !q_quantity))
                return -ENOMEM;
        size_t k = 0;
        if (n_q > 0) {
                json_object_object_foreach(q, key, val) {
                        if (k >= n_q || strlen(key) == 0)
                                return -EBADMSG;
                        if (json_get_int64(val, &q_quantity[k]) < 0)
                                return -EBADMSG;
                        q_status[k++] = key;
                }
        }

        int r = line_item_init(ret, number, has_olid, olid, status, q_status, q_quantity, k);
        if (r == -EINVAL || r == -EOVERFLOW)
                return -EBADMSG;
        return r;
}

int snapshot_from_json(const char *json, Snapshot **ret) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(line_item_array_done) LineItemArray a = {};
        json_tokener *tok;
        json_object *items;
        size_t len;
        int r;

        if (!json)
                return -EINVAL;
        len = strlen(json);
        if (len == 0 || len > INT_MAX)
                return -EBADMSG;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        root = json_tokener_parse_ex(tok, json, (int) len);
        bool ok = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!ok || !json_object_is_type(root, json_type_object))
                return -EBADMSG;

        if (!json_object_object_get_ex(root, "items", &items) || !json_object_is_type(items, json_type_array))
                return -EBADMSG;

        size_t n = json_object_array_length(items);
        if (n > 0) {
                a.items = calloc(n, sizeof(LineItem));
                if (!a.items)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = snapshot_item_from_json(json_object_array_get_idx(items, i), &a.items[i]);
                if (r < 0)
                        return r;
                a.n++;
        }

        _cleanup_(snapshot_freep) Snapshot *s = snapshot_new();
        if (!s)
                return -ENOMEM;
        r = snapshot_merge_items(s, a.items, a.n, NULL);
        if (r == -EEXIST)
                return -EBADMSG;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

char *quantities_format(const LineItem *li) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        for (size_t i = 0; i < li->n_quantities; i++) {
                if (i > 0)
                        fputc(' ', f);
                /* SPEC §6: the pairs stay parseable whatever the status holds */
                for (const char *p = li->quantities[i].status; *p; p++) {
                        unsigned char c = (unsigned char) *p;
                        if (c <= ' ' || c == '=' || c == '\\' || c == 0x7f)
                                fprintf(f, "\\x%02x", c);
                        else
                                fputc(c, f);
                }
                fprintf(f, "=%" PRIi64, li->quantities[i].quantity);
        }
        bool failed = ferror(f);
        if (fclose(f) != 0 || failed)
                return NULL;
        return TAKE_PTR(buf);
}
