/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <syslog.h>

#include "event.h"
#include "json-writer.h"

static const struct {
        const char *type;
        const char *message_id;
        int priority;
} event_table[_EVENT_TYPE_MAX] = {
        [EVENT_LINEITEM_ADDED] = { "provwatch.lineitem.added", "bf2330ea95c54fa49007020cb6e9d4c3", LOG_NOTICE },
        [EVENT_LINEITEM_CHANGED] = { "provwatch.lineitem.changed", "a7f82c6270604890a88e115ceceb40be", LOG_NOTICE },
        [EVENT_LINEITEM_REMOVED] = { "provwatch.lineitem.removed", "14f36a7dd41a4f1fadeaa7da5b2b6d5e", LOG_NOTICE },
        [EVENT_ORDER_COMPLETED] = { "provwatch.order.completed", "60261fa439a94750832e641382fb7cbd", LOG_NOTICE },
        [EVENT_ORDER_NOT_FOUND] = { "provwatch.order.not_found", "457a2aae1c2649c3b35b315d9f21aa04", LOG_WARNING },
        [EVENT_ORDER_FETCH_FAILED] = { "provwatch.order.fetch_failed", "9f6401e29ab34fa58a166f2524d21044", LOG_WARNING },
        [EVENT_ORDER_RECOVERED] = { "provwatch.order.recovered", "f75a4c18c8bc4bdfb7a63e572c4941a0", LOG_INFO },
        [EVENT_ORDER_DISCOVERED] = { "provwatch.order.discovered", "1b9a567f1b054a309e6973d14f08cb02", LOG_NOTICE },
        [EVENT_ORDER_STALLED] = { "provwatch.order.stalled", "a01feaffc91f4f0bae59061c924aa064", LOG_WARNING },
        [EVENT_AUTH_FAILED] = { "provwatch.auth.failed", "72cf64fa0c5d4857ade3893b87143305", LOG_ERR },
        [EVENT_AUTH_RECOVERED] = { "provwatch.auth.recovered", "1e7e721cd05349ccbbb1bcb900514e8a", LOG_INFO },
};

static bool event_type_is_valid(EventType t) {
        return t >= 0 && t < _EVENT_TYPE_MAX;
}

static bool event_type_is_lineitem(EventType t) {
        return t == EVENT_LINEITEM_ADDED || t == EVENT_LINEITEM_CHANGED || t == EVENT_LINEITEM_REMOVED;
}

bool event_type_is_auth(EventType t) {
        return t == EVENT_AUTH_FAILED || t == EVENT_AUTH_RECOVERED;
}

static const char *strempty(const char *s) {
        return s ?: "";
}

const char *event_type_to_string(EventType t) {
        return event_type_is_valid(t) ? event_table[t].type : NULL;
}

EventType event_type_from_string(const char *s) {
        if (!s)
                return _EVENT_TYPE_INVALID;
        for (EventType t = 0; t < _EVENT_TYPE_MAX; t++)
                if (streq(s, event_table[t].type))
                        return t;
        return _EVENT_TYPE_INVALID;
}

const char *event_type_message_id(EventType t) {
        return event_type_is_valid(t) ? event_table[t].message_id : NULL;
}

int event_type_priority(EventType t) {
        return event_type_is_valid(t) ? event_table[t].priority : -EINVAL;
}

Event *event_new(EventType type, const char *customer_id, const char *order_id, uint64_t time_usec,
                 uint64_t previous_poll_usec) {
        _cleanup_(event_freep) Event *e = NULL;

        if (!event_type_is_valid(type) || (!event_type_is_auth(type) && (!customer_id || !order_id))) {
                errno = EINVAL;
                return NULL;
        }
        /* the ids live in the event's own allocation */
        size_t lc = customer_id ? strlen(customer_id) + 1 : 0, lo = order_id ? strlen(order_id) + 1 : 0;
        e = calloc(1, sizeof(Event) + lc + lo);
        if (!e)
                return NULL;
        e->type = type;
        e->time_usec = time_usec;
        e->previous_poll_usec = previous_poll_usec;
        char *p = (char *) (e + 1);
        if (customer_id)
                e->customer_id = memcpy(p, customer_id, lc);
        if (order_id)
                e->order_id = memcpy(p + lc, order_id, lo);
        return TAKE_PTR(e);
}

int event_set_names(Event *e, const OrderNames *names) {
        OrderNames *copy = NULL;
        if (!order_names_is_empty(names)) {
                int r = order_names_copy(names, &copy);
                if (r < 0)
                        return r;
        }
        order_names_free(e->names);
        e->names = copy;
        return 0;
}

