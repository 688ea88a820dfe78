/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <strings.h>

#include "audit-log.h"
#include "json-util.h"

#define LOOKBACK_MAX_USEC ((uint64_t) 89 * 24 * 3600 * USEC_PER_SEC)
#define OVERLAP_USEC ((uint64_t) 15 * 60 * USEC_PER_SEC)
#define ID_MAX 128

/* {"Field":"ResourceType","Value":"Order","Operator":"equals"}, URL-encoded */
#define ORDER_FILTER                                                                                              \
        "%7B%22Field%22%3A%22ResourceType%22%2C%22Value%22%3A%22Order%22%2C%22Operator%22%3A%22equals%22%7D"

static void record_done(AuditRecord *r) {
        free(r->key);
        free(r->label);
        free(r->customer_id);
        free(r->order_id);
        order_names_free(r->names);
        *r = (AuditRecord) {};
}

void audit_page_done(AuditPage *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_records; i++)
                record_done(&p->records[i]);
        free(p->records);
        pc_page_done(&p->next);
        *p = (AuditPage) {};
}

/* Ids end up in URLs and logs: letters, digits and a few marks only. */
static bool id_is_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;
        return n > 0 && n <= ID_MAX && ascii_alnum_or_in(s, n, "-_.");
}

static const char *string_member(json_object *o, const char *key) {
        return json_get_cstring(json_get(o, key));
}

static bool string_member_is(json_object *o, const char *key, const char *value) {
        const char *s = string_member(o, key);
        return s && strcasecmp(s, value) == 0;
}

/* A value of customizedData: [{"key": …, "value": …}]. */
static const char *customized(json_object *record, const char *key) {
        json_object *a = json_get(record, "customizedData");
        if (!json_object_is_type(a, json_type_array))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *kv = json_object_array_get_idx(a, i);
                const char *k = string_member(kv, "key");
                if (k && strcasecmp(k, key) == 0)
                        return string_member(kv, "value");
        }
        return NULL;
}

static int64_t int_or_minus_one(json_object *v) {
        int64_t i;
        if (json_get_int64(v, &i) >= 0 && i >= 0)
                return i;
        const char *s = json_get_cstring(v);
        if (s && *s && strspn(s, "0123456789") == strlen(s) && strlen(s) < 19)
                return strtoll(s, NULL, 10);
        return -1;
}

