/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "fuzz.h"

bool fuzz_has_control_chars(const char *s, const char *allowed) {
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if ((c < 0x20 || c == 0x7f) && !strchr(allowed, c))
                        return true;
        }
        return false;
}

static bool has_uppercase(const char *s) {
        for (; *s; s++)
                if (*s >= 'A' && *s <= 'Z')
                        return true;
        return false;
}

static void check_line_item(const LineItem *li) {
        fuzz_assert(status_is_valid(li->status));
        fuzz_assert(!has_uppercase(li->status));
        fuzz_assert(li->has_order_line_item_id || li->order_line_item_id == 0);
        fuzz_assert((li->n_quantities == 0) == (li->quantities == NULL));
        for (size_t j = 0; j < li->n_quantities; j++) {
                const Quantity *q = &li->quantities[j];
                fuzz_assert(status_is_valid(q->status));
                fuzz_assert(!has_uppercase(q->status));
                fuzz_assert(q->quantity > 0);
                fuzz_assert(j == 0 || strcmp(li->quantities[j - 1].status, q->status) < 0);
        }
}

void fuzz_check_snapshot(const Snapshot *s) {
        fuzz_assert(s);
        fuzz_assert(s->n_items == 0 || s->items);
        for (size_t i = 0; i < s->n_items; i++) {
                check_line_item(&s->items[i]);
                fuzz_assert(i == 0 || s->items[i - 1].number < s->items[i].number);
                fuzz_assert(snapshot_find(s, s->items[i].number) == &s->items[i]);
        }
}

static bool line_items_identical(const LineItem *a, const LineItem *b) {
        return a->number == b->number && a->has_order_line_item_id == b->has_order_line_item_id &&
               a->order_line_item_id == b->order_line_item_id && line_item_equal(a, b) &&
               strcmp(a->status, b->status) == 0;
}

bool fuzz_snapshots_equal(const Snapshot *a, const Snapshot *b) {
        if (a->n_items != b->n_items)
                return false;
        for (size_t i = 0; i < a->n_items; i++)
                if (!line_items_identical(&a->items[i], &b->items[i]))
                        return false;
        return true;
}

void fuzz_check_snapshot_round_trip(const Snapshot *s) {
        _cleanup_free_ char *json = NULL, *again = NULL;
        _cleanup_(snapshot_freep) Snapshot *back = NULL, *copy = NULL;
        int r;

        json = snapshot_to_json(s);
        fuzz_assert(json);
        r = snapshot_from_json(json, &back);
        if (r < 0)
                fprintf(stderr, "snapshot_from_json() failed (%s) on: %s\n", strerror(-r), json);
        fuzz_assert(r == 0);
        fuzz_check_snapshot(back);
        fuzz_assert(fuzz_snapshots_equal(s, back));
        again = snapshot_to_json(back);
        fuzz_assert(again);
        fuzz_assert(strcmp(json, again) == 0);

        fuzz_assert(snapshot_copy(s, &copy) == 0);
        fuzz_assert(fuzz_snapshots_equal(s, copy));

        for (size_t i = 0; i < s->n_items; i++) {
                _cleanup_free_ char *q = quantities_format(&s->items[i]);
                fuzz_assert(q);
                fuzz_assert((*q == 0) == (s->items[i].n_quantities == 0));
        }
}