Event *event_free(Event *e) {
        if (!e)
                return NULL;
        free(e->old);
        free(e->new);
        snapshot_free(e->line_items);
        free(e->reason);
        free(e->code);
        free(e->description);
        order_names_free(e->names);
        free(e->correlation_id);
        free(e->request_id);
        free(e->ms_cv);
        free(e->tenant_id);
        free(e->grant);
        free(e->error);
        free(e->error_codes);
        free(e->action);
        return mfree(e);
}

void events_free(Event **events, size_t n) {
        if (!events)
                return;
        for (size_t i = 0; i < n; i++)
                event_free(events[i]);
        free(events);
}

int event_assign_id(Event *e) {
        return uuid_random(e->id);
}

/* The line item a lineitem.* event is about. */
static const LineItem *event_line_item(const Event *e) {
        return e->new ? e->new : e->old;
}

/* The subject's text appended to w through put (json_writer_raw() as it is, json_writer_escaped() for
 * inside a JSON string): customers/C/orders/O[/lineitems/N], or tenants/T. -EINVAL for a lineitem.*
 * event without its line item. */
static int subject_write(JsonWriter *w, const Event *e, void (*put)(JsonWriter *, const char *, size_t)) {
        if (event_type_is_auth(e->type)) {
                const char *t = isempty(e->tenant_id) ? "-" : e->tenant_id;
                json_writer_raw(w, "tenants/", 8);
                put(w, t, strlen(t));
                return 0;
        }
        const LineItem *li = NULL;
        if (event_type_is_lineitem(e->type) && !(li = event_line_item(e)))
                return -EINVAL;
        json_writer_raw(w, "customers/", 10);
        put(w, e->customer_id, strlen(e->customer_id));
        json_writer_raw(w, "/orders/", 8);
        put(w, e->order_id, strlen(e->order_id));
        if (li) {
                json_writer_raw(w, "/lineitems/", 11);
                json_writer_int(w, li->number);
        }
        return 0;
}

/* The text w holds (free()), or NULL with errno set when r < 0 or w ran out of memory. */
static char *finish_text(JsonWriter *w, int r) {
        char *s = json_writer_finish(w);
        if (r < 0 || !s) {
                free(s);
                errno = r < 0 ? -r : ENOMEM;
                return NULL;
        }
        return s;
}

char *event_subject(const Event *e) {
        JsonWriter w = {};
        int r = subject_write(&w, e, json_writer_raw);
        return finish_text(&w, r);
}

/* ---- the CloudEvent, written directly (json-writer.h): one per change, 70,000 on a first run over
 * 20,000 orders, where json-c took a third of the time ---- */

/* A time as RFC 3339, or null when 0 */
static void write_time_or_null(JsonWriter *w, uint64_t usec) {
        char buf[64];
        json_writer_string_or_null(w, usec ? format_rfc3339(buf, sizeof buf, usec) : NULL);
}

static void write_quantities(JsonWriter *w, const LineItem *li) {
        json_writer_key(w, "quantities");
        json_writer_open(w, '{');
        for (size_t i = 0; i < li->n_quantities; i++) {
                json_writer_key_string(w, li->quantities[i].status);
                json_writer_int(w, li->quantities[i].quantity);
        }
        json_writer_close(w, '}');
}

/* {"status": …, "quantities": {…}} or null */
static void write_state(JsonWriter *w, const LineItem *li) {
        if (!li) {
                json_writer_null(w);
                return;
        }
        json_writer_open(w, '{');
        json_writer_member_string(w, "status", li->status);
        write_quantities(w, li);
        json_writer_close(w, '}');
}

static int write_data_lineitem(const Event *e, JsonWriter *w) {
        const LineItem *li = event_line_item(e), *with_olid;

        if (!li)
                return -EINVAL;
        with_olid = e->new && e->new->has_order_line_item_id ? e->new
                  : e->old && e->old->has_order_line_item_id ? e->old
                                                             : NULL;
        json_writer_member_int(w, "line_item_number", li->number);
        json_writer_member_int_or_null(w, "order_line_item_id", with_olid != NULL,
                                       with_olid ? with_olid->order_line_item_id : 0);
        const LineItemName *name = order_names_find(e->names, li->number);
        json_writer_member_string(w, "offer_id", name ? name->offer_id : NULL);
        json_writer_member_string(w, "friendly_name", name ? name->friendly_name : NULL);
        json_writer_key(w, "old");
        write_state(w, e->old);
        json_writer_key(w, "new");
        write_state(w, e->new);
        json_writer_key(w, "previous_poll");
        write_time_or_null(w, e->previous_poll_usec);
        return 0;
}