/* LineItems of an order JSON: names are a courtesy, a field of the wrong type is left unknown. */
static int names_from_line_items(OrderNames *names, json_object *items, const char *k_number, const char *k_offer,
                                 const char *k_name, const char *k_quantity) {
        if (!json_object_is_type(items, json_type_array))
                return 0;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *li = json_object_array_get_idx(items, i);
                int64_t number;
                if (json_get_int64(json_get(li, k_number), &number) < 0 || number < 0)
                        continue;
                int r = order_names_set_item(names, number, string_member(li, k_offer), string_member(li, k_name),
                                             int_or_minus_one(json_get(li, k_quantity)));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* customizedData's OfferId-N, SubscriptionName-N, Quantity-N, when there is no order JSON: one pass
 * over the entries, whatever their number or order. */
static int names_from_customized(OrderNames *names, json_object *record) {
        static const char *const prefixes[] = { "OfferId-", "SubscriptionName-", "Quantity-" };
        json_object *a = json_get(record, "customizedData");
        size_t n = json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;

        for (size_t i = 0; i < n; i++) {
                json_object *kv = json_object_array_get_idx(a, i);
                const char *k = string_member(kv, "key"), *v = string_member(kv, "value");
                if (!k || !v)
                        continue;
                for (size_t p = 0; p < ELEMENTSOF(prefixes); p++) {
                        size_t l = strlen(prefixes[p]);
                        if (strncasecmp(k, prefixes[p], l) != 0 || k[l] < '0' || k[l] > '9' ||
                            strspn(k + l, "0123456789") != strlen(k + l) || strlen(k + l) > 6)
                                continue;
                        int64_t number = strtoll(k + l, NULL, 10);
                        const LineItemName *old = order_names_find(names, number);
                        int64_t q = old ? old->quantity : -1;
                        if (p == 2) {
                                if (*v && strspn(v, "0123456789") == strlen(v) && strlen(v) < 19)
                                        q = strtoll(v, NULL, 10);
                        }
                        int r = order_names_set_item(names, number, p == 0 ? v : old ? old->offer_id : NULL,
                                                     p == 1 ? v : old ? old->friendly_name : NULL, q);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static char *digest_key(json_object *record) {
        const char *text = json_object_to_json_string_ext(record, JSON_C_TO_STRING_PLAIN);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        char hex[2 * 16 + 1];
        if (!text || EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) != 1 || n < 16)
                return NULL;
        for (unsigned i = 0; i < 16; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
        return strdup_printf("sha256:%s", hex);
}

static bool used(AuditVerdict v) {
        return v == AUDIT_CREATE_ORDER || v == AUDIT_UPDATE_ORDER;
}

/* Judges one record; returns -ENOMEM only. */
static int parse_record(json_object *o, size_t index, AuditRecord *rec) {
        const char *id = string_member(o, "id"), *customer = string_member(o, "customerId"),
                   *operation = string_member(o, "operationType"), *date = string_member(o, "operationDate");
        _cleanup_(json_object_putp) json_object *value = NULL;
        const char *order = NULL;

        if (isempty(id))
                id = NULL;
        /* every record's date moves the cursor, whether it is used or not */
        if (!date || parse_rfc3339(date, &rec->operation_usec) < 0)
                rec->operation_usec = 0;
        char e1[ESCAPE_BUF], e2[ESCAPE_BUF];
        rec->label = id ? strdup_printf("'%s'", escape_message(e1, id, false))
                        : strdup_printf("#%zu on the page (customer '%s', %s)", index + 1,
                                        customer ? escape_message(e1, customer, false) : "?",
                                        date ? escape_message(e2, date, false) : "no date");
        if (!rec->label)
                return -ENOMEM;

        if (!json_object_is_type(o, json_type_object)) {
                rec->verdict = AUDIT_UNUSABLE;
                rec->why = "not a JSON object";
        } else if (!string_member_is(o, "resourceType", "order")) {
                rec->verdict = AUDIT_IGNORED;
                rec->why = "not an order";
        } else if (!operation || (strcasecmp(operation, "create_order") != 0 && strcasecmp(operation, "update_order") != 0)) {
                rec->verdict = AUDIT_IGNORED;
                rec->why = "neither create_order nor update_order";
        } else if (string_member_is(o, "operationStatus", "failed")) {
                rec->verdict = AUDIT_IGNORED;
                rec->why = "the operation failed";
        } else
                rec->verdict = strcasecmp(operation, "create_order") == 0 ? AUDIT_CREATE_ORDER : AUDIT_UPDATE_ORDER;

        json_object *raw = json_get(o, "resourceNewValue");
        if (used(rec->verdict) && raw && !json_object_is_type(raw, json_type_null)) {
                const char *text = json_get_cstring(raw);
                value = text ? json_tokener_parse(text) : NULL;
                if (!json_object_is_type(value, json_type_object)) {
                        rec->verdict = AUDIT_UNUSABLE;
                        rec->why = "resourceNewValue is not an order as JSON";
                }
        }
        if (used(rec->verdict)) {
                order = customized(o, "OrderId");
                if (isempty(order))
                        order = string_member(value, "Id");
                if (!customer || !id_is_valid(customer)) {
                        rec->verdict = AUDIT_UNUSABLE;
                        rec->why = customer ? "customerId is not an id" : "no customerId";
                } else if (!order || !id_is_valid(order)) {
                        rec->verdict = AUDIT_UNUSABLE;
                        rec->why = order ? "the order id is not an id" : "no order id (customizedData OrderId or resourceNewValue Id)";
                } else if (rec->operation_usec == 0) {
                        rec->verdict = AUDIT_UNUSABLE;
                        rec->why = "no readable operationDate";
                }
        }

        if (used(rec->verdict)) {
                rec->customer_id = strdup(customer);
                rec->order_id = strdup(order);
                rec->names = order_names_new();
                if (!rec->customer_id || !rec->order_id || !rec->names)
                        return -ENOMEM;
                const char *customer_name = string_member(o, "customerName");
                if (!isempty(customer_name) && !(rec->names->customer_name = strdup(customer_name)))
                        return -ENOMEM;
                int r = value ? names_from_line_items(rec->names, json_get(value, "LineItems"), "LineItemNumber",
                                                      "OfferId", "FriendlyName", "Quantity")
                              : names_from_customized(rec->names, o);
                if (r < 0)
                        return r;
        }

        if (id)
                rec->key = strdup(id);
        else if (rec->customer_id && rec->order_id)
                rec->key = strdup_printf("%s|%s|%s|%s", rec->customer_id, rec->order_id, operation, date);
        else
                rec->key = digest_key(o);
        return rec->key ? 0 : -ENOMEM;
}

int audit_parse_page(const char *body, size_t size, AuditPage *ret, const char **reason) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(audit_page_done) AuditPage p = {};
        json_object *items;

        int r = pc_parse_collection(body, size, &root, &items, &p.next, reason);
        if (r < 0)
                return r;
        size_t n = json_object_array_length(items);
        p.records = calloc(n ? n : 1, sizeof *p.records);
        if (!p.records)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = parse_record(json_object_array_get_idx(items, i), i, &p.records[p.n_records++]);
                if (r < 0)
                        return r;
        }
        *ret = p;
        p = (AuditPage) {};
        return 0;
}

char *audit_log_url(const char *endpoint, const char *api_version, uint64_t start_usec) {
        char date[32];
        time_t t = (time_t) (start_usec / USEC_PER_SEC);
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(date, sizeof date, "%Y-%m-%d", &tm) == 0)
                return NULL;
        size_t l = strlen(endpoint);
        while (l > 0 && endpoint[l - 1] == '/')
                l--;
        return strdup_printf("%.*s/v%s/auditrecords?startDate=%s&size=500&filter=%s", (int) l, endpoint,
                             api_version, date, ORDER_FILTER);
}

uint64_t audit_log_start(uint64_t cursor_usec, uint64_t now_usec, bool *ret_clamped) {
        uint64_t start = cursor_usec > OVERLAP_USEC ? cursor_usec - OVERLAP_USEC : 0;
        uint64_t oldest = now_usec > LOOKBACK_MAX_USEC ? now_usec - LOOKBACK_MAX_USEC : 0;
        bool clamped = start < oldest;
        if (ret_clamped)
                *ret_clamped = clamped;
        return clamped ? oldest : start;
}

/* ---- the sweep's lists ---- */

/* The sweep's lists are collections of objects with an "id": each one whose id is an id this daemon
 * can use goes through fill into the next element of an array of elem_size bytes. */
typedef int (*FillFn)(json_object *o, const char *id, void *elem);

static int parse_id_list(const char *body, size_t size, size_t elem_size, FillFn fill, void (*free_list)(void *, size_t),
                         void **ret, size_t *ret_n, PcPage *page, const char **reason) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        json_object *items;
        int r = pc_parse_collection(body, size, &root, &items, page, reason);
        if (r < 0)
                return r;
        size_t n = json_object_array_length(items), k = 0;
        char *list = calloc(n ? n : 1, elem_size);
        if (!list)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                json_object *o = json_object_array_get_idx(items, i);
                const char *id = string_member(o, "id");
                if (!id_is_valid(id))
                        continue; /* not something this daemon could ask about */
                r = fill(o, id, list + k++ * elem_size);
        }
        if (r < 0) {
                if (list)
                        free_list(list, k);
                if (page)
                        pc_page_done(page);
                return r;
        }
        *ret = list;
        *ret_n = k;
        return 0;
}

