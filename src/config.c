/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc-util.h"
#include "conf-parser.h"
#include "config-values.h"
#include "config.h"
#include "http-syntax.h"
#include "message-list.h"
#include "parse-util.h"
#include "secrets.h"
#include "strv.h"

#define CONFIG_FILE_MAX ((size_t)1024 * 1024)
#define WEBHOOK_NAME_MAX 64
#define KEYS_MAX 48
#define TENANT_PLACEHOLDER "{tenant-id}"

#define DEFAULT_ENDPOINT "https://api.partnercenter.microsoft.com"
#define DEFAULT_TOKEN_ENDPOINT "https://login.microsoftonline.com/" TENANT_PLACEHOLDER "/oauth2/token"
#define DEFAULT_STATE_DIRECTORY "/var/lib/provwatch"
#define DEFAULT_ORDERS_DIR "/etc/provwatch/orders.d"

typedef enum SectionType {
        SECTION_PARTNER_CENTER,
        SECTION_POLL,
        SECTION_ORDERS,
        SECTION_STATE,
        SECTION_JOURNAL,
        SECTION_WEBHOOK,
        SECTION_DISCOVERY,
        SECTION_METRICS,
        _SECTION_MAX,
        SECTION_NONE,   /* before the first section header */
        SECTION_IGNORE, /* after a bad section header (already reported): its keys are skipped */
} SectionType;

static const char *const section_names[_SECTION_MAX] = {
        [SECTION_PARTNER_CENTER] = "partner-center",
        [SECTION_POLL] = "poll",
        [SECTION_ORDERS] = "orders",
        [SECTION_STATE] = "state",
        [SECTION_JOURNAL] = "journal",
        [SECTION_WEBHOOK] = "webhook",
        [SECTION_DISCOVERY] = "discovery",
        [SECTION_METRICS] = "metrics",
};

/* A *-file key of a secret (a webhook's url-file too): the path is kept here until it is loaded. */
typedef struct Setting {
        char *value;
        unsigned line;
} Setting;

typedef struct SecretFiles {
        Setting client_secret;
        Setting refresh_token;
} SecretFiles;

typedef struct WebhookMeta {
        char *label; /* "webhook" or "webhook NAME", as in messages */
        bool plain;  /* written as [webhook] */
        unsigned section_line;
        Setting secret_file;
        Setting url_file;
        unsigned seen[KEYS_MAX]; /* line where each key was first set */
        bool invalid[KEYS_MAX];  /* a bad value was reported: no "is required" on top */
} WebhookMeta;

typedef struct KeyDef {
        SectionType section;
        const char *name;
        ValueType type;
        /* into Config or WebhookConfig; into SecretFiles or WebhookMeta for VALUE_SECRET_FILE */
        size_t offset;
        ValueRange range;
} KeyDef;

