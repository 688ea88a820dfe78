/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <sys/stat.h>

#include "metrics.h"

static const double duration_bounds[METRICS_DURATION_BUCKETS] = {
        0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

static const char *const poll_result_table[_POLL_RESULT_MAX] = {
        [POLL_RESULT_OK] = "ok",
        [POLL_RESULT_FAILED] = "failed",
        [POLL_RESULT_NOT_FOUND] = "not_found",
        [POLL_RESULT_RATE_LIMITED] = "rate_limited",
};

const char *poll_result_to_string(PollResult r) {
        return r >= 0 && r < _POLL_RESULT_MAX ? poll_result_table[r] : NULL;
}

void metrics_done(Metrics *m) {
        for (size_t i = 0; i < m->n_webhooks; i++)
                free(m->webhooks[i].name);
        free(m->webhooks);
        *m = (Metrics) {};
}

/* HTTP statuses are not counted here: every answer (each page, each retry) is counted as it
 * arrives by metrics_count_http(), and counting it again per poll doubled the numbers. */
void metrics_observe_poll(Metrics *m, PollResult result, uint64_t duration_usec) {
        if (result < 0 || result >= _POLL_RESULT_MAX)
                return;
        m->polls_total[result]++;
        double s = (double) duration_usec / 1e6;
        for (size_t i = 0; i < METRICS_DURATION_BUCKETS; i++)
                if (s <= duration_bounds[i]) {
                        m->duration_buckets[i]++;
                        break;
                }
        m->duration_count++;
        m->duration_sum += s;
}

void metrics_count_http(Metrics *m, long status) {
        m->http_requests_total[status >= 0 && status < 600 ? status : 0]++;
}

WebhookMetrics *metrics_webhook(Metrics *m, const char *name) {
        for (size_t i = 0; i < m->n_webhooks; i++)
                if (streq(m->webhooks[i].name, name))
                        return &m->webhooks[i];
        if (m->n_webhooks == m->webhooks_alloc) {
                size_t a = m->webhooks_alloc ? m->webhooks_alloc * 2 : 8;
                WebhookMetrics *w = realloc(m->webhooks, a * sizeof *w);
                if (!w)
                        return NULL;
                m->webhooks = w;
                m->webhooks_alloc = a;
        }
        char *n = strdup(name);
        if (!n)
                return NULL;
        WebhookMetrics *w = &m->webhooks[m->n_webhooks++];
        *w = (WebhookMetrics) { .name = n };
        return w;
}

/* A label value as the text format wants it: backslash, double quote and newline escaped. */
static void print_label_value(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++)
                switch (*s) {
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                default:
                        fputc(*s, f);
                }
        fputc('"', f);
}

static void print_webhook_sample(FILE *f, const char *metric, const char *webhook, const char *result,
                                 uint64_t value) {
        fprintf(f, "%s{webhook=", metric);
        print_label_value(f, webhook);
        if (result)
                fprintf(f, ",result=\"%s\"", result);
        fprintf(f, "} %llu\n", (unsigned long long) value);
}

