/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "event.h"

/* Counters of SPEC §6 Metrics, kept in memory and written as a Prometheus text file. */

typedef enum PollResult {
        POLL_RESULT_OK,
        POLL_RESULT_FAILED,
        POLL_RESULT_NOT_FOUND,
        POLL_RESULT_RATE_LIMITED,
        _POLL_RESULT_MAX,
} PollResult;

#define METRICS_DURATION_BUCKETS 10
#define METRICS_MAX_WEBHOOKS 64

typedef struct WebhookMetrics {
        char name[72];
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
        WebhookMetrics webhooks[METRICS_MAX_WEBHOOKS];
        size_t n_webhooks;
} Metrics;

extern Metrics metrics;

const char *poll_result_to_string(PollResult r);
void metrics_observe_poll(PollResult result, long http_status, uint64_t duration_usec);
WebhookMetrics *metrics_webhook(const char *name);

/* The whole exposition text. */
int metrics_format(const Metrics *m, FILE *f);
/* Writes it to path atomically (temp file + rename). */
int metrics_write_textfile(const Metrics *m, const char *path);