static const KeyDef key_table[] = {
        {SECTION_PARTNER_CENTER, "endpoint", VALUE_ENDPOINT, offsetof(Config, endpoint)},
        {SECTION_PARTNER_CENTER, "api-version", VALUE_API_VERSION, offsetof(Config, api_version)},
        {SECTION_PARTNER_CENTER, "auth", VALUE_AUTH, offsetof(Config, auth)},
        {SECTION_PARTNER_CENTER, "tenant-id", VALUE_TENANT_ID, offsetof(Config, tenant_id)},
        {SECTION_PARTNER_CENTER, "client-id", VALUE_CLIENT_ID, offsetof(Config, client_id)},
        {SECTION_PARTNER_CENTER, "client-secret-file", VALUE_SECRET_FILE,
         offsetof(SecretFiles, client_secret)},
        {SECTION_PARTNER_CENTER, "refresh-token-file", VALUE_SECRET_FILE,
         offsetof(SecretFiles, refresh_token)},
        {SECTION_PARTNER_CENTER, "token-file", VALUE_PATH, offsetof(Config, token_file)},
        {SECTION_PARTNER_CENTER, "token-endpoint", VALUE_URL, offsetof(Config, token_endpoint)},
        {SECTION_PARTNER_CENTER, "resource", VALUE_STRING, offsetof(Config, resource)},
        {SECTION_PARTNER_CENTER, "ca-file", VALUE_PATH, offsetof(Config, ca_file)},
        {SECTION_PARTNER_CENTER, "timeout", VALUE_TIMESPAN, offsetof(Config, timeout_usec), {1}},
        {SECTION_PARTNER_CENTER, "locale", VALUE_LOCALE, offsetof(Config, locale)},

        {SECTION_POLL, "interval", VALUE_TIMESPAN, offsetof(Config, interval_usec), {1}},
        {SECTION_POLL, "min-interval", VALUE_TIMESPAN, offsetof(Config, min_interval_usec)},
        {SECTION_POLL, "settled-interval", VALUE_TIMESPAN, offsetof(Config, settled_interval_usec)},
        {SECTION_POLL, "terminal-statuses", VALUE_STATUSES, offsetof(Config, terminal_statuses)},
        {SECTION_POLL, "max-requests-per-minute", VALUE_UNSIGNED, offsetof(Config, max_requests_per_minute),
         {0, 100000}},
        {SECTION_POLL, "concurrency", VALUE_UNSIGNED, offsetof(Config, concurrency), {1, 1024}},
        {SECTION_POLL, "not-found-grace", VALUE_TIMESPAN, offsetof(Config, not_found_grace_usec)},
        {SECTION_POLL, "failure-threshold", VALUE_UNSIGNED, offsetof(Config, failure_threshold), {1, 1000}},
        {SECTION_POLL, "stall-after", VALUE_TIMESPAN, offsetof(Config, stall_after_usec)},

        {SECTION_ORDERS, "order", VALUE_ORDER, offsetof(Config, orders)},
        {SECTION_ORDERS, "orders-dir", VALUE_PATH, offsetof(Config, orders_dir)},

        {SECTION_STATE, "directory", VALUE_PATH, offsetof(Config, state_directory)},

        {SECTION_JOURNAL, "enabled", VALUE_JOURNAL, offsetof(Config, journal)},

        {SECTION_WEBHOOK, "url", VALUE_URL, offsetof(WebhookConfig, url)},
        {SECTION_WEBHOOK, "url-file", VALUE_SECRET_FILE, offsetof(WebhookMeta, url_file)},
        {SECTION_WEBHOOK, "secret-file", VALUE_SECRET_FILE, offsetof(WebhookMeta, secret_file)},
        {SECTION_WEBHOOK, "events", VALUE_EVENTS, offsetof(WebhookConfig, events)},
        {SECTION_WEBHOOK, "format", VALUE_WEBHOOK_FORMAT, offsetof(WebhookConfig, format)},
        {SECTION_WEBHOOK, "header", VALUE_HEADER, offsetof(WebhookConfig, headers)},
        {SECTION_WEBHOOK, "timeout", VALUE_TIMESPAN, offsetof(WebhookConfig, timeout_usec), {1}},
        {SECTION_WEBHOOK, "retry-for", VALUE_TIMESPAN, offsetof(WebhookConfig, retry_for_usec)},
        {SECTION_WEBHOOK, "once-timeout", VALUE_TIMESPAN, offsetof(WebhookConfig, once_timeout_usec)},
        {SECTION_WEBHOOK, "ca-file", VALUE_PATH, offsetof(WebhookConfig, ca_file)},

        {SECTION_DISCOVERY, "enabled", VALUE_BOOLEAN, offsetof(Config, discovery_enabled)},
        {SECTION_DISCOVERY, "interval", VALUE_TIMESPAN, offsetof(Config, discovery_interval_usec), {1}},
        /* the activity log answers 400 for a startDate more than 90 days back */
        {SECTION_DISCOVERY, "lookback", VALUE_TIMESPAN, offsetof(Config, discovery_lookback_usec),
         {.max_usec = 89 * USEC_PER_DAY}},
        {SECTION_DISCOVERY, "customers", VALUE_CUSTOMERS, offsetof(Config, discovery_customers)},
        {SECTION_DISCOVERY, "forget-after", VALUE_TIMESPAN, offsetof(Config, discovery_forget_after_usec)},
        {SECTION_DISCOVERY, "sweep-interval", VALUE_TIMESPAN, offsetof(Config, discovery_sweep_interval_usec)},

        {SECTION_METRICS, "textfile", VALUE_PATH, offsetof(Config, metrics_textfile)},
};

_Static_assert(ELEMENTSOF(key_table) <= KEYS_MAX, "KEYS_MAX too small");

static bool key_is_repeatable(const KeyDef *k) {
        return k->type >= VALUE_ORDER;
}

typedef struct Assignment {
        const KeyDef *key;
        size_t webhook;
        unsigned line;
        char *value;
} Assignment;

