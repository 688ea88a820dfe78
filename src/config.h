/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "orders-file.h"
#include "util.h"
#include "webhook-format.h"

/* The configuration of SPEC §2, fully parsed and validated. Pure data: everything that needs
 * I/O (secrets, orders-dir files) is read by config_load() into plain fields. */

typedef enum AuthMode {
        AUTH_REFRESH_TOKEN,
        AUTH_CLIENT_CREDENTIALS,
        AUTH_TOKEN_FILE,
} AuthMode;

typedef enum JournalMode {
        JOURNAL_AUTO,
        JOURNAL_YES,
        JOURNAL_NO,
} JournalMode;

typedef struct WebhookConfig {
        char *name;          /* "default" for the plain [webhook] section (so [webhook default] is a duplicate) */
        char *url;           /* may hold a credential (Teams' sig=, Slack's last segment): print url_mask() */
        char *url_origin;    /* "credential webhook-NAME-url" or the url-file path; NULL for url = */
        char *secret;        /* key bytes (whsec_ decoded, or raw); NULL if none */
        size_t secret_size;
        char *secret_origin; /* "credential webhook-NAME-secret" or the file path; never the secret */
        char **events;       /* NULL-terminated glob patterns; default {"*"} */
        WebhookFormat format; /* the body: CloudEvent (default), Teams or Slack message (SPEC §10) */
        char **headers;      /* NULL-terminated "Name: value"; an empty list, never NULL */
        uint64_t timeout_usec;
        uint64_t retry_for_usec;
        uint64_t once_timeout_usec;
        char *ca_file;
} WebhookConfig;

typedef struct Config {
        char *path; /* the file it was read from */

        /* [partner-center] */
        char *endpoint;    /* without trailing slash */
        char *api_version; /* "1" */
        AuthMode auth;
        char *tenant_id;
        char *client_id;
        char *client_secret; /* the secret itself, loaded; NULL if none */
        char *client_secret_origin;
        char *refresh_token; /* initial refresh token, loaded; NULL if none */
        char *refresh_token_origin;
        char *token_file; /* auth = token-file: path, re-read by the auth module */
        char *token_endpoint; /* {tenant-id} already replaced */
        char *resource;
        char *ca_file;
        uint64_t timeout_usec;
        char *locale;

        /* [poll] */
        uint64_t interval_usec;
        /* the shortest revisit of an unsettled order while the budget has room; 0 = always interval */
        uint64_t min_interval_usec;
        uint64_t settled_interval_usec; /* 0 = stop polling settled orders */
        char **terminal_statuses;       /* NULL-terminated, lowercased */
        unsigned max_requests_per_minute; /* 0 = unlimited */
        unsigned concurrency;
        uint64_t not_found_grace_usec;
        unsigned failure_threshold;
        uint64_t stall_after_usec; /* order.stalled after this long without a change (SPEC §9); 0 = off */

        /* [orders] */
        OrderRef *orders; /* from order= keys and orders-dir files, deduplicated, in file order */
        size_t n_orders;
        char *orders_dir; /* NULL when not set */

        /* [state] */
        char *state_directory; /* resolved: key, else $STATE_DIRECTORY (first entry), else /var/lib/provwatch */

        /* [journal] */
        JournalMode journal;

        /* [webhook], [webhook NAME] */
        WebhookConfig *webhooks;
        size_t n_webhooks;

        /* [discovery]: finding the orders the partner tenant places in the activity log (SPEC §8).
         * A configuration need not name any order; with discovery on, that is the usual case. */
        bool discovery_enabled;
        uint64_t discovery_interval_usec;       /* how often the activity log is read; never 0 */
        uint64_t discovery_lookback_usec;       /* first start: orders created this far back; at most 89d */
        char **discovery_customers;             /* NULL-terminated customer IDs; NULL or empty = all */
        uint64_t discovery_forget_after_usec;   /* a discovered order settled this long is dropped; 0 = never */
        uint64_t discovery_sweep_interval_usec; /* also list customers' orders this often; 0 = off */

        /* [metrics] */
        char *metrics_textfile;

        /* Warnings found while loading (world-readable secret files, …), to be logged by the caller.
         * NULL-terminated. */
        char **warnings;
} Config;

#define CONFIG_DEFAULT_PATH "/etc/provwatch/provwatch.conf"

typedef enum ConfigFlags {
        /* Read no secret (client secret, refresh token, webhook secrets: neither credentials nor
         * *-file keys) and do not require them; their fields stay NULL. For `provwatch status`,
         * which an admin runs outside the unit, where the credentials are not there. */
        CONFIG_SKIP_SECRETS = 1 << 0,
} ConfigFlags;

/* Parses and validates the file at path. On a configuration error returns -EINVAL (or -errno of
 * a file that cannot be read) and writes one line per problem to err, each of the form
 * "provwatch.conf:12: [poll] interval: \"5 parsecs\" is not a time span". Secrets are never
 * printed. All problems found are reported, not just the first. */
int config_load_full(const char *path, ConfigFlags flags, FILE *err, Config **ret);
int config_load(const char *path, FILE *err, Config **ret); /* flags 0 */
Config *config_free(Config *c);
/* Whether o is an order = of the configuration file itself (else it is from orders-dir). */
static inline bool config_order_is_own(const Config *c, const OrderRef *o) {
        return o->file && streq(o->file->path, c->path);
}

static inline void config_freep(Config **c) {
        config_free(*c);
}

/* Human summary for check-config, no secrets (config-summary.c). */
void config_print_summary(const Config *c, FILE *out);

/* "refresh-token", "client-credentials", "token-file" */
const char *auth_mode_to_string(AuthMode m);
