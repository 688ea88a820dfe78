/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http-syntax.h"
#include "parse-util.h"

/* check-config's summary: what is in force, with defaults filled in; never a secret. */

#define SUMMARY_ORDERS_MAX 10

static const char *journal_mode_to_string(JournalMode m) {
        switch (m) {
        case JOURNAL_AUTO:
                return "auto (when the journal socket exists)";
        case JOURNAL_YES:
                return "yes";
        case JOURNAL_NO:
                return "no";
        }
        return "?";
}

static void print_list(FILE *out, char *const *l, const char *empty) {
        if (!l || !*l) {
                fputs(empty, out);
                return;
        }
        for (size_t i = 0; l[i]; i++)
                fprintf(out, "%s%s", i > 0 ? " " : "", l[i]);
}

/* "  NAME:   5m", aligned with the other values; zero is what to say for 0 */
static void print_span_or(FILE *out, const char *name, uint64_t usec, const char *zero) {
        char t[FORMAT_TIMESPAN_MAX];
        fprintf(out, "  %s:%*s%s\n", name, (int) (20 - strlen(name)), "",
                usec == 0 ? zero : format_timespan(t, sizeof t, usec));
}

void config_print_summary(const Config *c, FILE *out) {
        if (!c || !out)
                return;

        fprintf(out, "Configuration %s\n\n", c->path);

        fprintf(out, "[partner-center]\n");
        fprintf(out, "  endpoint:            %s/v%s\n", c->endpoint, c->api_version);
        fprintf(out, "  auth:                %s\n", auth_mode_to_string(c->auth));
        if (c->auth == AUTH_TOKEN_FILE)
                fprintf(out, "  token file:          %s\n", c->token_file ? c->token_file : "(not set)");
        else {
                fprintf(out, "  tenant:              %s\n", c->tenant_id ? c->tenant_id : "(not set)");
                fprintf(out, "  client id:           %s\n", c->client_id ? c->client_id : "(not set)");
                fprintf(out, "  client secret:       %s\n",
                        c->client_secret_origin ? c->client_secret_origin : "(none)");
                if (c->auth == AUTH_REFRESH_TOKEN)
                        fprintf(out,
                                "  initial refresh token: %s (a newer rotated token in the state store "
                                "wins)\n",
                                c->refresh_token_origin ? c->refresh_token_origin : "(none)");
                fprintf(out, "  token endpoint:      %s\n", c->token_endpoint);
                fprintf(out, "  resource:            %s\n", c->resource);
        }
        fprintf(out, "  extra CA file:       %s\n", c->ca_file ? c->ca_file : "(none)");
        print_span_or(out, "timeout", c->timeout_usec, "0");
        fprintf(out, "  locale:              %s\n", c->locale);

        fprintf(out, "\n[poll]\n");
        print_span_or(out, "interval", c->interval_usec, "0");
        print_span_or(out, "min interval", c->min_interval_usec, "0 (always interval)");
        print_span_or(out, "settled interval", c->settled_interval_usec, "0 (settled orders are not polled again)");
        fprintf(out, "  terminal statuses:   ");
        print_list(out, c->terminal_statuses, "(none)");
        fputc('\n', out);
        if (c->max_requests_per_minute == 0)
                fprintf(out, "  request budget:      unlimited\n");
        else
                fprintf(out, "  request budget:      %u per minute\n", c->max_requests_per_minute);
        fprintf(out, "  concurrency:         %u\n", c->concurrency);
        print_span_or(out, "not-found grace", c->not_found_grace_usec, "0");
        fprintf(out, "  failure threshold:   %u\n", c->failure_threshold);
        print_span_or(out, "stall after", c->stall_after_usec, "0 (off)");

        fprintf(out, "\n[orders]\n");
        fprintf(out, "  orders directory:    %s\n", c->orders_dir ? c->orders_dir : "(none)");
        fprintf(out, "  orders:              %zu\n", c->n_orders);
        for (size_t i = 0; i < c->n_orders && i < SUMMARY_ORDERS_MAX; i++)
                fprintf(out, "    %s %s (%s:%u)\n", c->orders[i].customer_id, c->orders[i].order_id,
                        ORDER_REF_WHERE(&c->orders[i]));
        if (c->n_orders > SUMMARY_ORDERS_MAX)
                fprintf(out, "    ... and %zu more\n", c->n_orders - SUMMARY_ORDERS_MAX);

        fprintf(out, "\n[state]\n  directory:           %s\n",
                c->state_directory ? c->state_directory : "(none)");
        fprintf(out, "\n[journal]\n  enabled:             %s\n", journal_mode_to_string(c->journal));

        for (size_t i = 0; i < c->n_webhooks; i++) {
                const WebhookConfig *w = c->webhooks + i;
                _cleanup_free_ char *url = w->url ? url_mask(w->url) : NULL;

                fprintf(out, "\n[webhook %s]\n", w->name);
                fprintf(out, "  url:                 %s", url ? url : "(not set)");
                if (w->url_origin)
                        fprintf(out, " (from %s)", w->url_origin);
                fputc('\n', out);
                fprintf(out, "  events:              ");
                print_list(out, w->events, "*");
                fputc('\n', out);
                fprintf(out, "  format:              %s\n", webhook_format_to_string(w->format));
                fprintf(out, "  headers:             ");
                if (!w->headers || !w->headers[0])
                        fputs("(none)", out);
                for (size_t j = 0; w->headers && w->headers[j]; j++)
                        fprintf(out, "%s%.*s", j > 0 ? ", " : "", (int) strcspn(w->headers[j], ":"),
                                w->headers[j]);
                fputc('\n', out);
                fprintf(out, "  secret:              %s\n",
                        w->secret_origin ? w->secret_origin : "(none: requests are not signed)");
                print_span_or(out, "timeout", w->timeout_usec, "0");
                print_span_or(out, "retry for", w->retry_for_usec, "0");
                print_span_or(out, "once timeout", w->once_timeout_usec, "0");
                fprintf(out, "  extra CA file:       %s\n", w->ca_file ? w->ca_file : "(none)");
        }
        if (c->n_webhooks == 0)
                fprintf(out, "\n[webhook]\n  (none)\n");

        fprintf(out, "\n[discovery]\n");
        fprintf(out, "  enabled:             %s\n", c->discovery_enabled ? "yes" : "no");
        print_span_or(out, "interval", c->discovery_interval_usec, "0");
        print_span_or(out, "lookback", c->discovery_lookback_usec, "0");
        fprintf(out, "  customers:           ");
        print_list(out, c->discovery_customers, "(all)");
        fputc('\n', out);
        print_span_or(out, "forget after", c->discovery_forget_after_usec, "0 (never)");
        print_span_or(out, "sweep interval", c->discovery_sweep_interval_usec, "0 (off)");

        fprintf(out, "\n[metrics]\n  textfile:            %s\n",
                c->metrics_textfile ? c->metrics_textfile : "(none)");
}