typedef struct ConfigParser {
        const char *path;
        ConfigFlags flags;
        Config *config;
        MessageList errors;
        bool oom;

        SectionType section;
        size_t webhook; /* index of the current [webhook] section */
        unsigned section_lines[_SECTION_MAX];
        unsigned seen[KEYS_MAX];
        bool invalid[KEYS_MAX];

        Assignment *assignments;
        size_t n_assignments, allocated_assignments;

        WebhookMeta *meta; /* parallel to config->webhooks */
        size_t allocated_webhooks, allocated_meta;

        SecretFiles secret_files;
        OrderList orders;
} ConfigParser;

/* ---- small helpers ---- */

static bool webhook_name_is_valid(const char *s) {
        size_t l = strlen(s);
        return l >= 1 && l <= WEBHOOK_NAME_MAX && ascii_alnum_or_in(s, l, "_-");
}

/* ---- the configuration object ---- */

static void webhook_config_done(WebhookConfig *w) {
        free(w->name);
        erase_and_free_string(w->url);
        free(w->url_origin);
        erase_and_free(w->secret, w->secret_size);
        free(w->secret_origin);
        strv_free(w->events);
        strv_free(w->headers);
        free(w->ca_file);
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->endpoint);
        free(c->api_version);
        free(c->tenant_id);
        free(c->client_id);
        erase_and_free_string(c->client_secret);
        free(c->client_secret_origin);
        erase_and_free_string(c->refresh_token);
        free(c->refresh_token_origin);
        free(c->token_file);
        free(c->token_endpoint);
        free(c->resource);
        free(c->ca_file);
        free(c->locale);
        strv_free(c->terminal_statuses);
        order_refs_free(c->orders, c->n_orders);
        free(c->orders_dir);
        free(c->state_directory);
        for (size_t i = 0; i < c->n_webhooks; i++)
                webhook_config_done(c->webhooks + i);
        free(c->webhooks);
        strv_free(c->discovery_customers);
        free(c->metrics_textfile);
        strv_free(c->warnings);
        free(c);
        return NULL;
}

static char **default_terminal_statuses(void) {
        char **l = calloc(3, sizeof(char *));
        if (!l)
                return NULL;
        l[0] = strdup("fulfilled");
        l[1] = strdup("unfulfilled");
        if (!l[0] || !l[1])
                return strv_free(l);
        return l;
}

static Config *config_new(const char *path) {
        Config *c = calloc(1, sizeof(Config));
        if (!c)
                return NULL;
        *c = (Config){
                .path = strdup(path),
                .endpoint = strdup(DEFAULT_ENDPOINT),
                .api_version = strdup("1"),
                .auth = AUTH_REFRESH_TOKEN,
                .token_endpoint = strdup(DEFAULT_TOKEN_ENDPOINT),
                .resource = strdup(DEFAULT_ENDPOINT),
                .timeout_usec = 30 * USEC_PER_SEC,
                .locale = strdup("en-US"),
                .interval_usec = 2 * USEC_PER_MINUTE,
                .settled_interval_usec = 6 * USEC_PER_HOUR,
                .terminal_statuses = default_terminal_statuses(),
                .max_requests_per_minute = 300,
                .concurrency = 8,
                .not_found_grace_usec = 10 * USEC_PER_MINUTE,
                .failure_threshold = 3,
                .stall_after_usec = USEC_PER_DAY,
                .journal = JOURNAL_AUTO,
                .discovery_interval_usec = USEC_PER_MINUTE,
                .discovery_lookback_usec = 7 * USEC_PER_DAY,
                .discovery_forget_after_usec = 30 * USEC_PER_DAY,
                .orders_dir = strdup(DEFAULT_ORDERS_DIR),
                .warnings = strv_new_empty(),
        };
        if (!c->orders_dir || !c->path || !c->endpoint || !c->api_version || !c->token_endpoint || !c->resource ||
            !c->locale || !c->terminal_statuses || !c->warnings)
                return config_free(c);
        return c;
}

/* ---- parsing ---- */

static void parser_done(ConfigParser *p) {
        messages_done(&p->errors);
        for (size_t i = 0; i < p->n_assignments; i++)
                free(p->assignments[i].value);
        free(p->assignments);
        if (p->config)
                for (size_t i = 0; i < p->config->n_webhooks; i++) {
                        free(p->meta[i].label);
                        free(p->meta[i].secret_file.value);
                        free(p->meta[i].url_file.value);
                }
        free(p->meta);
        free(p->secret_files.client_secret.value);
        free(p->secret_files.refresh_token.value);
        order_list_done(&p->orders);
}

_printf_(3, 4) static void parser_error(ConfigParser *p, unsigned line, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        messages_addv(&p->errors, line, fmt, ap);
        va_end(ap);
}