static json_object *json_parse_all(const char *s) {
        json_tokener *tok = json_tokener_new();
        fuzz_assert(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *o = json_tokener_parse_ex(tok, s, (int) strlen(s));
        bool ok = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == strlen(s);
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static const char *json_string_member(json_object *o, const char *key) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

void fuzz_check_event(Event *e) {
        _cleanup_free_ char *json = NULL, *summary = NULL, *subject = NULL;
        json_object *o;

        fuzz_assert(e->id[0] == 0);
        errno = 0;
        fuzz_assert(event_to_json(e, "host") == NULL);
        fuzz_assert(errno == EINVAL);

        fuzz_assert(event_assign_id(e) == 0);
        json = event_to_json(e, "host");
        fuzz_assert(json);
        o = json_parse_all(json);
        if (!o)
                fprintf(stderr, "event JSON does not parse back: %s\n", json);
        fuzz_assert(o);
        fuzz_assert(json_object_is_type(o, json_type_object));
        fuzz_assert(json_string_member(o, "id") && strcmp(json_string_member(o, "id"), e->id) == 0);
        fuzz_assert(json_string_member(o, "type") &&
                    strcmp(json_string_member(o, "type"), event_type_to_string(e->type)) == 0);
        json_object *data;
        fuzz_assert(json_object_object_get_ex(o, "data", &data) && json_object_is_type(data, json_type_object));
        json_object_put(o);

        summary = event_summary(e);
        fuzz_assert(summary);
        fuzz_assert(!fuzz_has_control_chars(summary, ""));
        subject = event_subject(e);
        fuzz_assert(subject);
}

/* The event diff_snapshots() should produce for one line item number, or -1 for none. */
static int expected_type(const LineItem *a, const LineItem *b) {
        if (a && !b)
                return EVENT_LINEITEM_REMOVED;
        if (!a && b)
                return EVENT_LINEITEM_ADDED;
        return line_item_equal(a, b) ? -1 : EVENT_LINEITEM_CHANGED;
}

static void check_line_item_event(const Event *e, const LineItem *a, const LineItem *b) {
        fuzz_assert((int) e->type == expected_type(a, b));
        fuzz_assert(!a == !e->old);
        fuzz_assert(!b == !e->new);
        fuzz_assert(!e->old || line_items_identical(e->old, a));
        fuzz_assert(!e->new || line_items_identical(e->new, b));
        fuzz_assert(!e->line_items);
}

size_t fuzz_check_diff(const Snapshot *old, const Snapshot *new, char *const *terminal, const char *customer_id,
                       const char *order_id, uint64_t time_usec, uint64_t previous_poll_usec) {
        Event **events = NULL;
        size_t n = 0, k = 0, i = 0, j = 0, n_old = old ? old->n_items : 0;

        int r = diff_snapshots(old, new, terminal, customer_id, order_id, time_usec, previous_poll_usec, &events, &n);
        fuzz_assert(r == 0);
        fuzz_assert(n == 0 || events);

        /* the same merge walk, done the obvious way */
        while (i < n_old || j < new->n_items) {
                const LineItem *a = i < n_old ? &old->items[i] : NULL;
                const LineItem *b = j < new->n_items ? &new->items[j] : NULL;
                if (a && b && a->number != b->number) {
                        if (a->number < b->number)
                                b = NULL;
                        else
                                a = NULL;
                }
                i += !!a;
                j += !!b;
                if (expected_type(a, b) < 0)
                        continue;
                fuzz_assert(k < n);
                check_line_item_event(events[k++], a, b);
        }
        bool completed = snapshot_is_settled(new, terminal) && !snapshot_is_settled(old, terminal);
        if (completed) {
                fuzz_assert(k < n);
                const Event *e = events[k++];
                fuzz_assert(e->type == EVENT_ORDER_COMPLETED);
                fuzz_assert(e->line_items && fuzz_snapshots_equal(e->line_items, new));
                fuzz_assert(!e->old && !e->new);
        }
        fuzz_assert(k == n);

        for (k = 0; k < n; k++) {
                fuzz_assert(strcmp(events[k]->customer_id, customer_id) == 0);
                fuzz_assert(strcmp(events[k]->order_id, order_id) == 0);
                fuzz_assert(events[k]->time_usec == time_usec);
                fuzz_assert(events[k]->previous_poll_usec == previous_poll_usec);
                fuzz_check_event(events[k]);
        }
        events_free(events, n);
        return n;
}