static void write_data_completed(const Event *e, JsonWriter *w) {
        json_writer_key(w, "line_items");
        json_writer_open(w, '[');
        for (size_t i = 0; e->line_items && i < e->line_items->n_items; i++) {
                const LineItem *li = &e->line_items->items[i];
                json_writer_next(w);
                json_writer_open(w, '{');
                json_writer_member_int(w, "line_item_number", li->number);
                json_writer_member_string(w, "status", li->status);
                write_quantities(w, li);
                json_writer_close(w, '}');
        }
        json_writer_close(w, ']');
        json_writer_key(w, "previous_poll");
        write_time_or_null(w, e->previous_poll_usec);
}

static void write_data_discovered(const Event *e, JsonWriter *w) {
        json_writer_key(w, "operation_date");
        write_time_or_null(w, e->operation_usec);
        json_writer_key(w, "line_items");
        json_writer_open(w, '[');
        for (size_t i = 0; e->names && i < e->names->n_items; i++) {
                const LineItemName *li = &e->names->items[i];
                json_writer_next(w);
                json_writer_open(w, '{');
                json_writer_member_int(w, "line_item_number", li->number);
                json_writer_member_string(w, "offer_id", li->offer_id);
                json_writer_member_string(w, "friendly_name", li->friendly_name);
                json_writer_member_int_or_null(w, "quantity", li->quantity >= 0, li->quantity);
                json_writer_close(w, '}');
        }
        json_writer_close(w, ']');
}

static void write_data_stalled(const Event *e, JsonWriter *w) {
        json_writer_key(w, "since");
        write_time_or_null(w, e->since_usec);
        json_writer_key(w, "line_items");
        json_writer_open(w, '[');
        for (size_t i = 0; e->line_items && i < e->line_items->n_items; i++) {
                const LineItem *li = &e->line_items->items[i];
                const LineItemName *name = order_names_find(e->names, li->number);
                json_writer_next(w);
                json_writer_open(w, '{');
                json_writer_member_int(w, "line_item_number", li->number);
                json_writer_member_string(w, "status", li->status);
                write_quantities(w, li);
                json_writer_member_string(w, "offer_id", name ? name->offer_id : NULL);
                json_writer_member_string(w, "friendly_name", name ? name->friendly_name : NULL);
                json_writer_close(w, '}');
        }
        json_writer_close(w, ']');
}

static void write_data_auth(const Event *e, JsonWriter *w) {
        json_writer_member_string(w, "grant", e->grant);
        if (e->type == EVENT_AUTH_RECOVERED)
                return;
        json_writer_member_int_or_null(w, "http_status", e->http_status != 0, e->http_status);
        json_writer_member_string(w, "error", e->error);
        json_writer_key(w, "error_codes");
        json_writer_open(w, '[');
        for (size_t i = 0; i < e->n_error_codes; i++) {
                json_writer_next(w);
                json_writer_int(w, e->error_codes[i]);
        }
        json_writer_close(w, ']');
        json_writer_member_string(w, "description", e->description);
        json_writer_member_string(w, "action", e->action);
}

static int write_data(const Event *e, JsonWriter *w) {
        json_writer_open(w, '{');
        if (!event_type_is_auth(e->type)) {
                json_writer_member_string(w, "customer_id", e->customer_id);
                json_writer_member_string(w, "customer_name", e->names ? e->names->customer_name : NULL);
                json_writer_member_string(w, "order_id", e->order_id);
        }
        switch (e->type) {
        case EVENT_LINEITEM_ADDED:
        case EVENT_LINEITEM_CHANGED:
        case EVENT_LINEITEM_REMOVED:
                if (write_data_lineitem(e, w) < 0)
                        return -EINVAL;
                break;
        case EVENT_ORDER_COMPLETED:
                write_data_completed(e, w);
                break;
        case EVENT_ORDER_NOT_FOUND:
                json_writer_member_string(w, "code", e->code);
                json_writer_member_string(w, "description", e->description);
                break;
        case EVENT_ORDER_FETCH_FAILED:
                json_writer_member_int_or_null(w, "http_status", e->http_status != 0, e->http_status);
                json_writer_member_string(w, "reason", e->reason);
                json_writer_member_string(w, "correlation_id", e->correlation_id);
                json_writer_member_string(w, "request_id", e->request_id);
                json_writer_member_string(w, "ms_cv", e->ms_cv);
                break;
        case EVENT_ORDER_RECOVERED:
                break;
        case EVENT_ORDER_DISCOVERED:
                write_data_discovered(e, w);
                break;
        case EVENT_ORDER_STALLED:
                write_data_stalled(e, w);
                break;
        case EVENT_AUTH_FAILED:
        case EVENT_AUTH_RECOVERED:
                write_data_auth(e, w);
                break;
        default:
                return -EINVAL;
        }
        json_writer_close(w, '}');
        return 0;
}