static int parser_warning(ConfigParser *p, char *text) {
        int r = strv_consume(&p->config->warnings, text);
        if (r < 0)
                p->oom = true;
        return r;
}

static const char *section_label(ConfigParser *p, SectionType s, size_t webhook) {
        if (s == SECTION_WEBHOOK)
                return p->meta[webhook].label;
        return section_names[s];
}

static const KeyDef *key_lookup(SectionType s, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(key_table); i++)
                if (key_table[i].section == s && streq(key_table[i].name, name))
                        return key_table + i;
        return NULL;
}

static size_t key_index(SectionType s, const char *name) {
        const KeyDef *k = key_lookup(s, name);
        return k ? (size_t)(k - key_table) : 0;
}

static void parse_webhook_header(ConfigParser *p, unsigned line, const char *args) {
        char buf[ESCAPE_BUF];
        Config *c = p->config;
        bool plain = !*args;
        const char *name = plain ? "default" : args;

        if (!webhook_name_is_valid(name)) {
                parser_error(p, line,
                             "%s:%u: [webhook %s]: not a valid webhook name (1 to 64 characters of A-Z a-z "
                             "0-9 _ -)",
                             p->path, line, escape_message(buf, name, false));
                return;
        }
        for (size_t i = 0; i < c->n_webhooks; i++)
                if (streq(c->webhooks[i].name, name)) {
                        parser_error(p, line, "%s:%u: [%s%s%s]: duplicate section (first at %s:%u)",
                                     p->path, line, "webhook", plain ? "" : " ", plain ? "" : name,
                                     p->path, p->meta[i].section_line);
                        return;
                }

        if (!GREEDY_REALLOC(c->webhooks, p->allocated_webhooks, c->n_webhooks + 1) ||
            !GREEDY_REALLOC(p->meta, p->allocated_meta, c->n_webhooks + 1)) {
                p->oom = true;
                return;
        }
        WebhookConfig *w = c->webhooks + c->n_webhooks;
        WebhookMeta *m = p->meta + c->n_webhooks;
        *w = (WebhookConfig){
                .name = strdup(name),
                .timeout_usec = 15 * USEC_PER_SEC,
                .retry_for_usec = 3 * USEC_PER_DAY,
                .once_timeout_usec = 30 * USEC_PER_SEC,
                .format = WEBHOOK_FORMAT_CLOUDEVENTS,
        };
        *m = (WebhookMeta){
                .label = plain ? strdup("webhook") : strdup_printf("webhook %s", name),
                .plain = plain,
                .section_line = line,
        };
        c->n_webhooks++;
        if (!w->name || !m->label) {
                p->oom = true;
                return;
        }
        p->section = SECTION_WEBHOOK;
        p->webhook = c->n_webhooks - 1;
}

static int on_section(void *userdata, unsigned line, const char *name) {
        ConfigParser *p = userdata;
        char buf[ESCAPE_BUF];

        p->section = SECTION_IGNORE;
        if (strncmp(name, "webhook", 7) == 0 && (name[7] == 0 || isspace((unsigned char) name[7]))) {
                _cleanup_free_ char *args = strdup(name + 7);
                if (!args)
                        p->oom = true;
                else
                        parse_webhook_header(p, line, strip(args));
                return 0;
        }
        for (SectionType s = 0; s < _SECTION_MAX; s++)
                if (s != SECTION_WEBHOOK && streq(name, section_names[s])) {
                        p->section = s;
                        if (p->section_lines[s] == 0)
                                p->section_lines[s] = line;
                        return 0;
                }
        parser_error(p, line, "%s:%u: [%s]: unknown section", p->path, line, escape_message(buf, name, false));
        return 0;
}

static int on_syntax_error(void *userdata, unsigned line, ConfSyntaxError error) {
        ConfigParser *p = userdata;

        if (error == CONF_SECTION_UNCLOSED || error == CONF_SECTION_TRAILING_TEXT)
                p->section = SECTION_IGNORE; /* its keys would only add errors */
        /* a Teams Workflows URL is 220 to 300 characters */
        bool url_hint = error == CONF_LINE_TOO_LONG && p->section == SECTION_WEBHOOK;
        parser_error(p, line, "%s:%u: %s%s", p->path, line, conf_syntax_error_to_string(error),
                     url_hint ? " (a webhook's URL: url-file = PATH)" : "");
        return 0;
}

