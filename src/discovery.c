/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>

#include "alloc-util.h"
#include "discovery.h"
#include "hashmap.h"
#include "json-util.h"
#include "log.h"
#include "parse-util.h"
#include "strv.h"

#define KV_CURSOR "discovery-cursor"
#define KV_LAST_READ "discovery-last-read"
#define FAILURE_BACKOFF_BASE_USEC (10 * USEC_PER_SEC)
#define FAILURE_BACKOFF_CAP_USEC (5 * 60 * USEC_PER_SEC)
/* Keys of records this much older than the cursor can never be read again (reads start at the
 * cursor's date minus 15 minutes). */
#define SEEN_KEEP_USEC ((uint64_t) 2 * 24 * 3600 * USEC_PER_SEC)

typedef enum SweepPhase {
        SWEEP_IDLE,      /* waiting for the next sweep */
        SWEEP_CUSTOMERS, /* listing customers, page after page */
        SWEEP_ORDERS,    /* one customer's orders after the other */
} SweepPhase;

struct Discovery {
        PcClient *client;
        Store *store;
        const Config *config;
        Metrics *metrics;
        DiscoveryFoundFn found;
        void *userdata;

        /* the activity log */
        uint64_t cursor_usec; /* realtime; 0 before the first committed read */
        uint64_t next_read;   /* monotonic */
        uint64_t read_start;  /* monotonic: when the read under way began */
        unsigned pages;       /* of the read under way */
        unsigned failures;
        PcCall *call;
        DiscoveryBatch *batch; /* filling, page after page */
        Hashmap *batch_keys;   /* of batch, so that a record on two pages counts once */
        bool committing;
        bool gap_logged;
        uint64_t lookback_start; /* realtime: on a first read, older records are only marked as read */

        /* the sweep */
        SweepPhase sweep_phase;
        uint64_t sweep_start; /* monotonic */
        uint64_t sweep_next;  /* monotonic: the next request of the sweep under way */
        Customer *customers;
        size_t n_customers, next_customer;
        PcCall *sweep_call;
        bool sweep_committing;
};

/* ---- batches ---- */

static void finding_done(DiscoveryFinding *f) {
        free(f->customer_id);
        free(f->order_id);
        order_names_free(f->names);
}

static void batch_free(DiscoveryBatch *b) {
        if (!b)
                return;
        for (size_t i = 0; i < b->n_findings; i++)
                finding_done(&b->findings[i]);
        free(b->findings);
        for (size_t i = 0; i < b->n_keys; i++)
                free(b->keys[i]);
        free(b->keys);
        free(b->key_dates);
        free(b);
}

static int batch_add_key(DiscoveryBatch *b, const char *key, uint64_t date) {
        /* both arrays grow from the same capacity to the same capacity */
        size_t a = b->keys_alloc;
        if (!GREEDY_REALLOC(b->keys, a, b->n_keys + 1) || !GREEDY_REALLOC(b->key_dates, b->keys_alloc, b->n_keys + 1))
                return -ENOMEM;
        b->keys[b->n_keys] = strdup(key);
        if (!b->keys[b->n_keys])
                return -ENOMEM;
        b->key_dates[b->n_keys++] = date;
        return 0;
}

/* Moves the record's ids and names into a finding. */
static int batch_add_finding(DiscoveryBatch *b, AuditVerdict verdict, char **customer_id, char **order_id,
                             OrderNames **names, uint64_t operation_usec) {
        DiscoveryFinding *f = realloc(b->findings, (b->n_findings + 1) * sizeof *f);
        if (!f)
                return -ENOMEM;
        b->findings = f;
        b->findings[b->n_findings++] = (DiscoveryFinding) {
                .verdict = verdict,
                .customer_id = TAKE_PTR(*customer_id),
                .order_id = TAKE_PTR(*order_id),
                .names = TAKE_PTR(*names),
                .operation_usec = operation_usec,
        };
        return 0;
}

static bool customer_wanted(const Discovery *d, const char *customer_id) {
        return strv_length(d->config->discovery_customers) == 0 ||
               strv_contains(d->config->discovery_customers, customer_id);
}

