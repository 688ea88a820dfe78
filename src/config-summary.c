/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

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

void config_print_summary(const Config *c, FILE *out) {
        char t[FORMAT_TIMESPAN_MAX];

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
        fprintf(out, "  timeout:             %s\n", format_timespan(t, sizeof t, c->timeout_usec));
        fprintf(out, "  locale:              %s\n", c->locale);

        fprintf(out, "\n[poll]\n");
        fprintf(out, "  interval:            %s\n", format_timespan(t, sizeof t, c->interval_usec));
        if (c->settled_interval_usec == 0)
                fprintf(out, "  settled interval:    0 (settled orders are not polled again)\n");
        else
                fprintf(out, "  settled interval:    %s\n",
                        format_timespan(t, sizeof t, c->settled_interval_usec));
        fprintf(out, "  terminal statuses:   ");
        print_list(out, c->terminal_statuses, "(none)");
        fputc('\n', out);
        if (c->max_requests_per_minute == 0)
                fprintf(out, "  request budget:      unlimited\n");
        else
                fprintf(out, "  request budget:      %u per minute\n", c->max_requests_per_minute);
        fprintf(out, "  concurrency:         %u\n", c->concurrency);
        fprintf(out, "  not-found grace:     %s\n", format_timespan(t, sizeof t, c->not_found_grace_usec));
        fprintf(out, "  failure threshold:   %u\n", c->failure_threshold);

        fprintf(out, "\n[orders]\n");
        fprintf(out, "  orders directory:    %s\n", c->orders_dir ? c->orders_dir : "(none)");
        fprintf(out, "  orders:              %zu\n", c->n_orders);
        for (size_t i = 0; i < c->n_orders && i < SUMMARY_ORDERS_MAX; i++)
                fprintf(out, "    %s %s (%s)\n", c->orders[i].customer_id, c->orders[i].order_id,
                        c->orders[i].origin);
        if (c->n_orders > SUMMARY_ORDERS_MAX)
                fprintf(out, "    ... and %zu more\n", c->n_orders - SUMMARY_ORDERS_MAX);

        fprintf(out, "\n[state]\n  directory:           %s\n",
                c->state_directory ? c->state_directory : "(none)");
        fprintf(out, "\n[journal]\n  enabled:             %s\n", journal_mode_to_string(c->journal));

        for (size_t i = 0; i < c->n_webhooks; i++) {
                const WebhookConfig *w = c->webhooks + i;
                _cleanup_free_ char *url = w->url ? url_mask_password(w->url) : NULL;

                fprintf(out, "\n[webhook %s]\n", w->name);
                fprintf(out, "  url:                 %s\n", url ? url : "(not set)");
                fprintf(out, "  events:              ");
                print_list(out, w->events, "*");
                fputc('\n', out);
                fprintf(out, "  headers:             ");
                if (!w->headers || !w->headers[0])
                        fputs("(none)", out);
                for (size_t j = 0; w->headers && w->headers[j]; j++)
                        fprintf(out, "%s%.*s", j > 0 ? ", " : "", (int) strcspn(w->headers[j], ":"),
                                w->headers[j]);
                fputc('\n', out);
                fprintf(out, "  secret:              %s\n",
                        w->secret_origin ? w->secret_origin : "(none: requests are not signed)");
                fprintf(out, "  timeout:             %s\n", format_timespan(t, sizeof t, w->timeout_usec));
                fprintf(out, "  retry for:           %s\n", format_timespan(t, sizeof t, w->retry_for_usec));
                fprintf(out, "  once timeout:        %s\n",
                        format_timespan(t, sizeof t, w->once_timeout_usec));
                fprintf(out, "  extra CA file:       %s\n", w->ca_file ? w->ca_file : "(none)");
        }
        if (c->n_webhooks == 0)
                fprintf(out, "\n[webhook]\n  (none)\n");

        fprintf(out, "\n[metrics]\n  textfile:            %s\n",
                c->metrics_textfile ? c->metrics_textfile : "(none)");
}