static int fill_customer_order(json_object *o, const char *id, void *elem) {
        CustomerOrder *c = elem;
        c->pending = string_member_is(o, "status", "pending");
        c->order_id = strdup(id);
        c->names = order_names_new();
        if (!c->order_id || !c->names)
                return -ENOMEM;
        return names_from_line_items(c->names, json_get(o, "lineItems"), "lineItemNumber", "offerId", "friendlyName",
                                     "quantity");
}

static void customer_orders_free_void(void *l, size_t n) {
        customer_orders_free(l, n);
}

void customer_orders_free(CustomerOrder *o, size_t n) {
        for (size_t i = 0; o && i < n; i++) {
                free(o[i].order_id);
                order_names_free(o[i].names);
        }
        free(o);
}

int pc_parse_customer_orders(const char *body, size_t size, CustomerOrder **ret, size_t *ret_n, PcPage *page,
                             const char **reason) {
        return parse_id_list(body, size, sizeof(CustomerOrder), fill_customer_order, customer_orders_free_void,
                             (void **) ret, ret_n, page, reason);
}

static int fill_customer(json_object *o, const char *id, void *elem) {
        Customer *c = elem;
        const char *name = string_member(json_get(o, "companyProfile"), "companyName");
        c->id = strdup(id);
        c->name = name ? strdup(name) : NULL;
        return !c->id || (name && !c->name) ? -ENOMEM : 0;
}

static void customers_free_void(void *l, size_t n) {
        customers_free(l, n);
}

void customers_free(Customer *c, size_t n) {
        for (size_t i = 0; c && i < n; i++) {
                free(c[i].id);
                free(c[i].name);
        }
        free(c);
}

int pc_parse_customers(const char *body, size_t size, Customer **ret, size_t *ret_n, PcPage *page,
                       const char **reason) {
        return parse_id_list(body, size, sizeof(Customer), fill_customer, customers_free_void, (void **) ret, ret_n,
                             page, reason);
}