static int on_assignment(void *userdata, unsigned line, const char *name, const char *value) {
        ConfigParser *p = userdata;
        char buf[ESCAPE_BUF];

        if (p->section == SECTION_IGNORE)
                return 0;
        if (p->section == SECTION_NONE) {
                parser_error(p, line, "%s:%u: %s: key outside of any section", p->path, line,
                             escape_message(buf, name, false));
                return 0;
        }
        const char *label = section_label(p, p->section, p->webhook);
        if (!*name) {
                parser_error(p, line, "%s:%u: [%s]: missing key name before \"=\"", p->path, line, label);
                return 0;
        }
        const KeyDef *k = key_lookup(p->section, name);
        if (!k) {
                parser_error(p, line, "%s:%u: [%s] %s: unknown key", p->path, line, label,
                             escape_message(buf, name, false));
                return 0;
        }
        if (!key_is_repeatable(k)) {
                unsigned *seen = p->section == SECTION_WEBHOOK ? p->meta[p->webhook].seen : p->seen;
                size_t i = (size_t) (k - key_table);
                if (seen[i] != 0) {
                        parser_error(p, line, "%s:%u: [%s] %s is set twice (first at %s:%u)", p->path, line,
                                     label, k->name, p->path, seen[i]);
                        return 0;
                }
                seen[i] = line;
        }
        if (!GREEDY_REALLOC(p->assignments, p->allocated_assignments, p->n_assignments + 1)) {
                p->oom = true;
                return 0;
        }
        Assignment *a = p->assignments + p->n_assignments;
        *a = (Assignment) { .key = k, .webhook = p->webhook, .line = line, .value = strdup(value) };
        if (!a->value) {
                p->oom = true;
                return 0;
        }
        p->n_assignments++;
        return 0;
}

/* "provwatch.conf:12: [poll] interval: " + why; the key counts as invalid from then on. */
static void key_error(ConfigParser *p, const Assignment *a, const char *why) {
        parser_error(p, a->line, "%s:%u: [%s] %s: %s", p->path, a->line,
                     section_label(p, a->key->section, a->webhook), a->key->name, why);
        bool *invalid = a->key->section == SECTION_WEBHOOK ? p->meta[a->webhook].invalid : p->invalid;
        invalid[a->key - key_table] = true;
}

static void apply_assignment(ConfigParser *p, const Assignment *a, const char *v) {
        const KeyDef *k = a->key;
        bool webhook = k->section == SECTION_WEBHOOK;
        _cleanup_free_ char *error = NULL;
        void *base;
        int r;

        if (k->type == VALUE_SECRET_FILE)
                base = webhook ? (void *) (p->meta + a->webhook) : (void *) &p->secret_files;
        else
                base = webhook ? (void *) (p->config->webhooks + a->webhook) : (void *) p->config;
        void *field = (char *) base + k->offset;

        /* An empty value means the default; for a list, it empties what came before. */
        if (!*v) {
                switch (k->type) {
                case VALUE_ORDER:
                        order_list_done(&p->orders);
                        break;
                case VALUE_EVENTS:
                case VALUE_HEADER:
                case VALUE_CUSTOMERS:
                        *(char ***) field = strv_free(*(char ***) field);
                        break;
                case VALUE_PATH:
                        /* "orders-dir =" turns the directory off; its default is a real path */
                        if (field == (void *) &p->config->orders_dir)
                                *(char **) field = mfree(*(char **) field);
                        break;
                default:
                        break;
                }
                return;
        }

        if (k->type == VALUE_ORDER) {
                char why[ORDER_WHY_MAX];
                r = order_list_add_line(&p->orders, v, p->path, a->line, why, sizeof why);
                if (r == -EINVAL)
                        key_error(p, a, why);
        } else if (k->type == VALUE_SECRET_FILE) {
                Setting *s = field;
                r = value_set(k->type, &k->range, &s->value, v, &error);
                if (r >= 0)
                        s->line = a->line;
        } else
                r = value_set(k->type, &k->range, field, v, &error);
        if (r == -ENOMEM)
                p->oom = true;
        else if (error)
                key_error(p, a, error);
}

