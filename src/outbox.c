/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "journal.h"
#include "log.h"
#include "outbox.h"
#include "webhook.h"

typedef struct Block {
        struct Block *next;
        size_t used, size;
        char data[];
} Block;

#define BLOCK_SIZE (64 * 1024 - 64)

typedef struct Entry {
        OrderRow row;
        bool has_row;
        Event **events;
        const char **bodies; /* in the outbox's blocks */
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
        /* The CloudEvents bodies of the entries, rendered into one writer and copied into blocks
         * that live until the flush, when the entries go: no allocation per event. */
        JsonWriter scratch;
        Block *blocks; /* newest first */
        char **routes; /* scratch: names of the webhooks an event goes to */
        size_t routes_alloc;
};

/* n bytes of s kept until the flush */
static const char *block_copy(Outbox *o, const char *s, size_t n) {
        Block *b = o->blocks;
        if (!b || b->size - b->used < n) {
                size_t size = n > BLOCK_SIZE ? n : BLOCK_SIZE;
                b = malloc(sizeof(Block) + size);
                if (!b)
                        return NULL;
                *b = (Block) { .next = o->blocks, .size = size };
                o->blocks = b;
        }
        char *p = memcpy(b->data + b->used, s, n);
        b->used += n;
        return p;
}

/* Frees a list of blocks; with spare, its newest block becomes o's (empty) when o has none. */
static void blocks_free(Outbox *o, Block *b, bool spare) {
        if (b && spare && !o->blocks) {
                o->blocks = b;
                b = b->next;
                *o->blocks = (Block) { .size = o->blocks->size };
        }
        for (Block *next; b; b = next) {
                next = b->next;
                free(b);
        }
}

static void entry_free(Entry *e) {
        order_row_done(&e->row);
        events_free(e->events, e->n_events);
        for (size_t i = 0; e->summaries && i < e->n_events; i++)
                free(e->summaries[i]);
        free(e->bodies);
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
        blocks_free(o, TAKE_PTR(o->blocks), false);
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
        e->bodies = calloc(n_events ? n_events : 1, sizeof *e->bodies);
        e->summaries = calloc(n_events ? n_events : 1, sizeof *e->summaries);
        if (!e->bodies || !e->summaries) {
                entry_free(e);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_events; i++) {
                int r = event_assign_id(events[i]);
                if (r >= 0) {
                        o->scratch.size = 0;
                        o->scratch.comma = false;
                        r = event_write_json(&o->scratch, events[i], o->hostname);
                }
                if (r >= 0) {
                        json_writer_char(&o->scratch, 0);
                        r = o->scratch.failed ? -ENOMEM : 0;
                }
                if (r >= 0 && !(e->bodies[i] = block_copy(o, o->scratch.buf, o->scratch.size)))
                        r = -ENOMEM;
                if (r < 0) {
                        free(json_writer_finish(&o->scratch)); /* a failed writer starts again */
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
                if (r >= 0)
                        r = store_add_event(o->store, ev->id, type, ev->customer_id ?: "", ev->order_id ?: "",
                                            ev->time_usec, e->bodies[i], e->summaries[i], o->routes, n);
        }
        return r;
}

static void emit(Outbox *o, const Event *e, const char *body) {
        o->metrics->events_total[e->type]++;
        if (o->journal) {
                int r = journal_send_event(e);
                if (r < 0)
                        log_warning_errno(r, "Cannot send event %s to the journal: %m", e->id);
        }
        if (o->print_events) {
                fputs(body, stdout);
                fputc('\n', stdout);
        }
}

int outbox_flush(Outbox *o) {
        Entry *list = o->head;
        if (!list)
                return 0;
        o->head = o->tail = NULL;
        Block *blocks = TAKE_PTR(o->blocks); /* the bodies of these entries (a callback may add more) */

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
                        emit(o, e->events[i], e->bodies[i]);
                n += e->n_events;
                entry_free(e);
        }
        blocks_free(o, blocks, true);
        /* one write for the batch rather than one per event: they were committed together */
        if (o->print_events && n > 0)
                fflush(stdout);
        return r < 0 ? r : (int) (n > INT32_MAX ? INT32_MAX : n);
}