/* "subject", quoted and escaped */
static int write_subject(JsonWriter *w, const Event *e) {
        json_writer_char(w, '"');
        int r = subject_write(w, e, json_writer_escaped);
        json_writer_char(w, '"');
        return r;
}

int event_validate(const Event *e) {
        if (!event_type_is_valid(e->type) || isempty(e->id))
                return -EINVAL;
        if (event_type_is_lineitem(e->type) && !event_line_item(e))
                return -EINVAL;
        return 0;
}

int event_write_json(JsonWriter *w, const Event *e, const char *hostname) {
        char time[64];

        int r = event_validate(e);
        if (r < 0)
                return r;
        if (isempty(hostname))
                hostname = "localhost";

        json_writer_open(w, '{');
        json_writer_member_string(w, "specversion", "1.0");
        json_writer_member_string(w, "id", e->id);
        json_writer_key(w, "source");
        json_writer_raw(w, "\"provwatch://", 13);
        json_writer_escaped(w, hostname, strlen(hostname));
        json_writer_char(w, '"');
        json_writer_member_string(w, "type", event_table[e->type].type);
        json_writer_key(w, "subject");
        r = write_subject(w, e);
        if (r < 0)
                return r;
        json_writer_member_string(w, "time", format_rfc3339(time, sizeof time, e->time_usec));
        json_writer_member_string(w, "datacontenttype", "application/json");
        json_writer_key(w, "data");
        r = write_data(e, w);
        if (r < 0)
                return r;
        json_writer_close(w, '}');
        return w->failed ? -ENOMEM : 0;
}

char *event_to_json(const Event *e, const char *hostname) {
        JsonWriter w = {};
        int r = event_write_json(&w, e, hostname);
        return finish_text(&w, r);
}

/* " (fulfilled 3, prefulfillmentpending 2)", nothing when there are no quantities. */
static void fput_quantities(FILE *f, const LineItem *li) {
        if (li->n_quantities == 0)
                return;
        fputs(" (", f);
        for (size_t i = 0; i < li->n_quantities; i++)
                fprintf(f, "%s%s %" PRIi64, i > 0 ? ", " : "", li->quantities[i].status, li->quantities[i].quantity);
        fputc(')', f);
}

static int string_compare(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* "2 line items fulfilled" or "3 line items (fulfilled 2, unfulfilled 1)" */
static int fput_completed(FILE *f, const Snapshot *s) {
        size_t n = s ? s->n_items : 0;

        fprintf(f, ": %zu line item%s", n, n == 1 ? "" : "s");
        if (n == 0)
                return 0;

        _cleanup_free_ const char **statuses = calloc(n, sizeof(char *));
        if (!statuses)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                statuses[i] = s->items[i].status;
        qsort(statuses, n, sizeof(char *), string_compare);

        if (streq(statuses[0], statuses[n - 1])) {
                fprintf(f, " %s", statuses[0]);
                return 0;
        }
        fputs(" (", f);
        for (size_t i = 0; i < n;) {
                size_t j = i + 1;
                while (j < n && streq(statuses[i], statuses[j]))
                        j++;
                fprintf(f, "%s%s %zu", i > 0 ? ", " : "", statuses[i], j - i);
                i = j;
        }
        fputc(')', f);
        return 0;
}

/* MESSAGE is one line: server-provided text must not break it. */
static void replace_control_chars(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7f)
                        *s = ' ';
}

/* "Order O (Fabrikam Ltd)" when the customer's name is known, else "Order O (customer C)". */
static void fput_order(FILE *f, const Event *e) {
        const char *name = e->names ? e->names->customer_name : NULL;
        if (name)
                fprintf(f, "Order %s (%s)", e->order_id, name);
        else
                fprintf(f, "Order %s (customer %s)", e->order_id, e->customer_id);
}

/* "line item 0" and, when known, its product: "line item 0 Microsoft 365 E3" */
static void fput_line_item(FILE *f, const Event *e, int64_t number) {
        const LineItemName *n = order_names_find(e->names, number);
        fprintf(f, "line item %" PRIi64, number);
        if (n && (n->friendly_name || n->offer_id))
                fprintf(f, " %s", n->friendly_name ? n->friendly_name : n->offer_id);
}