static void apply_all(ConfigParser *p) {
        const char *tenant = NULL;
        size_t tenant_key = key_index(SECTION_PARTNER_CENTER, "tenant-id");

        /* {tenant-id} is replaced in every value, wherever tenant-id is set. */
        for (size_t i = 0; i < p->n_assignments; i++) {
                const Assignment *a = p->assignments + i;
                if ((size_t)(a->key - key_table) == tenant_key && tenant_id_is_valid(a->value))
                        tenant = a->value;
        }

        for (size_t i = 0; i < p->n_assignments; i++) {
                const Assignment *a = p->assignments + i;
                _cleanup_free_ char *replaced = NULL;
                const char *v = a->value;

                if (tenant && (size_t)(a->key - key_table) != tenant_key && strstr(v, TENANT_PLACEHOLDER)) {
                        replaced = replace_all(v, TENANT_PLACEHOLDER, tenant);
                        if (!replaced) {
                                p->oom = true;
                                continue;
                        }
                        v = replaced;
                }
                apply_assignment(p, a, v);
        }

        if (tenant && strstr(p->config->token_endpoint, TENANT_PLACEHOLDER)) {
                char *e = replace_all(p->config->token_endpoint, TENANT_PLACEHOLDER, tenant);
                if (!e)
                        p->oom = true;
                else {
                        free(p->config->token_endpoint);
                        p->config->token_endpoint = e;
                }
        }
}

_printf_(3, 4) static void section_error(ConfigParser *p, size_t webhook_or_section, const char *fmt, ...) {
        _cleanup_free_ char *tail = NULL;
        va_list ap;

        va_start(ap, fmt);
        int r = vasprintf(&tail, fmt, ap);
        va_end(ap);
        if (r < 0) {
                tail = NULL;
                p->oom = true;
                return;
        }
        /* webhook_or_section: a SectionType, or _SECTION_MAX + webhook index */
        const char *label;
        unsigned line;
        if (webhook_or_section >= _SECTION_MAX) {
                label = p->meta[webhook_or_section - _SECTION_MAX].label;
                line = p->meta[webhook_or_section - _SECTION_MAX].section_line;
        } else {
                label = section_names[webhook_or_section];
                line = p->section_lines[webhook_or_section];
        }
        if (line > 0)
                parser_error(p, line, "%s:%u: [%s]: %s", p->path, line, label, tail);
        else
                parser_error(p, MESSAGE_NO_LINE, "%s: [%s]: %s", p->path, label, tail);
}

/* Returns 1 when loaded, 0 when neither the credential nor the file is there, -EINVAL when a
 * problem was reported, -ENOMEM. ret_from_credential may be NULL. */
static int load_secret(ConfigParser *p, const char *credential, const Setting *file, const char *label,
                       const char *key, SecretKind kind, char **ret, size_t *ret_size, char **ret_origin,
                       bool *ret_from_credential) {
        _cleanup_free_ char *error = NULL;
        Secret secret = {};

        int r = secret_load(credential, file->value, kind, &p->config->warnings, &secret, &error);
        if (r == -EINVAL) {
                if (secret.from_credential)
                        parser_error(p, MESSAGE_NO_LINE, "%s: credential %s: %s", p->path, credential, error);
                else
                        parser_error(p, file->line, "%s:%u: [%s] %s: %s", p->path, file->line, label, key,
                                     error);
        }
        if (r <= 0)
                return r;
        *ret = secret.data;
        if (ret_size)
                *ret_size = secret.size;
        *ret_origin = secret.origin;
        if (ret_from_credential)
                *ret_from_credential = secret.from_credential;
        return 1;
}

static int check_readable(ConfigParser *p, const char *path, size_t key, size_t webhook) {
        char buf[ESCAPE_BUF];
        const KeyDef *k = key_table + key;
        unsigned line = k->section == SECTION_WEBHOOK ? p->meta[webhook].seen[key] : p->seen[key];

        if (!path || access(path, R_OK) >= 0)
                return 0;
        parser_error(p, line, "%s:%u: [%s] %s: cannot read %s: %s", p->path, line,
                     section_label(p, k->section, webhook), k->name, escape_message(buf, path, true),
                     strerror(errno));
        return -EINVAL;
}

const char *auth_mode_to_string(AuthMode m) {
        switch (m) {
        case AUTH_REFRESH_TOKEN:
                return "refresh-token";
        case AUTH_CLIENT_CREDENTIALS:
                return "client-credentials";
        case AUTH_TOKEN_FILE:
                return "token-file";
        }
        return "?";
}

static int warn_ignored(ConfigParser *p, unsigned line, const char *key, AuthMode auth) {
        if (line == 0)
                return 0;
        return parser_warning(p, strdup_printf("%s:%u: [partner-center] %s is ignored with auth = %s",
                                               p->path, line, key, auth_mode_to_string(auth)));
}

