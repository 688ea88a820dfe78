/* SPDX-License-Identifier: MIT */
/* Webhook delivery (SPEC §6 Webhooks).
 *
 * Every configured webhook is an Endpoint: its configuration, the window over its queue in the store
 * (webhook-queue.c: which events may be attempted now), up to CONCURRENCY_MAX requests in flight,
 * and what to do with each answer: record a delivery, schedule a retry, give up into a dead letter,
 * or stop at 410 Gone. When the store fails, nothing new goes out until it works again. */
#include <fnmatch.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <strings.h>

#include "alloc-util.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "parse-util.h"
#include "strv.h"
#include "webhook.h"
#include "webhook-format.h"
#include "webhook-queue.h"

#define CONCURRENCY_MAX 4u /* requests in flight per endpoint */
#define STORE_RETRY_USEC (5 * USEC_PER_SEC)
#define RESPONSE_MAX_BODY (64u * 1024u) /* receivers' answers are not used */
#define RETRY_AFTER_MAX_SEC ((int64_t) 86400)

typedef struct Endpoint Endpoint;

struct Endpoint {
        Webhooks *webhooks;

        /* configuration, copied */
        char *name;
        char *url;
        char *secret;
        size_t secret_size;
        char **headers; /* configured "Name: value"; values never logged */
        uint64_t timeout_usec;
        uint64_t retry_for_usec;
        char *ca_file;
        WebhookFormat format;

        WebhookQueue *queue;
        size_t n_in_flight;

        bool disabled; /* answered 410 Gone; until a reload */
        bool store_failing;
        uint64_t store_retry_usec; /* realtime */

        uint64_t depth; /* queue rows in the store, for metrics and webhooks_queued() */

        uv_timer_t timer;
        Endpoint *next;
};

struct Webhooks {
        uv_loop_t *loop;
        Http *http;
        Store *store;
        Metrics *metrics;
        Endpoint *endpoints;
        bool journal;
        bool stopped;
        bool was_busy;
        WebhooksIdleFn idle_fn;
        void *idle_userdata;
        uv_timer_t idle_timer;
};

/* ---- pure helpers ---- */

char *webhook_signature(const void *key, size_t key_size, const char *id, const char *timestamp,
                        const char *body, size_t body_size) {
        static const unsigned char empty_key[1];
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t mac_size = 0;
        char out[3 + 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1] = "v1,";
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
                OSSL_PARAM_construct_end(),
        };

        if (!id || !timestamp || (!body && body_size > 0) || (!key && key_size > 0)) {
                errno = EINVAL;
                return NULL;
        }

        EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
        bool ok = ctx && EVP_MAC_init(ctx, key_size > 0 ? key : empty_key, key_size, params) &&
                  EVP_MAC_update(ctx, (const unsigned char *) id, strlen(id)) &&
                  EVP_MAC_update(ctx, (const unsigned char *) ".", 1) &&
                  EVP_MAC_update(ctx, (const unsigned char *) timestamp, strlen(timestamp)) &&
                  EVP_MAC_update(ctx, (const unsigned char *) ".", 1) &&
                  (body_size == 0 || EVP_MAC_update(ctx, (const unsigned char *) body, body_size)) &&
                  EVP_MAC_final(ctx, mac, &mac_size, sizeof mac);
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(hmac);
        if (!ok) {
                errno = EIO;
                return NULL;
        }
        EVP_EncodeBlock((unsigned char *) out + 3, mac, (int) mac_size);
        return strdup(out);
}

uint64_t webhook_retry_delay_usec(unsigned attempts, double rnd) {
        static const uint64_t schedule_sec[] = { 5, 30, 2 * 60, 10 * 60, 30 * 60, 60 * 60 };
        size_t i = attempts == 0 ? 0 : attempts - 1;

        if (i >= ELEMENTSOF(schedule_sec))
                i = ELEMENTSOF(schedule_sec) - 1;
        if (!(rnd >= 0.0)) /* also NaN */
                rnd = 0.0;
        if (rnd > 1.0)
                rnd = 1.0;
        /* ±20 % so that events failing together do not come back together */
        return (uint64_t) ((double) (schedule_sec[i] * USEC_PER_SEC) * (0.8 + 0.4 * rnd));
}

bool webhook_wants_event(const WebhookConfig *w, const char *event_type) {
        if (!w || !event_type)
                return false;
        if (!w->events)
                return true;
        for (char **p = w->events; *p; p++)
                if (fnmatch(*p, event_type, 0) == 0)
                        return true;
        return false;
}

