/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "journal.h"
#include "log.h"
#include "outbox.h"
#include "webhook.h"

typedef struct Entry {
        OrderRow row;
        bool has_row;
        Event **events;
        char **summaries; /* made only for events that go to a Teams or Slack webhook */
        size_t n_events;
        OutboxSaveFn save;
        OutboxDoneFn done;
        void *userdata;
        struct Entry *next;
} Entry;

struct Outbox {
        Store *store;
        const Config *config;
        char *hostname;
        Metrics *metrics;
        bool print_events;
        bool journal;
        Entry *head, *tail;
        /* An event's CloudEvents body is rendered where it is used, into this one buffer: into the
         * store for the webhooks that want it (inside the transaction), and printed after the
         * commit. Nothing is rendered for an event nobody takes, and no body is held. */
        JsonWriter scratch;
        char **routes; /* scratch: names of the webhooks an event goes to */
        size_t routes_alloc;
};

/* The body of e in o->scratch, NUL-terminated (the writer keeps its buffer from one event to the
 * next); NULL on ENOMEM, after which the writer starts again. */
static const char *render(Outbox *o, const Event *e) {
        o->scratch.size = 0;
        o->scratch.comma = false;
        int r = event_write_json(&o->scratch, e, o->hostname);
        json_writer_char(&o->scratch, 0);
        if (r < 0 || o->scratch.failed) {
                free(json_writer_finish(&o->scratch));
                return NULL;
        }
        return o->scratch.buf;
}

static void entry_free(Entry *e) {
        order_row_done(&e->row);
        events_free(e->events, e->n_events);
        for (size_t i = 0; e->summaries && i < e->n_events; i++)
                free(e->summaries[i]);
        free(e->summaries);
        free(e);
}

void outbox_set_config(Outbox *o, const Config *config) {
        o->config = config;
        o->journal = journal_enabled(config->journal);
}

int outbox_new(Store *store, const Config *config, const char *hostname, Metrics *metrics, bool print_events,
               Outbox **ret) {
        Outbox *o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        o->store = store;
        o->metrics = metrics;
        o->print_events = print_events;
        o->hostname = strdup(hostname);
        if (!o->hostname) {
                free(o);
                return -ENOMEM;
        }
        outbox_set_config(o, config);
        *ret = o;
        return 0;
}

Outbox *outbox_free(Outbox *o) {
        if (!o)
                return NULL;
        for (Entry *e = o->head, *n; e; e = n) {
                n = e->next;
                entry_free(e);
        }
        free(json_writer_finish(&o->scratch));
        free(o->routes);
        free(o->hostname);
        free(o);
        return NULL;
}

bool outbox_pending(const Outbox *o) {
        return o->head != NULL;
}

int outbox_add(Outbox *o, OrderRow *row, Event **events, size_t n_events, OutboxSaveFn save, OutboxDoneFn done,
               void *userdata) {
        Entry *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->summaries = calloc(n_events ? n_events : 1, sizeof *e->summaries);
        if (!e->summaries) {
                entry_free(e);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_events; i++) {
                /* what would keep it from being rendered later is found now, before the commit */
                int r = event_assign_id(events[i]);
                if (r >= 0)
                        r = event_validate(events[i]);
                if (r < 0) {
                        entry_free(e); /* e->events is still NULL: the caller keeps them */
                        return r;
                }
        }
        if (row) {
                e->row = *row;
                *row = (OrderRow) {};
                e->has_row = true;
        }
        e->events = events;
        e->n_events = n_events;
        e->save = save;
        e->done = done;
        e->userdata = userdata;
        if (o->tail)
                o->tail->next = e;
        else
                o->head = e;
        o->tail = e;
        return 0;
}

/* The webhooks that want an event of this type, into o->routes; no limit on their number.
 * *ret_summary: whether one of them shows the event's summary (a Teams or Slack message). */
static int route(Outbox *o, const char *type, size_t *ret_n, bool *ret_summary) {
        size_t n = 0;
        bool summary = false;
        if (o->routes_alloc < o->config->n_webhooks) {
                char **r = realloc(o->routes, o->config->n_webhooks * sizeof *r);
                if (!r)
                        return -ENOMEM;
                o->routes = r;
                o->routes_alloc = o->config->n_webhooks;
        }
        for (size_t w = 0; w < o->config->n_webhooks; w++)
                if (webhook_wants_event(&o->config->webhooks[w], type)) {
                        o->routes[n++] = o->config->webhooks[w].name;
                        summary = summary || o->config->webhooks[w].format != WEBHOOK_FORMAT_CLOUDEVENTS;
                }
        *ret_n = n;
        *ret_summary = summary;
        return 0;
}

static int save_entry(Outbox *o, Entry *e) {
        int r = 0;
        if (e->has_row)
                r = e->row.snapshot_json ? store_put_order(o->store, &e->row)
                                         : store_put_order_keep_snapshot(o->store, &e->row);
        if (r >= 0 && e->save)
                r = e->save(o->store, e->userdata);
        for (size_t i = 0; r >= 0 && i < e->n_events; i++) {
                const Event *ev = e->events[i];
                const char *type = event_type_to_string(ev->type);
                size_t n = 0;
                bool summary = false;
                r = route(o, type, &n, &summary);
                if (r >= 0 && summary && !e->summaries[i] && !(e->summaries[i] = event_summary(ev)))
                        r = -ENOMEM;
                if (r < 0 || n == 0)
                        continue;
                const char *body = render(o, ev);
                r = body ? store_add_event(o->store, ev->id, type, ev->customer_id ?: "", ev->order_id ?: "",
                                           ev->time_usec, body, e->summaries[i], o->routes, n)
                         : -ENOMEM;
        }
        return r;
}

static void emit(Outbox *o, const Event *e) {
        o->metrics->events_total[e->type]++;
        if (o->journal) {
                int r = journal_send_event(e);
                if (r < 0)
                        log_warning_errno(r, "Cannot send event %s to the journal: %m", e->id);
        }
        if (o->print_events) {
                const char *body = render(o, e);
                if (!body) {
                        log_warning_errno(-ENOMEM, "Cannot print event %s: %m", e->id);
                        return;
                }
                o->scratch.buf[o->scratch.size - 1] = '\n'; /* the NUL */
                fwrite(body, 1, o->scratch.size, stdout);
        }
}

int outbox_flush(Outbox *o) {
        Entry *list = o->head;
        if (!list)
                return 0;
        o->head = o->tail = NULL;

        int r = store_begin(o->store);
        for (Entry *e = list; r >= 0 && e; e = e->next)
                r = save_entry(o, e);
        if (r >= 0)
                r = store_commit(o->store);
        else
                store_rollback(o->store);

        for (Entry *e = list; e; e = e->next)
                if (e->done)
                        e->done(r, &e->row, e->userdata);
        size_t n = 0;
        for (Entry *e = list, *next; e; e = next) {
                next = e->next;
                for (size_t i = 0; r >= 0 && i < e->n_events; i++)
                        emit(o, e->events[i]);
                n += e->n_events;
                entry_free(e);
        }
        /* one write for the batch rather than one per event: they were committed together */
        if (o->print_events && n > 0)
                fflush(stdout);
        return r < 0 ? r : (int) (n > INT32_MAX ? INT32_MAX : n);
}