static int check_partner_center(ConfigParser *p) {
        Config *c = p->config;
        const char *mode = auth_mode_to_string(c->auth);
        int r;

        /* what is required depends on the mode: better say nothing than guess */
        if (p->invalid[key_index(SECTION_PARTNER_CENTER, "auth")])
                return 0;

        if (c->auth == AUTH_TOKEN_FILE) {
                if (!c->token_file && !p->invalid[key_index(SECTION_PARTNER_CENTER, "token-file")])
                        section_error(p, SECTION_PARTNER_CENTER,
                                      "token-file is required with auth = token-file");
                if (warn_ignored(p, p->secret_files.client_secret.line, "client-secret-file", c->auth) < 0 ||
                    warn_ignored(p, p->secret_files.refresh_token.line, "refresh-token-file", c->auth) < 0)
                        return -ENOMEM;
                return 0;
        }

        if (!c->tenant_id && !p->invalid[key_index(SECTION_PARTNER_CENTER, "tenant-id")])
                section_error(p, SECTION_PARTNER_CENTER, "tenant-id is required unless auth = token-file");
        if (!c->client_id && !p->invalid[key_index(SECTION_PARTNER_CENTER, "client-id")])
                section_error(p, SECTION_PARTNER_CENTER, "client-id is required unless auth = token-file");
        if (warn_ignored(p, p->seen[key_index(SECTION_PARTNER_CENTER, "token-file")], "token-file",
                         c->auth) < 0)
                return -ENOMEM;
        if (p->flags & CONFIG_SKIP_SECRETS)
                return 0;

        r = load_secret(p, "client-secret", &p->secret_files.client_secret, "partner-center",
                        "client-secret-file", SECRET_TEXT, &c->client_secret, NULL,
                        &c->client_secret_origin, NULL);
        if (r == -ENOMEM)
                return r;
        if (r == 0 && !p->invalid[key_index(SECTION_PARTNER_CENTER, "client-secret-file")])
                section_error(p, SECTION_PARTNER_CENTER,
                              "client-secret-file (or the credential \"client-secret\") is required with "
                              "auth = %s",
                              mode);

        if (c->auth == AUTH_REFRESH_TOKEN) {
                r = load_secret(p, "refresh-token", &p->secret_files.refresh_token, "partner-center",
                                "refresh-token-file", SECRET_TEXT, &c->refresh_token, NULL,
                                &c->refresh_token_origin, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r == 0 && !p->invalid[key_index(SECTION_PARTNER_CENTER, "refresh-token-file")])
                        section_error(
                                p, SECTION_PARTNER_CENTER,
                                "refresh-token-file (or the credential \"refresh-token\") is required with "
                                "auth = %s",
                                mode);
        } else if (warn_ignored(p, p->secret_files.refresh_token.line, "refresh-token-file", c->auth) < 0)
                return -ENOMEM;

        return 0;
}

/* A webhook's URL comes from exactly one of: the credential "webhook-url" ("webhook-NAME-url"), the
 * first line of url-file, url. Long URLs do not fit on a configuration line, and those of Teams and
 * Slack hold their credential: the first two are read like secrets. */
static int load_webhook_url(ConfigParser *p, size_t i) {
        WebhookConfig *w = p->config->webhooks + i;
        WebhookMeta *m = p->meta + i;
        size_t url_key = key_index(SECTION_WEBHOOK, "url"), file_key = key_index(SECTION_WEBHOOK, "url-file");
        bool url_given = w->url || m->invalid[url_key], file_given = m->url_file.value || m->invalid[file_key];
        char buf[ESCAPE_BUF];
        int r;

        if (url_given && file_given) {
                parser_error(p, m->seen[file_key],
                             "%s:%u: [%s] url-file: the URL is also given by url (%s:%u); give it in one place only",
                             p->path, m->seen[file_key], m->label, p->path, m->seen[url_key]);
                return 0;
        }
        if (p->flags & CONFIG_SKIP_SECRETS)
                return 0; /* it may be a credential, which only the service can read */

        _cleanup_free_ char *credential =
                m->plain ? strdup("webhook-url") : strdup_printf("webhook-%s-url", w->name);
        if (!credential)
                return -ENOMEM;
        _cleanup_free_ char *origin = NULL;
        char *url = NULL;
        bool from_credential = false;
        r = load_secret(p, credential, &m->url_file, m->label, "url-file", SECRET_FIRST_LINE, &url, NULL, &origin,
                        &from_credential);
        if (r == 0 && !url_given && !file_given)
                section_error(p, _SECTION_MAX + i, "url or url-file (or the credential \"%s\") is required",
                              credential);
        if (r <= 0)
                return r == -ENOMEM ? r : 0;

        if (from_credential && (url_given || file_given)) {
                size_t key = url_given ? url_key : file_key;
                parser_error(p, m->seen[key],
                             "%s:%u: [%s] %s: the URL is also given by the credential \"%s\"; give it in one place "
                             "only",
                             p->path, m->seen[key], m->label, key_table[key].name, credential);
        } else if (!url_is_valid(url, false)) {
                /* never quoted: it may hold a credential */
                if (from_credential)
                        parser_error(p, MESSAGE_NO_LINE,
                                     "%s: credential %s: not an http:// or https:// URL with a host", p->path,
                                     credential);
                else
                        parser_error(p, m->url_file.line,
                                     "%s:%u: [%s] url-file: %s does not hold an http:// or https:// URL with a host",
                                     p->path, m->url_file.line, m->label,
                                     escape_message(buf, m->url_file.value, true));
        } else {
                w->url = url;
                w->url_origin = TAKE_PTR(origin);
                return 0;
        }
        erase_and_free_string(url);
        return 0;
}