int discovery_batch_save(Store *store, const DiscoveryBatch *b) {
        int r = 0;
        for (size_t i = 0; r >= 0 && i < b->n_keys; i++)
                r = store_seen_add(store, b->keys[i], b->key_dates[i]);
        if (r < 0 || b->sweep)
                return r;
        char value[64];
        snprintf(value, sizeof value, "%" PRIu64, b->cursor_usec);
        r = store_kv_set(store, KV_CURSOR, value);
        if (r >= 0 && b->cursor_usec > SEEN_KEEP_USEC)
                r = store_seen_prune(store, b->cursor_usec - SEEN_KEEP_USEC);
        if (r < 0)
                return r;
        _cleanup_free_ char *last = strdup_printf("{\"time\":%" PRIu64 ",\"result\":\"ok\",\"records\":%zu}",
                                                  b->read_usec, b->records);
        return last ? store_kv_set(store, KV_LAST_READ, last) : -ENOMEM;
}

/* A failed read is remembered for `provwatch status`; nothing else depends on it. */
static void save_failed_read(Discovery *d, const char *why) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o || json_add(o, "time", json_object_new_int64((int64_t) now_realtime_usec())) < 0 ||
            json_add(o, "result", json_object_new_string(why)) < 0 ||
            json_add(o, "records", json_object_new_int64(0)) < 0)
                return;
        int r = store_kv_set(d->store, KV_LAST_READ, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        if (r < 0)
                log_debug_errno(r, "Cannot record the failed activity log read: %s", store_error(d->store));
}

/* ---- the activity log ---- */

static uint64_t retry_delay(Discovery *d) {
        uint64_t cap = d->config->discovery_interval_usec > FAILURE_BACKOFF_CAP_USEC ? d->config->discovery_interval_usec
                                                                                       : FAILURE_BACKOFF_CAP_USEC;
        return backoff_usec(d->failures, FAILURE_BACKOFF_BASE_USEC, cap, random_unit());
}

static void read_reset(Discovery *d) {
        pc_call_free(d->call);
        d->call = NULL;
        batch_free(d->batch);
        d->batch = NULL;
        hashmap_free(d->batch_keys);
        d->batch_keys = NULL;
}

static void read_failed(Discovery *d, const PcAnswer *a, const char *why) {
        _cleanup_free_ char *handles = NULL;
        if (a && a->correlation_id)
                handles = strdup_printf(" (MS-CorrelationId %s, MS-RequestId %s%s%s)", a->correlation_id, a->request_id,
                                        a->ms_cv ? ", MS-CV " : "", a->ms_cv ? a->ms_cv : "");
        read_reset(d);
        d->failures++;
        uint64_t delay = retry_delay(d);
        char span[64];
        log_warning("Cannot read the activity log: %s%s; trying again in %s.", why, handles ? handles : "",
                    format_timespan(span, sizeof span, timespan_round_for_display(delay)));
        d->next_read = now_monotonic_usec() + delay;
        save_failed_read(d, why);
}

static void read_finished(Discovery *d) {
        DiscoveryBatch *b = TAKE_PTR(d->batch);
        read_reset(d);
        d->failures = 0;
        /* A read starts at the beginning of the cursor's day, so a busy day costs more pages the later
         * it gets: reads that need more than two pages are spaced out, so that the log costs at most
         * about two requests per interval, whatever the day's volume. */
        uint64_t stretch = d->pages > 2 ? (d->pages + 1) / 2 : 1;
        d->next_read = d->read_start + d->config->discovery_interval_usec * stretch;
        d->committing = true;
        log_debug("Activity log: %zu records, %zu findings.", b->records, b->n_findings);
        d->found(b, d->userdata);
}

/* One record of a page: used, skipped (said once), or not for us. */
static int take_record(Discovery *d, AuditRecord *rec) {
        DiscoveryBatch *b = d->batch;
        if (rec->operation_usec > b->cursor_usec)
                b->cursor_usec = rec->operation_usec;
        if (rec->verdict == AUDIT_IGNORED) {
                log_debug("Activity log record %s: not used (%s).", rec->label, rec->why);
                return 0;
        }
        if (hashmap_get(d->batch_keys, rec->key))
                return 0;
        int r = store_seen_has(d->store, rec->key);
        if (r != 0)
                return r < 0 ? r : 0; /* processed before */
        if (d->cursor_usec == 0 && rec->operation_usec > 0 && rec->operation_usec < d->lookback_start) {
                /* the read begins at the start of the lookback's day: what is older than lookback is
                 * marked as read, so that no later read takes it for new */
        } else if (rec->verdict == AUDIT_UNUSABLE) {
                log_warning("Skipping activity log record %s: %s.", rec->label, rec->why);
        } else if (!customer_wanted(d, rec->customer_id)) {
                log_debug("Activity log record %s: customer '%s' is not in [discovery] customers.", rec->label,
                          rec->customer_id);
                return 0; /* not marked: a later change of customers= may want it */
        } else {
                r = batch_add_finding(b, rec->verdict, &rec->customer_id, &rec->order_id, &rec->names,
                                      rec->operation_usec);
                if (r < 0)
                        return r;
        }
        r = batch_add_key(b, rec->key, rec->operation_usec ? rec->operation_usec : b->read_usec);
        if (r < 0)
                return r;
        return hashmap_put(d->batch_keys, b->keys[b->n_keys - 1], b->keys[b->n_keys - 1]);
}