static void fput_discovered(FILE *f, const Event *e) {
        size_t n = e->names ? e->names->n_items : 0;
        fputs(" discovered", f);
        if (n == 0)
                return;
        fprintf(f, ": %zu line item%s (", n, n == 1 ? "" : "s");
        for (size_t i = 0; i < n; i++) {
                const LineItemName *li = &e->names->items[i];
                fputs(i > 0 ? ", " : "", f);
                if (li->friendly_name || li->offer_id)
                        fputs(li->friendly_name ? li->friendly_name : li->offer_id, f);
                else
                        fprintf(f, "line item %" PRIi64, li->number);
                if (li->quantity >= 0)
                        fprintf(f, " × %" PRIi64, li->quantity);
        }
        fputc(')', f);
}

static void fput_stalled(FILE *f, const Event *e) {
        char since[64];
        fprintf(f, " has not changed since %s", format_rfc3339(since, sizeof since, e->since_usec));
        for (size_t i = 0; e->line_items && i < e->line_items->n_items; i++) {
                const LineItem *li = &e->line_items->items[i];
                fputs(i == 0 ? ": " : ", ", f);
                fput_line_item(f, e, li->number);
                fprintf(f, " %s", li->status);
        }
}

static void fput_auth(FILE *f, const Event *e) {
        const char *tenant = isempty(e->tenant_id) ? "-" : e->tenant_id;
        if (e->type == EVENT_AUTH_RECOVERED) {
                fprintf(f, "Partner Center sign-in works again for tenant %s", tenant);
                return;
        }
        fprintf(f, "Partner Center sign-in fails for tenant %s", tenant);
        if (e->error)
                fprintf(f, ": %s", e->error);
        for (size_t i = 0; i < e->n_error_codes; i++)
                fprintf(f, "%s%" PRIi64 "%s", i == 0 ? " (" : ", ", e->error_codes[i], i + 1 == e->n_error_codes ? ")" : "");
        if (e->http_status > 0 && !e->error)
                fprintf(f, ": HTTP %ld", e->http_status);
        if (e->action)
                fprintf(f, ". %s", e->action);
}

char *event_summary(const Event *e) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r = 0;
        FILE *f;

        if (!event_type_is_valid(e->type) || (e->type == EVENT_LINEITEM_ADDED && !e->new) ||
            (e->type == EVENT_LINEITEM_CHANGED && (!e->old || !e->new)) ||
            (e->type == EVENT_LINEITEM_REMOVED && !e->old)) {
                errno = EINVAL;
                return NULL;
        }
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;

        if (!event_type_is_auth(e->type))
                fput_order(f, e);
        switch (e->type) {
        case EVENT_LINEITEM_ADDED:
                fputc(' ', f);
                fput_line_item(f, e, e->new->number);
                fprintf(f, " added: %s", e->new->status);
                fput_quantities(f, e->new);
                break;
        case EVENT_LINEITEM_CHANGED:
                fputc(' ', f);
                fput_line_item(f, e, e->new->number);
                fprintf(f, ": %s → %s", e->old->status, e->new->status);
                fput_quantities(f, e->new);
                break;
        case EVENT_LINEITEM_REMOVED:
                fputc(' ', f);
                fput_line_item(f, e, e->old->number);
                fprintf(f, " removed (was %s)", e->old->status);
                break;
        case EVENT_ORDER_COMPLETED:
                fputs(" completed", f);
                r = fput_completed(f, e->line_items);
                break;
        case EVENT_ORDER_NOT_FOUND:
                fputs(" not found", f);
                if (e->code || e->description)
                        fprintf(f, ": %s%s%s", strempty(e->code), e->code && e->description ? " " : "",
                                strempty(e->description));
                break;
        case EVENT_ORDER_FETCH_FAILED:
                fputs(" cannot be fetched", f);
                if (e->http_status != 0)
                        fprintf(f, ": HTTP %ld", e->http_status);
                if (e->reason)
                        fprintf(f, ": %s", e->reason);
                break;
        case EVENT_ORDER_RECOVERED:
                fputs(" recovered", f);
                break;
        case EVENT_ORDER_DISCOVERED:
                fput_discovered(f, e);
                break;
        case EVENT_ORDER_STALLED:
                fput_stalled(f, e);
                break;
        case EVENT_AUTH_FAILED:
        case EVENT_AUTH_RECOVERED:
                fput_auth(f, e);
                break;
        default:
                r = -EINVAL;
        }

        bool failed = ferror(f);
        if (fclose(f) != 0 || failed || r < 0) {
                errno = r < 0 ? -r : ENOMEM;
                return NULL;
        }
        replace_control_chars(buf);
        return TAKE_PTR(buf);
}