static const char *http_reason(long status) {
        switch (status) {
        case 301: return "Moved Permanently (redirects are not followed)";
        case 302: return "Found (redirects are not followed)";
        case 303: return "See Other (redirects are not followed)";
        case 307: return "Temporary Redirect (redirects are not followed)";
        case 308: return "Permanent Redirect (redirects are not followed)";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 413: return "Content Too Large";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Content";
        case 429: return "Too Many Requests";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default: return NULL;
        }
}

static void describe_failure(const HttpResponse *resp, char *buf, size_t size) {
        const char *reason = http_reason(resp->status);

        if (resp->status > 0)
                snprintf(buf, size, "HTTP %ld%s%s%s%s", resp->status, reason ? " " : "",
                         reason ? reason : "", resp->result != HTTP_OK ? ", then " : "",
                         resp->result != HTTP_OK && resp->error ? resp->error : "");
        else
                snprintf(buf, size, "%s", resp->error ? resp->error : "no answer");
}

static bool header_has_name(const char *header, const char *name) {
        size_t n = strlen(name);
        return strncasecmp(header, name, n) == 0 && header[n] == ':';
}

static bool headers_have(char *const *headers, const char *name) {
        for (char *const *h = headers; h && *h; h++)
                if (header_has_name(*h, name))
                        return true;
        return false;
}