static void on_log_answer(PcCall *call, const PcAnswer *a, void *userdata) {
        Discovery *d = userdata;
        _cleanup_(audit_page_done) AuditPage page = {};
        const char *why = NULL;
        char buf[256];

        d->metrics->discovery_requests_total[DISCOVERY_REQUEST_AUDITRECORDS][a->result == HTTP_OK ? a->status : 0]++;
        if (a->result != HTTP_OK) {
                snprintf(buf, sizeof buf, "transport error: %s", a->error);
                return read_failed(d, a, buf);
        }
        if (a->status == 429) {
                /* the client paused every request; read again when the pause ends */
                log_warning("Reading the activity log was throttled (HTTP 429) (MS-CorrelationId %s, MS-RequestId %s%s%s); "
                            "reading it again after the pause.",
                            a->correlation_id, a->request_id, a->ms_cv ? ", MS-CV " : "", a->ms_cv ? a->ms_cv : "");
                read_reset(d);
                d->next_read = now_monotonic_usec();
                return;
        }
        if (a->status != 200) {
                _cleanup_free_ char *code = NULL, *desc = NULL;
                (void) pc_parse_error(a->body, a->body_size, &code, &desc);
                snprintf(buf, sizeof buf, "HTTP %ld%s%s", a->status, desc ? ": " : "", desc ? desc : "");
                return read_failed(d, a, buf);
        }
        int r = audit_parse_page(a->body, a->body_size, &page, &why);
        if (r < 0) {
                snprintf(buf, sizeof buf, "unexpected answer: %s", why ? why : strerror(-r));
                return read_failed(d, a, buf);
        }
        d->batch->records += page.n_records;
        d->pages++;
        for (size_t i = 0; r >= 0 && i < page.n_records; i++)
                r = take_record(d, &page.records[i]);
        if (r < 0) {
                snprintf(buf, sizeof buf, "%s", r == -ENOMEM ? "out of memory" : store_error(d->store));
                return read_failed(d, a, buf);
        }
        if (!page.next.next_uri)
                return read_finished(d);
        r = pc_call_next_page(call, page.next.next_uri, page.next.next_headers);
        if (r < 0)
                return read_failed(d, a, "out of memory");
        page.next.next_headers = NULL;
}

bool discovery_pull_log(Discovery *d, uint64_t now, uint64_t *ret_wake) {
        if (!d->config->discovery_enabled || d->call || d->committing)
                return false;
        if (now < d->next_read) {
                if (d->next_read < *ret_wake)
                        *ret_wake = d->next_read;
                return false;
        }
        uint64_t now_rt = now_realtime_usec();
        uint64_t from = d->cursor_usec ? d->cursor_usec : now_rt - d->config->discovery_lookback_usec;
        d->lookback_start = d->cursor_usec ? 0 : from;
        bool clamped;
        uint64_t start = audit_log_start(from, now_rt, &clamped);
        if (clamped && d->cursor_usec && !d->gap_logged) {
                char a[64], b[64];
                log_warning("The activity log was last read up to %s; Partner Center keeps it readable for 90 days, so "
                            "orders placed before %s cannot be discovered any more.",
                            format_rfc3339(a, sizeof a, d->cursor_usec), format_rfc3339(b, sizeof b, start));
                d->gap_logged = true;
        }
        _cleanup_free_ char *url = audit_log_url(d->config->endpoint, d->config->api_version, start);
        d->batch = calloc(1, sizeof *d->batch);
        d->batch_keys = hashmap_new(&string_hash_ops);
        int r = url && d->batch && d->batch_keys ? pc_call_new(d->client, url, NULL, on_log_answer, d, &d->call) : -ENOMEM;
        if (r < 0) {
                read_failed(d, NULL, "out of memory");
                return false;
        }
        d->batch->read_usec = now_rt;
        d->batch->cursor_usec = d->cursor_usec;
        d->read_start = now;
        d->pages = 0;
        return true;
}