int metrics_format(const Metrics *m, FILE *f) {
        fputs("# HELP provwatch_orders Watched orders by state.\n# TYPE provwatch_orders gauge\n", f);
        fprintf(f, "provwatch_orders{state=\"pending\"} %llu\n", (unsigned long long) m->orders_pending);
        fprintf(f, "provwatch_orders{state=\"settled\"} %llu\n", (unsigned long long) m->orders_settled);
        fprintf(f, "provwatch_orders{state=\"failing\"} %llu\n", (unsigned long long) m->orders_failing);
        fprintf(f, "provwatch_orders{state=\"not_found\"} %llu\n", (unsigned long long) m->orders_not_found);

        fputs("# HELP provwatch_polls_total Completed polls by result.\n# TYPE provwatch_polls_total counter\n", f);
        for (int r = 0; r < _POLL_RESULT_MAX; r++)
                fprintf(f, "provwatch_polls_total{result=\"%s\"} %llu\n", poll_result_table[r],
                        (unsigned long long) m->polls_total[r]);

        fputs("# HELP provwatch_http_requests_total Partner Center answers by HTTP status (0: none).\n"
              "# TYPE provwatch_http_requests_total counter\n",
              f);
        for (int c = 0; c < 600; c++)
                if (m->http_requests_total[c])
                        fprintf(f, "provwatch_http_requests_total{code=\"%d\"} %llu\n", c,
                                (unsigned long long) m->http_requests_total[c]);

        fputs("# HELP provwatch_poll_duration_seconds Duration of provisioningstatus polls.\n"
              "# TYPE provwatch_poll_duration_seconds histogram\n",
              f);
        uint64_t cum = 0;
        for (size_t i = 0; i < METRICS_DURATION_BUCKETS; i++) {
                cum += m->duration_buckets[i];
                fprintf(f, "provwatch_poll_duration_seconds_bucket{le=\"%g\"} %llu\n", duration_bounds[i],
                        (unsigned long long) cum);
        }
        fprintf(f, "provwatch_poll_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long) m->duration_count);
        fprintf(f, "provwatch_poll_duration_seconds_sum %.6f\n", m->duration_sum);
        fprintf(f, "provwatch_poll_duration_seconds_count %llu\n", (unsigned long long) m->duration_count);

        fputs("# HELP provwatch_events_total Events emitted by type.\n# TYPE provwatch_events_total counter\n", f);
        for (int t = 0; t < _EVENT_TYPE_MAX; t++)
                fprintf(f, "provwatch_events_total{type=\"%s\"} %llu\n", event_type_to_string(t),
                        (unsigned long long) m->events_total[t]);

        fputs("# HELP provwatch_webhook_queue_depth Events waiting for delivery.\n"
              "# TYPE provwatch_webhook_queue_depth gauge\n",
              f);
        for (size_t i = 0; i < m->n_webhooks; i++)
                print_webhook_sample(f, "provwatch_webhook_queue_depth", m->webhooks[i].name, NULL,
                                     m->webhooks[i].queue_depth);
        fputs("# HELP provwatch_webhook_deliveries_total Delivery attempts by result.\n"
              "# TYPE provwatch_webhook_deliveries_total counter\n",
              f);
        for (size_t i = 0; i < m->n_webhooks; i++) {
                const WebhookMetrics *w = &m->webhooks[i];
                print_webhook_sample(f, "provwatch_webhook_deliveries_total", w->name, "delivered", w->delivered);
                print_webhook_sample(f, "provwatch_webhook_deliveries_total", w->name, "failed", w->failed);
                print_webhook_sample(f, "provwatch_webhook_deliveries_total", w->name, "dead_lettered",
                                     w->dead_lettered);
        }

        fputs("# HELP provwatch_rate_limited_total 429 answers from Partner Center.\n"
              "# TYPE provwatch_rate_limited_total counter\n",
              f);
        fprintf(f, "provwatch_rate_limited_total %llu\n", (unsigned long long) m->rate_limited_total);
        fputs("# HELP provwatch_token_refreshes_total Access token acquisitions by result.\n"
              "# TYPE provwatch_token_refreshes_total counter\n",
              f);
        fprintf(f, "provwatch_token_refreshes_total{result=\"ok\"} %llu\n",
                (unsigned long long) m->token_refreshes_ok);
        fprintf(f, "provwatch_token_refreshes_total{result=\"error\"} %llu\n",
                (unsigned long long) m->token_refreshes_error);

        static const char *const kinds[_DISCOVERY_REQUEST_MAX] = { "auditrecords", "customers", "orders" };
        fputs("# HELP provwatch_discovery_requests_total Requests of order discovery by kind and HTTP status (0: none).\n"
              "# TYPE provwatch_discovery_requests_total counter\n",
              f);
        for (int k = 0; k < _DISCOVERY_REQUEST_MAX; k++)
                for (int c = 0; c < 600; c++)
                        if (m->discovery_requests_total[k][c])
                                fprintf(f, "provwatch_discovery_requests_total{kind=\"%s\",code=\"%d\"} %llu\n",
                                        kinds[k], c, (unsigned long long) m->discovery_requests_total[k][c]);
        fputs("# HELP provwatch_discovered_orders_total Orders found by discovery, by where.\n"
              "# TYPE provwatch_discovered_orders_total counter\n",
              f);
        fprintf(f, "provwatch_discovered_orders_total{via=\"activity_log\"} %llu\n",
                (unsigned long long) m->discovered_orders_log);
        fprintf(f, "provwatch_discovered_orders_total{via=\"sweep\"} %llu\n",
                (unsigned long long) m->discovered_orders_sweep);
        return ferror(f) ? -EIO : 0;
}

int metrics_write_textfile(const Metrics *m, const char *path) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        int r = metrics_format(m, f);
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r == 0)
                r = write_file_atomic(path, buf, size, 0644);
        free(buf);
        return r;
}
