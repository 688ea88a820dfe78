/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <syslog.h>

#include "event.h"
#include "json-util.h"

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
        e = calloc(1, sizeof(Event));
        if (!e)
                return NULL;
        e->type = type;
        e->time_usec = time_usec;
        e->previous_poll_usec = previous_poll_usec;
        e->customer_id = customer_id ? strdup(customer_id) : NULL;
        e->order_id = order_id ? strdup(order_id) : NULL;
        if ((customer_id && !e->customer_id) || (order_id && !e->order_id))
                return NULL;
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

static LineItem *line_item_free(LineItem *li) {
        line_item_done(li);
        return mfree(li);
}

Event *event_free(Event *e) {
        if (!e)
                return NULL;
        free(e->customer_id);
        free(e->order_id);
        line_item_free(e->old);
        line_item_free(e->new);
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

char *event_subject(const Event *e) {
        if (event_type_is_auth(e->type))
                return strdup_printf("tenants/%s", isempty(e->tenant_id) ? "-" : e->tenant_id);
        if (!event_type_is_lineitem(e->type))
                return strdup_printf("customers/%s/orders/%s", e->customer_id, e->order_id);
        const LineItem *li = event_line_item(e);
        if (!li) {
                errno = EINVAL;
                return NULL;
        }
        return strdup_printf("customers/%s/orders/%s/lineitems/%" PRIi64, e->customer_id, e->order_id, li->number);
}

static int json_add_null(json_object *o, const char *key) {
        return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
}

static int json_add_string_or_null(json_object *o, const char *key, const char *s) {
        return s ? json_add(o, key, json_object_new_string(s)) : json_add_null(o, key);
}

static int json_add_time_or_null(json_object *o, const char *key, uint64_t usec) {
        char buf[64];
        if (usec == 0)
                return json_add_null(o, key);
        return json_add(o, key, json_object_new_string(format_rfc3339(buf, sizeof buf, usec)));
}

static json_object *quantities_to_json(const LineItem *li) {
        _cleanup_(json_object_putp) json_object *q = json_object_new_object();
        if (!q)
                return NULL;
        for (size_t i = 0; i < li->n_quantities; i++)
                if (json_add(q, li->quantities[i].status, json_object_new_int64(li->quantities[i].quantity)) < 0)
                        return NULL;
        return TAKE_PTR(q);
}

/* {"status": …, "quantities": {…}} or null */
static int json_add_state(json_object *o, const char *key, const LineItem *li) {
        _cleanup_(json_object_putp) json_object *s = NULL;

        if (!li)
                return json_add_null(o, key);
        s = json_object_new_object();
        if (!s || json_add(s, "status", json_object_new_string(li->status)) < 0 ||
            json_add(s, "quantities", quantities_to_json(li)) < 0)
                return -ENOMEM;
        return json_add(o, key, TAKE_PTR(s));
}

static int event_data_lineitem(const Event *e, json_object *data) {
        const LineItem *li = event_line_item(e), *with_olid;

        if (!li)
                return -EINVAL;
        with_olid = e->new && e->new->has_order_line_item_id ? e->new
                  : e->old && e->old->has_order_line_item_id ? e->old
                                                             : NULL;
        if (json_add(data, "line_item_number", json_object_new_int64(li->number)) < 0)
                return -ENOMEM;
        if (with_olid ? json_add(data, "order_line_item_id", json_object_new_int64(with_olid->order_line_item_id)) < 0
                      : json_add_null(data, "order_line_item_id") < 0)
                return -ENOMEM;
        const LineItemName *name = order_names_find(e->names, li->number);
        if (json_add_string_or_null(data, "offer_id", name ? name->offer_id : NULL) < 0 ||
            json_add_string_or_null(data, "friendly_name", name ? name->friendly_name : NULL) < 0)
                return -ENOMEM;
        if (json_add_state(data, "old", e->old) < 0 || json_add_state(data, "new", e->new) < 0 ||
            json_add_time_or_null(data, "previous_poll", e->previous_poll_usec) < 0)
                return -ENOMEM;
        return 0;
}

static int event_data_completed(const Event *e, json_object *data) {
        json_object *items = json_object_new_array();

        if (json_add(data, "line_items", items) < 0)
                return -ENOMEM;
        for (size_t i = 0; e->line_items && i < e->line_items->n_items; i++) {
                const LineItem *li = &e->line_items->items[i];
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                if (!o || json_add(o, "line_item_number", json_object_new_int64(li->number)) < 0 ||
                    json_add(o, "status", json_object_new_string(li->status)) < 0 ||
                    json_add(o, "quantities", quantities_to_json(li)) < 0)
                        return -ENOMEM;
                if (json_object_array_add(items, o) < 0)
                        return -ENOMEM;
                o = NULL;
        }
        return json_add_time_or_null(data, "previous_poll", e->previous_poll_usec);
}

static int json_add_line_items_array(json_object *data, json_object **ret) {
        json_object *items = json_object_new_array();
        if (json_add(data, "line_items", items) < 0)
                return -ENOMEM;
        *ret = items;
        return 0;
}

static int json_array_take(json_object *a, json_object *o) {
        if (!o || json_object_array_add(a, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

static int event_data_discovered(const Event *e, json_object *data) {
        json_object *items;
        if (json_add_time_or_null(data, "operation_date", e->operation_usec) < 0 ||
            json_add_line_items_array(data, &items) < 0)
                return -ENOMEM;
        for (size_t i = 0; e->names && i < e->names->n_items; i++) {
                const LineItemName *li = &e->names->items[i];
                json_object *o = json_object_new_object();
                if (json_array_take(items, o) < 0 ||
                    json_add(o, "line_item_number", json_object_new_int64(li->number)) < 0 ||
                    json_add_string_or_null(o, "offer_id", li->offer_id) < 0 ||
                    json_add_string_or_null(o, "friendly_name", li->friendly_name) < 0 ||
                    (li->quantity >= 0 ? json_add(o, "quantity", json_object_new_int64(li->quantity))
                                       : json_add_null(o, "quantity")) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int event_data_stalled(const Event *e, json_object *data) {
        json_object *items;
        if (json_add_time_or_null(data, "since", e->since_usec) < 0 || json_add_line_items_array(data, &items) < 0)
                return -ENOMEM;
        for (size_t i = 0; e->line_items && i < e->line_items->n_items; i++) {
                const LineItem *li = &e->line_items->items[i];
                const LineItemName *name = order_names_find(e->names, li->number);
                json_object *o = json_object_new_object();
                if (json_array_take(items, o) < 0 ||
                    json_add(o, "line_item_number", json_object_new_int64(li->number)) < 0 ||
                    json_add(o, "status", json_object_new_string(li->status)) < 0 ||
                    json_add(o, "quantities", quantities_to_json(li)) < 0 ||
                    json_add_string_or_null(o, "offer_id", name ? name->offer_id : NULL) < 0 ||
                    json_add_string_or_null(o, "friendly_name", name ? name->friendly_name : NULL) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int event_data_auth(const Event *e, json_object *data) {
        if (json_add_string_or_null(data, "grant", e->grant) < 0)
                return -ENOMEM;
        if (e->type == EVENT_AUTH_RECOVERED)
                return 0;
        json_object *codes = json_object_new_array();
        if ((e->http_status != 0 ? json_add(data, "http_status", json_object_new_int64(e->http_status))
                                 : json_add_null(data, "http_status")) < 0 ||
            json_add_string_or_null(data, "error", e->error) < 0 || json_add(data, "error_codes", codes) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_error_codes; i++)
                if (json_array_take(codes, json_object_new_int64(e->error_codes[i])) < 0)
                        return -ENOMEM;
        if (json_add_string_or_null(data, "description", e->description) < 0 ||
            json_add_string_or_null(data, "action", e->action) < 0)
                return -ENOMEM;
        return 0;
}

static json_object *event_data(const Event *e) {
        _cleanup_(json_object_putp) json_object *data = json_object_new_object();
        int r;

        if (!data)
                return NULL;
        if (!event_type_is_auth(e->type) &&
            (json_add(data, "customer_id", json_object_new_string(e->customer_id)) < 0 ||
             json_add_string_or_null(data, "customer_name", e->names ? e->names->customer_name : NULL) < 0 ||
             json_add(data, "order_id", json_object_new_string(e->order_id)) < 0))
                return NULL;

        switch (e->type) {
        case EVENT_LINEITEM_ADDED:
        case EVENT_LINEITEM_CHANGED:
        case EVENT_LINEITEM_REMOVED:
                r = event_data_lineitem(e, data);
                break;
        case EVENT_ORDER_COMPLETED:
                r = event_data_completed(e, data);
                break;
        case EVENT_ORDER_NOT_FOUND:
                r = json_add_string_or_null(data, "code", e->code);
                if (r >= 0)
                        r = json_add_string_or_null(data, "description", e->description);
                break;
        case EVENT_ORDER_FETCH_FAILED:
                r = e->http_status != 0 ? json_add(data, "http_status", json_object_new_int64(e->http_status))
                                        : json_add_null(data, "http_status");
                if (r >= 0)
                        r = json_add_string_or_null(data, "reason", e->reason);
                if (r >= 0)
                        r = json_add_string_or_null(data, "correlation_id", e->correlation_id);
                if (r >= 0)
                        r = json_add_string_or_null(data, "request_id", e->request_id);
                if (r >= 0)
                        r = json_add_string_or_null(data, "ms_cv", e->ms_cv);
                break;
        case EVENT_ORDER_RECOVERED:
                r = 0;
                break;
        case EVENT_ORDER_DISCOVERED:
                r = event_data_discovered(e, data);
                break;
        case EVENT_ORDER_STALLED:
                r = event_data_stalled(e, data);
                break;
        case EVENT_AUTH_FAILED:
        case EVENT_AUTH_RECOVERED:
                r = event_data_auth(e, data);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                errno = -r;
                return NULL;
        }
        return TAKE_PTR(data);
}

char *event_to_json(const Event *e, const char *hostname) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *source = NULL, *subject = NULL;
        char time[64];

        if (!event_type_is_valid(e->type) || isempty(e->id)) {
                errno = EINVAL;
                return NULL;
        }
        source = strdup_printf("provwatch://%s", isempty(hostname) ? "localhost" : hostname);
        subject = event_subject(e);
        if (!source || !subject)
                return NULL;

        o = json_object_new_object();
        if (!o || json_add(o, "specversion", json_object_new_string("1.0")) < 0 ||
            json_add(o, "id", json_object_new_string(e->id)) < 0 ||
            json_add(o, "source", json_object_new_string(source)) < 0 ||
            json_add(o, "type", json_object_new_string(event_table[e->type].type)) < 0 ||
            json_add(o, "subject", json_object_new_string(subject)) < 0 ||
            json_add(o, "time", json_object_new_string(format_rfc3339(time, sizeof time, e->time_usec))) < 0 ||
            json_add(o, "datacontenttype", json_object_new_string("application/json")) < 0 ||
            json_add(o, "data", event_data(e)) < 0)
                return NULL;

        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        return s ? strdup(s) : NULL;
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