void discovery_batch_done(Discovery *d, DiscoveryBatch *b, int r) {
        if (b->sweep)
                d->sweep_committing = false;
        else {
                d->committing = false;
                if (r >= 0)
                        d->cursor_usec = b->cursor_usec;
                else /* nothing of it was saved: the next read sees the same records again */
                        d->next_read = now_monotonic_usec() + retry_delay(d);
        }
        batch_free(b);
}

/* ---- the sweep ---- */

static void sweep_reset(Discovery *d) {
        pc_call_free(d->sweep_call);
        d->sweep_call = NULL;
        customers_free(d->customers, d->n_customers);
        d->customers = NULL;
        d->n_customers = d->next_customer = 0;
        d->sweep_phase = SWEEP_IDLE;
        d->sweep_start += d->config->discovery_sweep_interval_usec;
        uint64_t now = now_monotonic_usec();
        if (d->sweep_start < now)
                d->sweep_start = now;
}

static void sweep_failed(Discovery *d, const PcAnswer *a, const char *what) {
        char buf[256];
        if (a->result != HTTP_OK)
                snprintf(buf, sizeof buf, "transport error: %s", a->error);
        else
                snprintf(buf, sizeof buf, "HTTP %ld", a->status);
        log_warning("Cannot sweep %s: %s (MS-CorrelationId %s, MS-RequestId %s%s%s); the next sweep tries again.",
                    what, buf, a->correlation_id, a->request_id, a->ms_cv ? ", MS-CV " : "", a->ms_cv ? a->ms_cv : "");
        sweep_reset(d);
}

/* Spreads the customers' requests over the sweep interval. */
static void sweep_step_scheduled(Discovery *d) {
        uint64_t step = d->config->discovery_sweep_interval_usec / (d->n_customers + 1);
        d->sweep_next = d->sweep_start + (d->next_customer + 1) * step;
}

static void on_customers_answer(PcCall *call, const PcAnswer *a, void *userdata) {
        Discovery *d = userdata;
        Customer *list = NULL;
        size_t n = 0;
        PcPage page = {};
        const char *why = NULL;

        d->metrics->discovery_requests_total[DISCOVERY_REQUEST_CUSTOMERS][a->result == HTTP_OK ? a->status : 0]++;
        if (a->result != HTTP_OK || a->status != 200)
                return sweep_failed(d, a, "the customers");
        if (pc_parse_customers(a->body, a->body_size, &list, &n, &page, &why) < 0) {
                log_warning("Cannot sweep the customers: unexpected answer: %s.", why ? why : "out of memory");
                return sweep_reset(d);
        }
        for (size_t i = 0; i < n; i++) {
                if (!customer_wanted(d, list[i].id))
                        continue;
                Customer *c = realloc(d->customers, (d->n_customers + 1) * sizeof *c);
                if (!c)
                        break;
                d->customers = c;
                d->customers[d->n_customers++] = list[i];
                list[i] = (Customer) {};
        }
        customers_free(list, n);
        if (page.next_uri && pc_call_next_page(call, page.next_uri, page.next_headers) >= 0) {
                page.next_headers = NULL;
                pc_page_done(&page);
                return;
        }
        pc_page_done(&page);
        pc_call_free(call);
        d->sweep_call = NULL;
        if (d->n_customers == 0)
                return sweep_reset(d);
        d->sweep_phase = SWEEP_ORDERS;
        sweep_step_scheduled(d);
        log_debug("Sweep: %zu customers.", d->n_customers);
}

static void on_orders_answer(PcCall *call, const PcAnswer *a, void *userdata) {
        Discovery *d = userdata;
        const Customer *c = &d->customers[d->next_customer];
        CustomerOrder *orders = NULL;
        size_t n = 0;
        PcPage page = {};
        const char *why = NULL;

        d->metrics->discovery_requests_total[DISCOVERY_REQUEST_ORDERS][a->result == HTTP_OK ? a->status : 0]++;
        pc_call_free(call);
        d->sweep_call = NULL;
        if (a->result != HTTP_OK || a->status != 200) {
                char what[128];
                snprintf(what, sizeof what, "the orders of customer '%s'", c->id);
                return sweep_failed(d, a, what);
        }
        DiscoveryBatch *b = calloc(1, sizeof *b);
        if (!b || pc_parse_customer_orders(a->body, a->body_size, &orders, &n, &page, &why) < 0) {
                log_warning("Cannot sweep the orders of customer '%s': %s.", c->id,
                            why ? why : "out of memory");
                free(b);
                return sweep_reset(d);
        }
        pc_page_done(&page); /* a customer's order list is one page */
        b->sweep = true;
        b->read_usec = now_realtime_usec();
        b->records = n;
        for (size_t i = 0; i < n; i++) {
                if (!orders[i].pending)
                        continue;
                char *customer_id = strdup(c->id);
                if (c->name && !orders[i].names->customer_name)
                        orders[i].names->customer_name = strdup(c->name);
                if (!customer_id || batch_add_finding(b, AUDIT_CREATE_ORDER, &customer_id, &orders[i].order_id,
                                                      &orders[i].names, 0) < 0) {
                        free(customer_id);
                        break;
                }
        }
        customer_orders_free(orders, n);
        if (++d->next_customer >= d->n_customers)
                sweep_reset(d);
        else
                sweep_step_scheduled(d);
        d->sweep_committing = true;
        d->found(b, d->userdata);
}

