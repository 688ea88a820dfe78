/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "event.h"

/* Counters of SPEC §6 Metrics, kept in memory and written as a Prometheus text file. The manager owns
 * one Metrics and hands it to whoever counts. */

typedef enum PollResult {
        POLL_RESULT_OK,
        POLL_RESULT_FAILED,
        POLL_RESULT_NOT_FOUND,
        POLL_RESULT_RATE_LIMITED,
        _POLL_RESULT_MAX,
} PollResult;

#define METRICS_DURATION_BUCKETS 10

/* Requests of discovery (SPEC §8), by kind. */
typedef enum DiscoveryRequestKind {
        DISCOVERY_REQUEST_AUDITRECORDS,
        DISCOVERY_REQUEST_CUSTOMERS,
        DISCOVERY_REQUEST_ORDERS,
        _DISCOVERY_REQUEST_MAX,
} DiscoveryRequestKind;

typedef struct WebhookMetrics {
        char *name;
        uint64_t queue_depth;
        uint64_t delivered, failed, dead_lettered;
} WebhookMetrics;

typedef struct Metrics {
        uint64_t orders_pending, orders_settled, orders_failing, orders_not_found;
        uint64_t polls_total[_POLL_RESULT_MAX];
        uint64_t http_requests_total[600]; /* by status code; [0] = no answer */
        uint64_t duration_buckets[METRICS_DURATION_BUCKETS]; /* cumulative counts taken at write time */
        uint64_t duration_count;
        double duration_sum;
        uint64_t events_total[_EVENT_TYPE_MAX];
        uint64_t rate_limited_total;
        uint64_t token_refreshes_ok, token_refreshes_error;
        uint64_t discovery_requests_total[_DISCOVERY_REQUEST_MAX][600]; /* by HTTP status; [0] = no answer */
        uint64_t discovered_orders_log, discovered_orders_sweep;
        WebhookMetrics *webhooks; /* one per webhook name ever seen, in order of first use */
        size_t n_webhooks, webhooks_alloc;
} Metrics;

void metrics_done(Metrics *m);

const char *poll_result_to_string(PollResult r);
void metrics_observe_poll(Metrics *m, PollResult result, uint64_t duration_usec);
/* Counts one answer from Partner Center; status 0 = no answer. */
void metrics_count_http(Metrics *m, long status);
/* The counters of one webhook, created on first use; NULL only on ENOMEM. */
WebhookMetrics *metrics_webhook(Metrics *m, const char *name);

/* The whole exposition text. */
int metrics_format(const Metrics *m, FILE *f);
/* Writes it to path atomically (temp file + rename). */
int metrics_write_textfile(const Metrics *m, const char *path);