static int check_webhooks(ConfigParser *p) {
        Config *c = p->config;

        for (size_t i = 0; i < c->n_webhooks; i++) {
                WebhookConfig *w = c->webhooks + i;
                WebhookMeta *m = p->meta + i;

                int r = load_webhook_url(p, i);
                if (r < 0)
                        return r;
                if (!w->events || !w->events[0]) {
                        w->events = strv_free(w->events);
                        if (strv_consume(&w->events, strdup("*")) < 0)
                                return -ENOMEM;
                }
                if (!w->headers) {
                        w->headers = strv_new_empty();
                        if (!w->headers)
                                return -ENOMEM;
                }
                (void)check_readable(p, w->ca_file, key_index(SECTION_WEBHOOK, "ca-file"), i);

                if (p->flags & CONFIG_SKIP_SECRETS)
                        continue;
                _cleanup_free_ char *credential =
                        m->plain ? strdup("webhook-secret") : strdup_printf("webhook-%s-secret", w->name);
                if (!credential)
                        return -ENOMEM;
                r = load_secret(p, credential, &m->secret_file, m->label, "secret-file", SECRET_WEBHOOK,
                                    &w->secret, &w->secret_size, &w->secret_origin, NULL);
                if (r == -ENOMEM)
                        return r;
        }
        return 0;
}

static int resolve_state_directory(Config *c) {
        if (c->state_directory)
                return 0;
        const char *e = getenv("STATE_DIRECTORY");
        if (!isempty(e) && *e != ':')
                c->state_directory = strndup(e, strcspn(e, ":"));
        else
                c->state_directory = strdup(DEFAULT_STATE_DIRECTORY);
        return c->state_directory ? 0 : -ENOMEM;
}

int config_load_full(const char *path, ConfigFlags flags, FILE *err, Config **ret) {
        _cleanup_free_ char *data = NULL;
        Config *c = NULL;
        ConfigParser p = {};
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = read_full_file(path, CONFIG_FILE_MAX, &data, &size);
        if (r < 0) {
                if (err)
                        fprintf(err, "%s: %s\n", path,
                                r == -EFBIG ? "file is larger than 1 MiB" : strerror(-r));
                return r;
        }

        c = config_new(path);
        if (!c)
                return -ENOMEM;
        p = (ConfigParser){
                .path = path,
                .flags = flags,
                .config = c,
                .section = SECTION_NONE,
        };

        static const ConfParserOps ops = {
                .section = on_section,
                .assignment = on_assignment,
                .syntax_error = on_syntax_error,
        };
        (void) conf_parse(data, size, &ops, &p); /* the callbacks always go on */

        apply_all(&p);

        r = check_partner_center(&p);
        if (r < 0)
                goto finish;
        (void)check_readable(&p, c->ca_file, key_index(SECTION_PARTNER_CENTER, "ca-file"), 0);
        r = check_webhooks(&p);
        if (r < 0)
                goto finish;
        r = resolve_state_directory(c);
        if (r < 0)
                goto finish;

        if (c->orders_dir) {
                r = order_list_read_dir(&p.orders, c->orders_dir, &p.errors);
                if (r == -ENOMEM)
                        goto finish;
        }
        r = order_list_dedup(&p.orders, &c->warnings);
        if (r < 0)
                goto finish;
        order_list_take(&p.orders, &c->orders, &c->n_orders);

        r = 0;
finish:
        if (r == 0 && (p.oom || p.errors.oom))
                r = -ENOMEM;
        if (r == 0 && p.errors.n > 0)
                r = -EINVAL;
        messages_print(&p.errors, err);
        parser_done(&p);
        if (r < 0) {
                config_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int config_load(const char *path, FILE *err, Config **ret) {
        return config_load_full(path, 0, err, ret);
}