bool discovery_pull_sweep(Discovery *d, uint64_t now, uint64_t *ret_wake) {
        if (!d->config->discovery_enabled || d->config->discovery_sweep_interval_usec == 0 || d->sweep_call ||
            d->sweep_committing)
                return false;
        uint64_t due = d->sweep_phase == SWEEP_IDLE ? d->sweep_start : d->sweep_next;
        if (now < due) {
                if (due < *ret_wake)
                        *ret_wake = due;
                return false;
        }
        _cleanup_free_ char *url = NULL;
        PcAnswerFn fn;
        if (d->sweep_phase == SWEEP_ORDERS) {
                url = strdup_printf("%s/v%s/customers/%s/orders", d->config->endpoint, d->config->api_version,
                                    d->customers[d->next_customer].id);
                fn = on_orders_answer;
        } else {
                d->sweep_phase = SWEEP_CUSTOMERS;
                d->sweep_start = now;
                url = strdup_printf("%s/v%s/customers?size=500", d->config->endpoint, d->config->api_version);
                fn = on_customers_answer;
        }
        if (!url || pc_call_new(d->client, url, NULL, fn, d, &d->sweep_call) < 0) {
                log_oom();
                sweep_reset(d);
                return false;
        }
        return true;
}

/* ---- life cycle and status ---- */

static int load_cursor(Store *store, uint64_t *ret) {
        _cleanup_free_ char *v = NULL;
        int r = store_kv_get(store, KV_CURSOR, &v);
        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        if (r < 0)
                return r;
        *ret = strtoull(v, NULL, 10);
        return 0;
}

int discovery_new(PcClient *client, Store *store, const Config *config, Metrics *metrics, DiscoveryFoundFn found,
                  void *userdata, Discovery **ret) {
        Discovery *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        *d = (Discovery) {
                .client = client,
                .store = store,
                .config = config,
                .metrics = metrics,
                .found = found,
                .userdata = userdata,
        };
        int r = load_cursor(store, &d->cursor_usec);
        if (r < 0) {
                free(d);
                return r;
        }
        d->sweep_start = now_monotonic_usec();
        *ret = d;
        return 0;
}

Discovery *discovery_free(Discovery *d) {
        if (!d)
                return NULL;
        read_reset(d);
        d->sweep_start = 0;
        sweep_reset(d);
        return mfree(d);
}

void discovery_set_config(Discovery *d, const Config *config) {
        d->config = config;
}

int discovery_status_load(Store *store, DiscoveryStatus *ret) {
        DiscoveryStatus s = {};
        _cleanup_free_ char *last = NULL;
        int r = load_cursor(store, &s.cursor_usec);
        if (r < 0)
                return r;
        r = store_kv_get(store, KV_LAST_READ, &last);
        if (r < 0 && r != -ENOENT)
                return r;
        _cleanup_(json_object_putp) json_object *o = last ? json_tokener_parse(last) : NULL;
        int64_t t = 0, n = 0;
        const char *result = json_get_cstring(json_get(o, "result"));
        if (o && json_get_int64(json_get(o, "time"), &t) >= 0 && json_get_int64(json_get(o, "records"), &n) >= 0 &&
            result) {
                s.last_read_usec = (uint64_t) t;
                s.last_records = (uint64_t) n;
                s.last_result = strdup(result);
                if (!s.last_result)
                        return -ENOMEM;
        }
        *ret = s;
        return 0;
}

void discovery_status_done(DiscoveryStatus *s) {
        free(s->last_result);
        *s = (DiscoveryStatus) {};
}