static int strdup_or_null(const char *s, char **ret) {
        *ret = NULL;
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* ---- metrics ---- */

static void endpoint_metrics_update(Endpoint *e, int delivered, int failed, int dead) {
        WebhookMetrics *m = metrics_webhook(e->webhooks->metrics, e->name);
        if (!m)
                return;
        m->delivered += (uint64_t) delivered;
        m->failed += (uint64_t) failed;
        m->dead_lettered += (uint64_t) dead;
        m->queue_depth = e->depth;
}

static void endpoint_refresh_depth(Endpoint *e) {
        uint64_t d;
        if (store_queue_depth(e->webhooks->store, e->name, &d) >= 0)
                e->depth = d;
        endpoint_metrics_update(e, 0, 0, 0);
}

/* ---- store failures ---- */

static void endpoint_store_failed(Endpoint *e, int r, const char *what) {
        Store *store = e->webhooks->store;

        if (!e->store_failing)
                log_error_errno(r, "Webhook '%s': cannot %s in the state store: %s. Retrying every %" PRIu64
                                "s; nothing is lost.",
                                e->name, what, store_error(store), STORE_RETRY_USEC / USEC_PER_SEC);
        else
                log_debug_errno(r, "Webhook '%s': cannot %s in the state store: %s", e->name, what,
                                store_error(store));
        e->store_failing = true;
        e->store_retry_usec = now_realtime_usec() + STORE_RETRY_USEC;
}

/* The head of an order is done (recorded in the store): its next event takes its place. */
static void endpoint_finish_row(Endpoint *e, QueueRow *row) {
        if (e->depth > 0)
                e->depth--;
        int r = webhook_queue_finish(e->queue, row, now_realtime_usec());
        endpoint_metrics_update(e, 0, 0, 0);
        if (r < 0)
                endpoint_store_failed(e, r, "read the queue");
}

static int row_record_delivered(Endpoint *e, QueueRow *row) {
        int r = store_queue_delivered(e->webhooks->store, e->name, row->ev.seq);
        if (r == -ENOENT) /* not queued any more: nothing to record */
                r = 0;
        return r;
}

static int row_record_dead(Endpoint *e, QueueRow *row, uint64_t now) {
        Store *store = e->webhooks->store;
        _cleanup_free_ char *reason = NULL;
        char span[FORMAT_TIMESPAN_MAX];
        int r;

        reason = strdup_printf("no success after %u attempt%s over %s; last error: %s", row->ev.attempts,
                               row->ev.attempts == 1 ? "" : "s",
                               format_timespan(span, sizeof span, timespan_round_for_display(now - row->ev.created_usec)),
                               row->last_error ? row->last_error : "unknown");
        if (!reason)
                return -ENOMEM;

        /* The dead letter copies attempts and last error from the queue row: bring it up to date. */
        r = store_begin(store);
        if (r < 0)
                return r;
        r = store_queue_reschedule(store, e->name, row->ev.seq, row->ev.attempts, now, row->last_error);
        if (r >= 0)
                r = store_queue_dead_letter(store, e->name, row->ev.seq, reason, now);
        if (r >= 0)
                r = store_commit(store);
        else
                store_rollback(store);
        if (r == -ENOENT)
                r = 0;
        return r;
}

/* Retries the store updates that failed before, and the reads. */
static void endpoint_retry_store(Endpoint *e) {
        uint64_t now = now_realtime_usec();
        int r = 0;

        e->store_retry_usec = 0;
        for (QueueRow *row = webhook_queue_first(e->queue), *next; row && r >= 0; row = next) {
                next = row->next;
                if (row->state == QUEUE_ROW_DELIVERED)
                        r = row_record_delivered(e, row);
                else if (row->state == QUEUE_ROW_DEAD)
                        r = row_record_dead(e, row, now);
                else
                        continue;
                if (r >= 0) {
                        endpoint_finish_row(e, row);
                        if (e->store_retry_usec != 0)
                                return; /* the scan failed */
                }
        }
        if (r >= 0)
                r = webhook_queue_rescan(e->queue, now);
        if (r >= 0 && !e->webhooks->stopped)
                r = webhook_queue_fill(e->queue, now);
        if (r < 0) {
                endpoint_store_failed(e, r, "update the queue");
                return;
        }
        if (e->store_failing)
                log_info("Webhook '%s': the state store works again.", e->name);
        e->store_failing = false;
}

/* ---- delivery ---- */

static void endpoint_run(Endpoint *e);
static void webhooks_check_idle(Webhooks *w, bool force);

static void row_delivered(Endpoint *e, QueueRow *row, const HttpResponse *resp) {
        endpoint_metrics_update(e, 1, 0, 0);
        log_debug("Webhook '%s': delivered event %s (HTTP %ld, %.3fs).", e->name, row->ev.event_id,
                  resp->status, (double) resp->duration_usec / 1e6);

        int r = row_record_delivered(e, row);
        if (r < 0) {
                /* sent again after a restart if this never works: the receiver sees the same id twice */
                row->state = QUEUE_ROW_DELIVERED;
                endpoint_store_failed(e, r, "record a delivery");
                return;
        }
        endpoint_finish_row(e, row);
}

static void row_give_up(Endpoint *e, QueueRow *row, uint64_t now) {
        Webhooks *w = e->webhooks;
        const char *last = row->last_error ? row->last_error : "unknown";
        char span[FORMAT_TIMESPAN_MAX];

        format_timespan(span, sizeof span, timespan_round_for_display(now - row->ev.created_usec));
        log_error("Webhook '%s': giving up on event %s (%s of order '%s') after %u attempt%s over %s; last "
                  "error: %s. It is kept as a dead letter.",
                  e->name, row->ev.event_id, row->ev.event_type, row->ev.order_id, row->ev.attempts,
                  row->ev.attempts == 1 ? "" : "s", span, last);
        if (w->journal) {
                _cleanup_free_ char *reason =
                        strdup_printf("%u attempt%s over %s; last error: %s", row->ev.attempts,
                                      row->ev.attempts == 1 ? "" : "s", span, last);
                int r = journal_send_dead_letter(e->name, row->ev.event_id, row->ev.event_type,
                                                 row->ev.customer_id, row->ev.order_id,
                                                 reason ? reason : last);
                if (r < 0)
                        log_debug_errno(r, "Cannot send the dead-letter entry to the journal: %m");
        }
        endpoint_metrics_update(e, 0, 0, 1);

        row->state = QUEUE_ROW_DEAD;
        int r = row_record_dead(e, row, now);
        if (r < 0) {
                endpoint_store_failed(e, r, "record a dead letter");
                return;
        }
        endpoint_finish_row(e, row);
}

static void row_failed(Endpoint *e, QueueRow *row, const HttpResponse *resp) {
        uint64_t now = now_realtime_usec(), next, delay;
        char reason[512], when[32], span[FORMAT_TIMESPAN_MAX];
        int r;

        endpoint_metrics_update(e, 0, 1, 0);
        describe_failure(resp, reason, sizeof reason);
        free(row->last_error);
        row->last_error = strdup(reason);
        row->ev.attempts++;

        /* (a clock that went back before the event's creation gives it more time, not less) */
        if (now >= row->ev.created_usec && now - row->ev.created_usec >= e->retry_for_usec) {
                row_give_up(e, row, now);
                return;
        }

        bool retry_after = (resp->status == 429 || resp->status == 503) && resp->retry_after_sec > 0;
        if (retry_after)
                delay = (uint64_t) (resp->retry_after_sec < RETRY_AFTER_MAX_SEC ? resp->retry_after_sec
                                                                          : RETRY_AFTER_MAX_SEC) *
                        USEC_PER_SEC;
        else
                delay = webhook_retry_delay_usec(row->ev.attempts, random_unit());
        next = now + delay;
        /* The last attempt happens when retry-for runs out, not up to an hour later; a receiver's
         * Retry-After is respected even past it. */
        uint64_t deadline = row->ev.created_usec + e->retry_for_usec;
        if (!retry_after && deadline > now && next > deadline)
                next = deadline;
        row->ev.next_attempt_usec = next;

        log_warning("Webhook '%s': event %s not delivered (attempt %u): %s. Next attempt at %s (in %s)%s.",
                    e->name, row->ev.event_id, row->ev.attempts, reason,
                    format_rfc3339(when, sizeof when, next), format_timespan(span, sizeof span, timespan_round_for_display(next - now)),
                    retry_after ? ", as the receiver asked" : "");

        r = store_queue_reschedule(e->webhooks->store, e->name, row->ev.seq, row->ev.attempts, next, reason);
        if (r == -ENOENT) {
                /* not queued any more: forget it */
                row->state = QUEUE_ROW_DELIVERED;
                endpoint_finish_row(e, row);
                return;
        }
        if (r < 0)
                /* the in-memory schedule goes on; only the attempt count may be lost */
                log_warning_errno(r, "Webhook '%s': cannot save the retry schedule of event %s: %s",
                                  e->name, row->ev.event_id, store_error(e->webhooks->store));
        webhook_queue_park(e->queue, row, now);
}

static void endpoint_gone(Endpoint *e, QueueRow *row) {
        endpoint_metrics_update(e, 0, 1, 0);
        if (e->disabled)
                return;
        e->disabled = true;
        log_error("Webhook '%s': the receiver answered 410 Gone for event %s. Delivery to it stops until "
                  "the configuration is reloaded; %" PRIu64 " queued events are kept.",
                  e->name, row->ev.event_id, e->depth);
}

static void on_request_done(const HttpResponse *resp, void *userdata) {
        QueueRow *row = userdata;
        Endpoint *e = webhook_queue_userdata(row->queue);
        Webhooks *w = e->webhooks;

        row->request = NULL;
        row->state = QUEUE_ROW_WAITING;
        e->n_in_flight--;

        /* A 2xx counts even when the answer's body then broke off or was too large: the receiver
         * has taken the event. */
        if (resp->status >= 200 && resp->status < 300)
                row_delivered(e, row, resp);
        else if (resp->status == 410)
                endpoint_gone(e, row);
        else
                row_failed(e, row, resp);

        endpoint_run(e);
        webhooks_check_idle(w, false);
}

static int row_start(Endpoint *e, QueueRow *row) {
        Webhooks *w = e->webhooks;
        _cleanup_free_ char *h_id = NULL, *h_ts = NULL, *h_sig = NULL, *signature = NULL, *formatted = NULL;
        _cleanup_free_ const char **headers = NULL;
        const char *body = row->ev.body;
        char timestamp[32], content_type[64];
        size_t n_configured = 0, n = 0;

        /* SPEC §10: the same event, only the body differs; what is signed is what is sent */
        if (e->format != WEBHOOK_FORMAT_CLOUDEVENTS) {
                int r = webhook_format_body(e->format, row->ev.body, row->ev.summary, &formatted);
                if (r < 0)
                        return r;
                body = formatted;
        }
        size_t body_size = strlen(body);
        snprintf(content_type, sizeof content_type, "Content-Type: %s", webhook_format_content_type(e->format));

        snprintf(timestamp, sizeof timestamp, "%" PRIu64, now_realtime_usec() / USEC_PER_SEC);
        while (e->headers && e->headers[n_configured])
                n_configured++;
        headers = calloc(n_configured + 8, sizeof *headers);
        h_id = strdup_printf("webhook-id: %s", row->ev.event_id);
        h_ts = strdup_printf("webhook-timestamp: %s", timestamp);
        if (!headers || !h_id || !h_ts)
                return -ENOMEM;
        if (e->secret) {
                signature = webhook_signature(e->secret, e->secret_size, row->ev.event_id, timestamp, body,
                                              body_size);
                if (!signature)
                        return -errno;
                h_sig = strdup_printf("webhook-signature: %s", signature);
                if (!h_sig)
                        return -ENOMEM;
        }

        headers[n++] = content_type;
        headers[n++] = h_id;
        headers[n++] = h_ts;
        if (h_sig)
                headers[n++] = h_sig;
        if (!headers_have(e->headers, "User-Agent"))
                headers[n++] = "User-Agent: provwatch/" PROVWATCH_VERSION;
        if (!headers_have(e->headers, "Expect"))
                headers[n++] = "Expect:"; /* no 100-continue round trip for larger bodies */
        for (size_t i = 0; i < n_configured; i++)
                headers[n++] = e->headers[i];
        headers[n] = NULL;

        HttpRequestSpec spec = {
                .method = "POST",
                .url = e->url,
                .headers = headers,
                .body = body,
                .body_size = body_size,
                .timeout_usec = e->timeout_usec,
                .ca_file = e->ca_file,
                .max_body = RESPONSE_MAX_BODY,
                .sensitive = n_configured > 0, /* a configured header may carry a receiver's token */
        };
        int r = http_submit(w->http, &spec, on_request_done, row, &row->request);
        if (r < 0)
                return r;
        row->state = QUEUE_ROW_IN_FLIGHT;
        e->n_in_flight++;
        log_debug("Webhook '%s': sending event %s (attempt %u).", e->name, row->ev.event_id,
                  row->ev.attempts + 1);
        return 0;
}

/* While the store fails, nothing new goes out: a delivery that cannot be recorded would be sent
 * again after a restart. */
static bool endpoint_paused(Endpoint *e) {
        return e->webhooks->stopped || e->disabled || e->store_failing;
}

static void endpoint_dispatch(Endpoint *e) {
        if (endpoint_paused(e))
                return;

        uint64_t now = now_realtime_usec();
        for (QueueRow *row = webhook_queue_first(e->queue), *next;
             row && e->n_in_flight < CONCURRENCY_MAX && !endpoint_paused(e); row = next) {
                next = row->next;
                if (row->state != QUEUE_ROW_WAITING || row->ev.next_attempt_usec > now)
                        continue;
                int r = row_start(e, row);
                if (r < 0) {
                        char error[256];
                        snprintf(error, sizeof error, "cannot send the request: %s", strerror(-r));
                        row_failed(e, row, &(HttpResponse) { .result = HTTP_FAILED, .error = error });
                }
        }
}

static void on_endpoint_timer(uv_timer_t *t) {
        Endpoint *e = t->data;
        Webhooks *w = e->webhooks;

        if (e->store_failing && e->store_retry_usec != 0 && e->store_retry_usec <= now_realtime_usec())
                endpoint_retry_store(e);
        endpoint_run(e);
        webhooks_check_idle(w, false);
}

static void endpoint_arm_timer(Endpoint *e) {
        uint64_t next = UINT64_MAX;

        if (!e->webhooks->stopped) {
                /* with all slots busy, a completion dispatches again */
                if (!endpoint_paused(e) && e->n_in_flight < CONCURRENCY_MAX)
                        for (QueueRow *row = webhook_queue_first(e->queue); row; row = row->next)
                                if (row->state == QUEUE_ROW_WAITING && row->ev.next_attempt_usec < next)
                                        next = row->ev.next_attempt_usec;
                if (!endpoint_paused(e)) {
                        uint64_t wakeup = webhook_queue_next_wakeup(e->queue);
                        if (wakeup < next)
                                next = wakeup;
                }
                if (e->store_failing && e->store_retry_usec != 0 && e->store_retry_usec < next)
                        next = e->store_retry_usec;
        }
        if (next == UINT64_MAX) {
                uv_timer_stop(&e->timer);
                return;
        }
        uint64_t now = now_realtime_usec();
        uint64_t delay_msec = next > now ? (next - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC : 0;
        uv_timer_start(&e->timer, on_endpoint_timer, delay_msec, 0);
}

static void endpoint_run(Endpoint *e) {
        if (!e->webhooks->stopped && !e->store_failing) {
                int r = webhook_queue_fill(e->queue, now_realtime_usec());
                if (r < 0)
                        endpoint_store_failed(e, r, "read the queue");
        }
        endpoint_dispatch(e);
        endpoint_arm_timer(e);
}

static size_t endpoint_due(Endpoint *e, uint64_t until) {
        size_t n = e->n_in_flight;

        if (endpoint_paused(e))
                return n;
        return n + webhook_queue_due(e->queue, until);
}

/* ---- life cycle ---- */

static void endpoint_config_clear(Endpoint *e) {
        erase_and_free_string(e->url); /* Teams' and Slack's hold their credential */
        erase_and_free(e->secret, e->secret_size);
        strv_free_erase(e->headers); /* may hold bearer tokens */
        free(e->ca_file);
        e->url = e->secret = e->ca_file = NULL;
        e->headers = NULL;
        e->secret_size = 0;
}

static int endpoint_apply_config(Endpoint *e, const WebhookConfig *c) {
        Endpoint n = {};

        if (strdup_or_null(c->url, &n.url) < 0 || strdup_or_null(c->ca_file, &n.ca_file) < 0)
                goto oom;
        if (c->secret) {
                n.secret = malloc(c->secret_size + 1);
                if (!n.secret)
                        goto oom;
                memcpy(n.secret, c->secret, c->secret_size);
                n.secret[c->secret_size] = 0;
                n.secret_size = c->secret_size;
        }
        if (c->headers && !(n.headers = strv_copy(c->headers)))
                goto oom;

        endpoint_config_clear(e);
        e->url = n.url;
        e->secret = n.secret;
        e->secret_size = n.secret_size;
        e->headers = n.headers;
        e->ca_file = n.ca_file;
        e->timeout_usec = c->timeout_usec;
        e->retry_for_usec = c->retry_for_usec;
        e->format = c->format;
        return 0;

oom:
        endpoint_config_clear(&n);
        return -ENOMEM;
}

static void endpoint_closed(uv_handle_t *h) {
        Endpoint *e = h->data;
        free(e);
}

/* Abandons requests in flight and the in-memory window (the queue stays in the store); the memory
 * goes when the timer is closed. */
static void endpoint_free(Endpoint *e) {
        Webhooks *w = e->webhooks;

        if (e->queue)
                for (QueueRow *row = webhook_queue_first(e->queue); row; row = row->next)
                        if (row->request)
                                http_cancel(w->http, row->request);
        e->queue = webhook_queue_free(e->queue);
        e->n_in_flight = 0;
        endpoint_config_clear(e);
        free(e->name);
        uv_timer_stop(&e->timer);
        uv_close((uv_handle_t *) &e->timer, endpoint_closed);
}

static int endpoint_new(Webhooks *w, const WebhookConfig *c, Endpoint **ret) {
        Endpoint *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->webhooks = w;
        uv_timer_init(w->loop, &e->timer);
        e->timer.data = e;
        e->name = strdup(c->name);
        if (!e->name || webhook_queue_new(w->store, c->name, e, &e->queue) < 0 || endpoint_apply_config(e, c) < 0) {
                endpoint_free(e);
                return -ENOMEM;
        }
        endpoint_refresh_depth(e);
        *ret = e;
        return 0;
}

static void log_unconfigured_queues(Webhooks *w, const Config *config) {
        _cleanup_(strv_freep) char **names = NULL;

        if (store_webhook_names(w->store, &names) < 0)
                return;
        for (char **n = names; *n; n++) {
                bool configured = false;
                for (size_t i = 0; i < config->n_webhooks; i++)
                        if (streq(config->webhooks[i].name, *n))
                                configured = true;
                uint64_t depth = 0;
                if (!configured && store_queue_depth(w->store, *n, &depth) >= 0 && depth > 0)
                        log_info("Webhook '%s' is not configured; its %" PRIu64 " queued events stay in the "
                                 "state store until it is configured again.",
                                 *n, depth);
        }
}

int webhooks_new(uv_loop_t *loop, Http *http, Store *store, const Config *config, const char *hostname,
                 Metrics *metrics, Webhooks **ret) {
        Webhooks *w;
        int r;

        if (!loop || !http || !store || !config || !metrics || !ret)
                return -EINVAL;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->loop = loop;
        w->http = http;
        w->store = store;
        w->metrics = metrics;
        w->journal = journal_enabled(config->journal);
        uv_timer_init(loop, &w->idle_timer);
        w->idle_timer.data = w;

        Endpoint **tail = &w->endpoints;
        for (size_t i = 0; i < config->n_webhooks; i++) {
                r = endpoint_new(w, &config->webhooks[i], tail);
                if (r < 0) {
                        webhooks_free(w);
                        return r;
                }
                tail = &(*tail)->next;
        }
        log_unconfigured_queues(w, config);

        /* what was queued before a restart goes out now, with the same ids */
        for (Endpoint *e = w->endpoints; e; e = e->next)
                endpoint_run(e);
        webhooks_check_idle(w, false);

        *ret = w;
        return 0;
}

static void webhooks_closed(uv_handle_t *h) {
        free(h->data);
}

Webhooks *webhooks_free(Webhooks *w) {
        if (!w)
                return NULL;
        for (Endpoint *e = w->endpoints, *next; e; e = next) {
                next = e->next;
                endpoint_free(e);
        }
        w->endpoints = NULL;
        uv_timer_stop(&w->idle_timer);
        uv_close((uv_handle_t *) &w->idle_timer, webhooks_closed);
        return NULL;
}

void webhooks_set_config(Webhooks *w, const Config *config) {
        Endpoint *old = w->endpoints, *list = NULL, **tail = &list;

        w->journal = journal_enabled(config->journal);
        for (size_t i = 0; i < config->n_webhooks; i++) {
                const WebhookConfig *c = &config->webhooks[i];
                Endpoint *e = NULL;

                for (Endpoint **p = &old; *p; p = &(*p)->next)
                        if (streq((*p)->name, c->name)) {
                                e = *p;
                                *p = e->next;
                                break;
                        }
                if (e) {
                        if (endpoint_apply_config(e, c) < 0)
                                log_oom(); /* keeps the previous settings of this webhook */
                        if (e->disabled)
                                log_info("Webhook '%s': delivery resumes after the reload.", e->name);
                        e->disabled = false;
                } else if (endpoint_new(w, c, &e) < 0) {
                        log_oom();
                        continue;
                }
                e->next = NULL;
                *tail = e;
                tail = &e->next;
        }
        for (Endpoint *e = old, *next; e; e = next) {
                next = e->next;
                if (e->depth > 0)
                        log_info("Webhook '%s' was removed; its %" PRIu64 " queued events stay in the state "
                                 "store until it is configured again.",
                                 e->name, e->depth);
                endpoint_free(e);
        }
        w->endpoints = list;
        for (Endpoint *e = w->endpoints; e; e = e->next)
                endpoint_run(e);
        webhooks_check_idle(w, false);
}

void webhooks_kick(Webhooks *w) {
        if (!w)
                return;
        for (Endpoint *e = w->endpoints; e; e = e->next) {
                webhook_queue_kick(e->queue);
                endpoint_refresh_depth(e);
                endpoint_run(e);
        }
        webhooks_check_idle(w, true);
}

void webhooks_stop(Webhooks *w) {
        if (!w)
                return;
        w->stopped = true;
        for (Endpoint *e = w->endpoints; e; e = e->next)
                uv_timer_stop(&e->timer);
        uv_timer_stop(&w->idle_timer);
}

uint64_t webhooks_queued(Webhooks *w) {
        uint64_t sum = 0;

        if (!w)
                return 0;
        for (Endpoint *e = w->endpoints; e; e = e->next) {
                endpoint_refresh_depth(e);
                sum += e->depth;
        }
        return sum;
}

size_t webhooks_due_before(Webhooks *w, uint64_t realtime_usec) {
        size_t n = 0;

        if (!w)
                return 0;
        for (Endpoint *e = w->endpoints; e; e = e->next)
                n += endpoint_due(e, realtime_usec);
        return n;
}

size_t webhooks_busy(Webhooks *w) {
        return webhooks_due_before(w, now_realtime_usec());
}

void webhooks_set_idle_callback(Webhooks *w, WebhooksIdleFn fn, void *userdata) {
        w->idle_fn = fn;
        w->idle_userdata = userdata;
}

static void on_idle_timer(uv_timer_t *t) {
        Webhooks *w = t->data;

        if (!w->stopped && w->idle_fn && webhooks_busy(w) == 0)
                w->idle_fn(w->idle_userdata);
}

/* The idle callback runs from its own timer, never from inside a webhooks_*() call. */
static void webhooks_check_idle(Webhooks *w, bool force) {
        if (webhooks_busy(w) > 0) {
                w->was_busy = true;
                return;
        }
        if (!w->was_busy && !force)
                return;
        w->was_busy = false;
        if (!w->stopped)
                uv_timer_start(&w->idle_timer, on_idle_timer, 0, 0);
}
