/* SPDX-License-Identifier: MIT */
#include "diff.h"

typedef struct EventList {
        Event **events;
        size_t n, alloc;
} EventList;

static void event_list_done(EventList *l) {
        events_free(l->events, l->n);
}

static int event_list_push(EventList *l, Event *e) {
        if (l->n == l->alloc) {
                size_t alloc = l->alloc ? 2 * l->alloc : 4;
                Event **a = realloc(l->events, alloc * sizeof(Event *));
                if (!a)
                        return -ENOMEM;
                l->events = a;
                l->alloc = alloc;
        }
        l->events[l->n++] = e;
        return 0;
}

static int push_line_item_event(EventList *l, EventType type, const LineItem *old, const LineItem *new,
                                const char *customer_id, const char *order_id, uint64_t time_usec,
                                uint64_t previous_poll_usec) {
        _cleanup_(event_freep) Event *e = event_new(type, customer_id, order_id, time_usec, previous_poll_usec);
        int r;

        if (!e)
                return -ENOMEM;
        if ((old && !(e->old = line_item_dup(old))) || (new && !(e->new = line_item_dup(new))))
                return -ENOMEM;
        r = event_list_push(l, e);
        if (r < 0)
                return r;
        e = NULL;
        return 0;
}

int diff_snapshots(const Snapshot *old, const Snapshot *new, char *const *terminal_statuses,
                   const char *customer_id, const char *order_id, uint64_t time_usec,
                   uint64_t previous_poll_usec, Event ***ret_events, size_t *ret_n) {
        _cleanup_(event_list_done) EventList l = {};
        size_t i = 0, j = 0, n_old = old ? old->n_items : 0;
        int r;

        if (!new || !customer_id || !order_id || !ret_events || !ret_n)
                return -EINVAL;

        /* Both lists are sorted by number and unique: one merge walk, at most one event per number. */
        while (i < n_old || j < new->n_items) {
                const LineItem *a = i < n_old ? &old->items[i] : NULL;
                const LineItem *b = j < new->n_items ? &new->items[j] : NULL;

                if (a && (!b || a->number < b->number)) {
                        r = push_line_item_event(&l, EVENT_LINEITEM_REMOVED, a, NULL, customer_id, order_id,
                                                 time_usec, previous_poll_usec);
                        i++;
                } else if (b && (!a || b->number < a->number)) {
                        r = push_line_item_event(&l, EVENT_LINEITEM_ADDED, NULL, b, customer_id, order_id,
                                                 time_usec, previous_poll_usec);
                        j++;
                } else {
                        r = line_item_equal(a, b) ? 0
                                                  : push_line_item_event(&l, EVENT_LINEITEM_CHANGED, a, b, customer_id,
                                                                         order_id, time_usec, previous_poll_usec);
                        i++;
                        j++;
                }
                if (r < 0)
                        return r;
        }

        if (snapshot_is_settled(new, terminal_statuses) && !snapshot_is_settled(old, terminal_statuses)) {
                _cleanup_(event_freep) Event *e = event_new(EVENT_ORDER_COMPLETED, customer_id, order_id, time_usec,
                                                            previous_poll_usec);
                if (!e)
                        return -ENOMEM;
                e->line_items = snapshot_dup(new);
                if (!e->line_items)
                        return -ENOMEM;
                r = event_list_push(&l, e);
                if (r < 0)
                        return r;
                e = NULL;
        }

        *ret_events = TAKE_PTR(l.events);
        *ret_n = l.n;
        l.n = 0;
        return 0;
}
