/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "http-syntax.h"
#include "secrets.h"
#include "webhook.h"

static char tmpdir[PATH_MAX];
static char fixtures[PATH_MAX];

#define MINUTE (60 * USEC_PER_SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

/* The smallest valid configuration: no secrets needed. */
#define TOKEN_FILE_AUTH "[partner-center]\nauth = token-file\ntoken-file = /run/provwatch/token\n"

static void write_file(const char *name, const char *content, mode_t mode) {
        char *path = strdup_printf("%s/%s", tmpdir, name);
        assert_non_null(path);
        (void)unlink(path);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        free(path);
        assert_true(fd >= 0);
        size_t len = strlen(content);
        assert_int_equal(write(fd, content, len), (ssize_t)len);
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(close(fd), 0);
}

/* "file:line" of an order (the last call's until the next) */
static const char *where(const OrderRef *o) {
        static char buf[PATH_MAX + 16];
        snprintf(buf, sizeof buf, "%s:%u", ORDER_REF_WHERE(o));
        return buf;
}

static char *tmp_path(const char *name) {
        char *p = strdup_printf("%s/%s", tmpdir, name);
        assert_non_null(p);
        return p;
}

/* Writes content as provwatch.conf in tmpdir and loads it by the relative name "provwatch.conf" (so
 * messages read as in the spec). Returns config_load()'s result; *errors gets what it printed. */
static int load(const char *content, Config **ret, char **errors) {
        char *buf = NULL;
        size_t size = 0;
        write_file("provwatch.conf", content, 0644);
        FILE *f = open_memstream(&buf, &size);
        assert_non_null(f);
        *ret = NULL;
        int r = config_load("provwatch.conf", f, ret);
        fclose(f);
        if (errors)
                *errors = buf;
        else
                free(buf);
        if (r < 0)
                assert_null(*ret);
        return r;
}

static Config *load_ok(const char *content) {
        Config *c = NULL;
        char *errors = NULL;
        int r = load(content, &c, &errors);
        if (r < 0)
                fprintf(stderr, "unexpected errors:\n%s", errors);
        assert_int_equal(r, 0);
        assert_string_equal(errors, "");
        free(errors);
        return c;
}

/* Loads content, expects failure, and returns the messages. */
static char *load_fail(const char *content) {
        Config *c = NULL;
        char *errors = NULL;
        int r = load(content, &c, &errors);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        assert_non_null(errors);
        return errors;
}

static size_t count_lines(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                if (*s == '\n')
                        n++;
        return n;
}

static void assert_contains(const char *haystack, const char *needle) {
        if (!strstr(haystack, needle))
                fail_msg("\"%s\" not found in:\n%s", needle, haystack);
}

static void assert_strv_equal(char **l, const char *const *expected) {
        size_t i;
        for (i = 0; expected[i]; i++) {
                assert_non_null(l[i]);
                assert_string_equal(l[i], expected[i]);
        }
        assert_null(l[i]);
}

static int setup(void **state) {
        unsetenv("CREDENTIALS_DIRECTORY");
        unsetenv("STATE_DIRECTORY");
        return 0;
}

/* ---- loading ---- */

static void test_defaults(void **state) {
        Config *c = load_ok(TOKEN_FILE_AUTH);

        assert_string_equal(c->path, "provwatch.conf");
        assert_string_equal(c->endpoint, "https://api.partnercenter.microsoft.com");
        assert_string_equal(c->api_version, "1");
        assert_int_equal(c->auth, AUTH_TOKEN_FILE);
        assert_null(c->tenant_id);
        assert_null(c->client_id);
        assert_null(c->client_secret);
        assert_null(c->client_secret_origin);
        assert_null(c->refresh_token);
        assert_null(c->refresh_token_origin);
        assert_string_equal(c->token_file, "/run/provwatch/token");
        assert_string_equal(c->token_endpoint, "https://login.microsoftonline.com/{tenant-id}/oauth2/token");
        assert_string_equal(c->resource, "https://api.partnercenter.microsoft.com");
        assert_null(c->ca_file);
        assert_int_equal(c->timeout_usec, 30 * USEC_PER_SEC);
        assert_string_equal(c->locale, "en-US");

        assert_int_equal(c->interval_usec, 2 * MINUTE);
        assert_int_equal(c->settled_interval_usec, 6 * HOUR);
        assert_strv_equal(c->terminal_statuses, (const char *const[]){"fulfilled", "unfulfilled", NULL});
        assert_int_equal(c->max_requests_per_minute, 300);
        assert_int_equal(c->concurrency, 8);
        assert_int_equal(c->not_found_grace_usec, 10 * MINUTE);
        assert_int_equal(c->failure_threshold, 3);
        assert_int_equal(c->stall_after_usec, DAY);

        assert_string_equal(c->orders_dir, "/etc/provwatch/orders.d");
        assert_string_equal(c->state_directory, "/var/lib/provwatch");
        assert_int_equal(c->journal, JOURNAL_AUTO);
        assert_int_equal(c->n_webhooks, 0);
        assert_false(c->discovery_enabled);
        assert_int_equal(c->discovery_interval_usec, MINUTE);
        assert_int_equal(c->discovery_lookback_usec, 7 * DAY);
        assert_null(c->discovery_customers);
        assert_int_equal(c->discovery_forget_after_usec, 30 * DAY);
        assert_int_equal(c->discovery_sweep_interval_usec, 0);
        assert_null(c->metrics_textfile);
        assert_non_null(c->warnings);
        assert_null(c->warnings[0]);
        config_free(c);

        /* the plain refresh-token setup, with default token endpoint filled in */
        write_file("secret", "s3cret\n", 0600);
        write_file("refresh", "rt-0\n", 0600);
        c = load_ok("[partner-center]\ntenant-id = contoso.onmicrosoft.com\nclient-id = "
                    "11111111-2222-3333-4444-555555555555\n"
                    "client-secret-file = secret\nrefresh-token-file = refresh\n");
        assert_int_equal(c->auth, AUTH_REFRESH_TOKEN);
        assert_string_equal(c->token_endpoint,
                            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/token");
        assert_string_equal(c->client_secret, "s3cret");
        assert_string_equal(c->client_secret_origin, "secret");
        assert_string_equal(c->refresh_token, "rt-0");
        assert_string_equal(c->refresh_token_origin, "refresh");
        config_free(c);
}

static void test_every_key(void **state) {
        write_file("cs", "client-secret-value\r\n", 0600);
        write_file("rt", "refresh-token-value", 0400);
        write_file("whsec", "raw-webhook-secret\n", 0600);
        write_file("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
        mkdir("orders.d", 0755);
        write_file("orders.d/x.list", "cust-3 ord-3\n", 0644);

        Config *c = load_ok("; full configuration\n"
                            "[partner-center]\n"
                            "endpoint = https://pc.example.com:8443/base/ ; trailing slash dropped\n"
                            "api-version = 1.2\n"
                            "auth = refresh-token\n"
                            "tenant-id = 00000000-1111-2222-3333-444444444444\n"
                            "client-id = abcdef01-1111-2222-3333-444444444444\n"
                            "client-secret-file = cs\n"
                            "refresh-token-file = rt\n"
                            "token-endpoint = https://login.example.com/{tenant-id}/token\n"
                            "resource = https://pc.example.com\n"
                            "ca-file = ca.pem\n"
                            "timeout = 45s\n"
                            "locale = de-DE\n"
                            "[poll]\n"
                            "interval = 90s\n"
                            "settled-interval = 0\n"
                            "terminal-statuses = Fulfilled  UNFULFILLED Cancelled\n"
                            "max-requests-per-minute = 0\n"
                            "concurrency = 1024\n"
                            "not-found-grace = 1h30m\n"
                            "failure-threshold = 1000\n"
                            "[orders]\n"
                            "order = cust-1 ord-1\n"
                            "order: cust-2\tord-2\n"
                            "orders-dir = orders.d\n"
                            "[state]\n"
                            "directory = /srv/provwatch\n"
                            "[journal]\n"
                            "enabled = No\n"
                            "[webhook]\n"
                            "url = https://hooks.example.com/in?x=1\n"
                            "secret-file = whsec\n"
                            "events = provwatch.lineitem.* provwatch.order.completed\n"
                            "events = provwatch.order.not_found\n"
                            "header = Authorization: Bearer abc\n"
                            "header = X-Tag:value with spaces\n"
                            "timeout = 5s\n"
                            "retry-for = 1d\n"
                            "once-timeout = 0\n"
                            "ca-file = ca.pem\n"
                            "[webhook ops_2-b]\n"
                            "url = http://[::1]:8080/\n"
                            "format = teams\n"
                            "[metrics]\n"
                            "textfile = /var/lib/node_exporter/provwatch.prom\n"
                            "[poll]\n"
                            "stall-after = 12h\n"
                            "[discovery]\n"
                            "enabled = yes\n"
                            "interval = 30s\n"
                            "lookback = 89d\n"
                            "customers = 0a1b2c3d-1111-2222-3333-444455556666 cust-1\n"
                            "customers = Cust_2\n"
                            "forget-after = 0\n"
                            "sweep-interval = 1h\n");

        assert_string_equal(c->endpoint, "https://pc.example.com:8443/base");
        assert_string_equal(c->api_version, "1.2");
        assert_int_equal(c->auth, AUTH_REFRESH_TOKEN);
        assert_string_equal(c->tenant_id, "00000000-1111-2222-3333-444444444444");
        assert_string_equal(c->client_id, "abcdef01-1111-2222-3333-444444444444");
        assert_string_equal(c->client_secret, "client-secret-value");
        assert_string_equal(c->client_secret_origin, "cs");
        assert_string_equal(c->refresh_token, "refresh-token-value");
        assert_string_equal(c->refresh_token_origin, "rt");
        assert_null(c->token_file);
        assert_string_equal(c->token_endpoint,
                            "https://login.example.com/00000000-1111-2222-3333-444444444444/token");
        assert_string_equal(c->resource, "https://pc.example.com");
        assert_string_equal(c->ca_file, "ca.pem");
        assert_int_equal(c->timeout_usec, 45 * USEC_PER_SEC);
        assert_string_equal(c->locale, "de-DE");

        assert_int_equal(c->interval_usec, 90 * USEC_PER_SEC);
        assert_int_equal(c->settled_interval_usec, 0);
        assert_strv_equal(c->terminal_statuses,
                          (const char *const[]){"fulfilled", "unfulfilled", "cancelled", NULL});
        assert_int_equal(c->max_requests_per_minute, 0);
        assert_int_equal(c->concurrency, 1024);
        assert_int_equal(c->not_found_grace_usec, HOUR + 30 * MINUTE);
        assert_int_equal(c->failure_threshold, 1000);
        assert_int_equal(c->stall_after_usec, 12 * HOUR);

        assert_string_equal(c->orders_dir, "orders.d");
        assert_int_equal(c->n_orders, 3);
        assert_string_equal(c->orders[0].customer_id, "cust-1");
        assert_string_equal(c->orders[0].order_id, "ord-1");
        assert_string_equal(where(&c->orders[0]), "provwatch.conf:24");
        assert_string_equal(c->orders[1].customer_id, "cust-2");
        assert_string_equal(c->orders[1].order_id, "ord-2");
        assert_string_equal(where(&c->orders[1]), "provwatch.conf:25");
        assert_string_equal(c->orders[2].customer_id, "cust-3");
        assert_string_equal(where(&c->orders[2]), "orders.d/x.list:1");

        assert_string_equal(c->state_directory, "/srv/provwatch");
        assert_int_equal(c->journal, JOURNAL_NO);

        assert_int_equal(c->n_webhooks, 2);
        WebhookConfig *w = c->webhooks;
        assert_string_equal(w->name, "default");
        assert_string_equal(w->url, "https://hooks.example.com/in?x=1");
        assert_int_equal(w->secret_size, strlen("raw-webhook-secret"));
        assert_memory_equal(w->secret, "raw-webhook-secret", w->secret_size);
        assert_string_equal(w->secret_origin, "whsec");
        assert_strv_equal(w->events,
                          (const char *const[]){"provwatch.lineitem.*", "provwatch.order.completed",
                                                "provwatch.order.not_found", NULL});
        assert_strv_equal(w->headers, (const char *const[]){"Authorization: Bearer abc",
                                                            "X-Tag: value with spaces", NULL});
        assert_int_equal(w->timeout_usec, 5 * USEC_PER_SEC);
        assert_int_equal(w->retry_for_usec, DAY);
        assert_int_equal(w->once_timeout_usec, 0);
        assert_string_equal(w->ca_file, "ca.pem");
        assert_int_equal(w->format, WEBHOOK_FORMAT_CLOUDEVENTS);

        w = c->webhooks + 1;
        assert_string_equal(w->name, "ops_2-b");
        assert_string_equal(w->url, "http://[::1]:8080/");
        assert_null(w->secret);
        assert_null(w->secret_origin);
        assert_strv_equal(w->events, (const char *const[]){"*", NULL});
        assert_non_null(w->headers);
        assert_null(w->headers[0]);
        assert_int_equal(w->timeout_usec, 15 * USEC_PER_SEC);
        assert_int_equal(w->retry_for_usec, 3 * DAY);
        assert_int_equal(w->once_timeout_usec, 30 * USEC_PER_SEC);
        assert_null(w->ca_file);
        assert_int_equal(w->format, WEBHOOK_FORMAT_TEAMS);

        assert_true(c->discovery_enabled);
        assert_int_equal(c->discovery_interval_usec, 30 * USEC_PER_SEC);
        assert_int_equal(c->discovery_lookback_usec, 89 * DAY);
        assert_strv_equal(c->discovery_customers,
                          (const char *const[]){"0a1b2c3d-1111-2222-3333-444455556666", "cust-1", "Cust_2", NULL});
        assert_int_equal(c->discovery_forget_after_usec, 0);
        assert_int_equal(c->discovery_sweep_interval_usec, HOUR);

        assert_string_equal(c->metrics_textfile, "/var/lib/node_exporter/provwatch.prom");
        assert_null(c->warnings[0]);
        config_free(c);
}

static void test_journal_and_comments(void **state) {
        static const struct {
                const char *value;
                JournalMode mode;
        } table[] = {
                {"auto", JOURNAL_AUTO}, {"AUTO", JOURNAL_AUTO}, {"yes", JOURNAL_YES},
                {"TRUE", JOURNAL_YES},  {"1", JOURNAL_YES},     {"no", JOURNAL_NO},
                {"false", JOURNAL_NO},  {"0", JOURNAL_NO},      {"yes ; inline", JOURNAL_YES},
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char *conf = strdup_printf(TOKEN_FILE_AUTH "# comment\n; comment\n[journal]\nenabled = %s\n",
                                           table[i].value);
                Config *c = load_ok(conf);
                assert_int_equal(c->journal, table[i].mode);
                config_free(c);
                free(conf);
        }

        char *e = load_fail("[partner-center]\nauth = password\n");
        assert_string_equal(
                e, "provwatch.conf:2: [partner-center] auth: \"password\" is not one of refresh-token, "
                   "client-credentials, token-file\n");
        free(e);

        e = load_fail(TOKEN_FILE_AUTH "[journal]\nenabled = maybe\n");
        assert_string_equal(
                e, "provwatch.conf:5: [journal] enabled: \"maybe\" is not auto or a boolean (yes, no, true, "
                   "false, 1, 0)\n");
        free(e);

        /* '#' inside a value is literal; ";" without a space before it too; indented keys are keys */
        Config *c = load_ok("[partner-center]\n  auth = token-file\n\ttoken-file = /run/a#b;c ; comment\n"
                            "   # indented comment\n[metrics]\n textfile = /x#y\n");
        assert_string_equal(c->token_file, "/run/a#b;c");
        assert_string_equal(c->metrics_textfile, "/x#y");
        config_free(c);

        /* CRLF line ends and a byte order mark */
        c = load_ok("\xef\xbb\xbf[partner-center]\r\nauth = token-file\r\ntoken-file = /t\r\n");
        assert_string_equal(c->token_file, "/t");
        config_free(c);
}

static void test_spec_error_message(void **state) {
        char *e = load_fail(TOKEN_FILE_AUTH "\n\n\n\n\n\n\n[poll]\ninterval = 5 parsecs\n");
        assert_string_equal(e, "provwatch.conf:12: [poll] interval: \"5 parsecs\" is not a time span\n");
        free(e);

        /* paths are printed as given */
        char *path = tmp_path("provwatch.conf");
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        Config *c = NULL;
        assert_int_equal(config_load(path, f, &c), -EINVAL);
        fclose(f);
        char *expected = strdup_printf("%s:12: [poll] interval: \"5 parsecs\" is not a time span\n", path);
        assert_string_equal(buf, expected);
        free(expected);
        free(buf);
        free(path);
}

static void test_value_errors(void **state) {
        static const struct {
                const char *conf;
                const char *message;
        } table[] = {
                {"[poll]\ninterval = 0",
                 "provwatch.conf:5: [poll] interval: \"0\" must be greater than zero"},
                {"[poll]\nconcurrency = 0",
                 "provwatch.conf:5: [poll] concurrency: \"0\" is not a number between 1 and 1024"},
                {"[poll]\nconcurrency = 1025",
                 "provwatch.conf:5: [poll] concurrency: \"1025\" is not a number between 1 and 1024"},
                {"[poll]\nmax-requests-per-minute = 100001",
                 "provwatch.conf:5: [poll] max-requests-per-minute: \"100001\" is not a number between 0 "
                 "and 100000"},
                {"[poll]\nfailure-threshold = -1",
                 "provwatch.conf:5: [poll] failure-threshold: \"-1\" is not a number between 1 and 1000"},
                {"[partner-center]\nendpoint = ftp://x",
                 "provwatch.conf:5: [partner-center] endpoint: \"ftp://x\" is not "
                 "an http:// or https:// URL with a host (and without query or fragment)"},
                {"[partner-center]\nendpoint = https://h/?q",
                 "provwatch.conf:5: [partner-center] endpoint: \"https://h/?...\" "
                 "is not an http:// or https:// URL with a host (and without "
                 "query or fragment)"},
                {"[webhook]\nurl = https://user:hunter2@/x",
                 "provwatch.conf:5: [webhook] url: \"https://user:***@/x\" is not an http:// or https:// "
                 "URL with a host"},
                {"[webhook x]\nurl = https://h:99999/",
                 "provwatch.conf:5: [webhook x] url: \"https://h:99999/\" is not "
                 "an http:// or https:// URL with a host"},
                {"[partner-center]\napi-version = v1",
                 "provwatch.conf:5: [partner-center] api-version: \"v1\" is not an "
                 "API version such as 1"},
                {"[partner-center]\nlocale = en_US",
                 "provwatch.conf:5: [partner-center] locale: \"en_US\" is not a "
                 "locale such as en-US"},
                {"[partner-center]\nresource = a b",
                 "provwatch.conf:5: [partner-center] resource: \"a b\" contains "
                 "spaces or control characters"},
                {"[orders]\norder = c1",
                 "provwatch.conf:5: [orders] order: \"c1\" is not \"CUSTOMER_ID ORDER_ID\""},
                {"[orders]\norder = c1 o1 x",
                 "provwatch.conf:5: [orders] order: \"c1 o1 x\" is not \"CUSTOMER_ID ORDER_ID\""},
                {"[orders]\norder = c/1 o1",
                 "provwatch.conf:5: [orders] order: \"c/1\" is not a valid customer ID (1 to "
                 "128 characters of A-Z a-z 0-9 . _ ~ -)"},
                {"[orders]\norder = c1 o\"1",
                 "provwatch.conf:5: [orders] order: \"o\\\"1\" is not a valid order ID (1 to "
                 "128 characters of A-Z a-z 0-9 . _ ~ -)"},
                {"[webhook]\nurl = http://h\nheader = Bearer abc",
                 "provwatch.conf:6: [webhook] header: expected \"NAME: VALUE\""},
                {"[webhook]\nurl = http://h\nheader = X Y: secret-value",
                 "provwatch.conf:6: [webhook] header: \"X Y\" is not a valid header name"},
                {"[webhook]\nurl = http://h\nheader = X-Y:",
                 "provwatch.conf:6: [webhook] header: header \"X-Y\" has an "
                 "empty value"},
                {"[webhook]\nurl = http://h\nheader = X-Y: a\rb",
                 "provwatch.conf:6: [webhook] header: value of header "
                 "\"X-Y\" contains control characters"},
                {"[webhook]\nurl = http://h\nheader = content-type: text/plain",
                 "provwatch.conf:6: [webhook] header: header \"content-type\" is set by provwatch"},
                {"[webhook]\nurl = http://h\ntimeout = 1 fortnight",
                 "provwatch.conf:6: [webhook] timeout: \"1 fortnight\" is not a time span"},
                {"[poll]\nstall-after = a day",
                 "provwatch.conf:5: [poll] stall-after: \"a day\" is not a time span"},
                {"[webhook]\nurl = http://h\nformat = discord",
                 "provwatch.conf:6: [webhook] format: \"discord\" is not one of cloudevents, teams, slack"},
                {"[webhook]\nurl = http://h\nformat = Teams",
                 "provwatch.conf:6: [webhook] format: \"Teams\" is not one of cloudevents, teams, slack"},
                {"[discovery]\nenabled = auto",
                 "provwatch.conf:5: [discovery] enabled: \"auto\" is not a boolean (yes, no, true, false, 1, 0)"},
                {"[discovery]\ninterval = 0",
                 "provwatch.conf:5: [discovery] interval: \"0\" must be greater than zero"},
                {"[discovery]\ninterval = often",
                 "provwatch.conf:5: [discovery] interval: \"often\" is not a time span"},
                {"[discovery]\nlookback = 90d",
                 "provwatch.conf:5: [discovery] lookback: \"90d\" is more than the maximum of 89d"},
                {"[discovery]\nlookback = 89d 1ms",
                 "provwatch.conf:5: [discovery] lookback: \"89d 1ms\" is more than the maximum of 89d"},
                {"[discovery]\nlookback = a week",
                 "provwatch.conf:5: [discovery] lookback: \"a week\" is not a time span"},
                {"[discovery]\ncustomers = c1 c/2 c3",
                 "provwatch.conf:5: [discovery] customers: \"c/2\" is not a valid customer ID (1 to 128 "
                 "characters of A-Z a-z 0-9 . _ ~ -)"},
                {"[discovery]\nforget-after = never",
                 "provwatch.conf:5: [discovery] forget-after: \"never\" is not a time span"},
                {"[discovery]\nsweep-interval = -1h",
                 "provwatch.conf:5: [discovery] sweep-interval: \"-1h\" is not a time span"},
                {"[discovery]\nenable = yes", "provwatch.conf:5: [discovery] enable: unknown key"},
                {"[webhook bad.name]\nurl = http://h",
                 "provwatch.conf:4: [webhook bad.name]: not a valid webhook name (1 to 64 characters of A-Z "
                 "a-z 0-9 _ -)"},
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char *conf = strdup_printf(TOKEN_FILE_AUTH "%s\n", table[i].conf);
                char *expected = strdup_printf("%s\n", table[i].message);
                char *e = load_fail(conf);
                assert_string_equal(e, expected);
                /* header values may be credentials: never echoed */
                assert_null(strstr(e, "secret-value"));
                assert_null(strstr(e, "hunter2"));
                free(e);
                free(expected);
                free(conf);
        }
}

static void test_all_errors_reported(void **state) {
        char *e = load_fail("[partner-center]\n"
                            "auth = token-file\n"
                            "token-file = /t\n"
                            "[poll]\n"
                            "interval = soon\n"
                            "concurrency = lots\n"
                            "intervall = 5m\n"
                            "[orders]\n"
                            "order = x\n"
                            "[nonsense]\n"
                            "whatever = 1\n"
                            "garbage line\n");
        assert_string_equal(
                e, "provwatch.conf:5: [poll] interval: \"soon\" is not a time span\n"
                   "provwatch.conf:6: [poll] concurrency: \"lots\" is not a number between 1 and 1024\n"
                   "provwatch.conf:7: [poll] intervall: unknown key\n"
                   "provwatch.conf:9: [orders] order: \"x\" is not \"CUSTOMER_ID ORDER_ID\"\n"
                   "provwatch.conf:10: [nonsense]: unknown section\n"
                   "provwatch.conf:12: expected \"KEY = VALUE\", a [section] header or a comment\n");
        free(e);
}

static void test_syntax_errors(void **state) {
        char *e = load_fail("interval = 5m\n" TOKEN_FILE_AUTH
                            "[poll\n[poll] trailing\n[POLL]\n[]\n = 5\n[poll]\n= 5\n");
        assert_string_equal(e, "provwatch.conf:1: interval: key outside of any section\n"
                               "provwatch.conf:5: section header without closing \"]\"\n"
                               "provwatch.conf:6: unexpected text after section header\n"
                               "provwatch.conf:7: [POLL]: unknown section\n"
                               "provwatch.conf:8: []: unknown section\n"
                               "provwatch.conf:11: [poll]: missing key name before \"=\"\n");
        free(e);

        /* a NUL byte in a line */
        write_file("provwatch.conf", "", 0644);
        FILE *f = fopen("provwatch.conf", "w");
        assert_non_null(f);
        fputs(TOKEN_FILE_AUTH "[poll]\ninterval", f);
        fputc(0, f);
        fputs(" = 5m\n", f);
        fclose(f);
        char *buf = NULL;
        size_t size;
        f = open_memstream(&buf, &size);
        Config *c = NULL;
        assert_int_equal(config_load("provwatch.conf", f, &c), -EINVAL);
        fclose(f);
        assert_string_equal(buf, "provwatch.conf:5: line contains a NUL byte\n");
        free(buf);
}

static void test_long_line(void **state) {
        char line[512];

        /* 199 characters are fine, in a comment and in a value */
        memset(line, 'x', sizeof line);
        line[0] = '#';
        line[199] = 0;
        char *conf =
                strdup_printf(TOKEN_FILE_AUTH "%s\n[metrics]\ntextfile = /%.*s\n", line, 199 - 12, line + 1);
        Config *c = load_ok(conf);
        assert_int_equal(strlen(c->metrics_textfile), 199 - 11);
        config_free(c);
        free(conf);

        /* the last line, without newline, also at 199 */
        conf = strdup_printf(TOKEN_FILE_AUTH "[metrics]\ntextfile = /%.*s", 199 - 12, line + 1);
        c = load_ok(conf);
        assert_int_equal(strlen(c->metrics_textfile), 199 - 11);
        config_free(c);
        free(conf);

        /* 200 characters are not; the line after it is read normally */
        conf = strdup_printf(TOKEN_FILE_AUTH "[metrics]\ntextfile = /%.*s\n[poll]\ninterval = never\n",
                             200 - 12, line + 1);
        char *e = load_fail(conf);
        assert_string_equal(e, "provwatch.conf:5: line is longer than 199 characters; put long values such "
                               "as tokens in files\n"
                               "provwatch.conf:7: [poll] interval: \"never\" is not a time span\n");
        free(e);
        free(conf);

        /* in a webhook section, most likely its URL: where it goes instead */
        conf = strdup_printf(TOKEN_FILE_AUTH "[webhook]\nurl = https://h/%.*s\n", 200 - 16, line + 1);
        e = load_fail(conf);
        assert_string_equal(e, "provwatch.conf:4: [webhook]: url or url-file (or the credential "
                               "\"webhook-url\") is required\n"
                               "provwatch.conf:5: line is longer than 199 characters; put long values such "
                               "as tokens in files (a webhook's URL: url-file = PATH)\n");
        free(e);
        free(conf);

        /* far longer, with CRLF: one error */
        memset(line, 'y', sizeof line - 1);
        line[sizeof line - 1] = 0;
        conf = strdup_printf(TOKEN_FILE_AUTH "%s\r\n", line);
        e = load_fail(conf);
        assert_string_equal(e, "provwatch.conf:4: line is longer than 199 characters; put long values such "
                               "as tokens in files\n");
        free(e);
        free(conf);
}

static void test_duplicates(void **state) {
        char *e = load_fail(TOKEN_FILE_AUTH
                            "[poll]\ninterval = 5m\ninterval = 6m\n[orders]\n[poll]\ninterval = 7m\n");
        assert_string_equal(e,
                            "provwatch.conf:6: [poll] interval is set twice (first at provwatch.conf:5)\n"
                            "provwatch.conf:9: [poll] interval is set twice (first at provwatch.conf:5)\n");
        free(e);

        /* an empty value counts as set */
        e = load_fail(TOKEN_FILE_AUTH "[state]\ndirectory =\ndirectory = /x\n");
        assert_string_equal(
                e, "provwatch.conf:6: [state] directory is set twice (first at provwatch.conf:5)\n");
        free(e);

        /* repeated sections merge */
        Config *c = load_ok("[partner-center]\nauth = token-file\n[poll]\ninterval = 1m\n"
                            "[partner-center]\ntoken-file = /t\n[poll]\nconcurrency = 2\n");
        assert_string_equal(c->token_file, "/t");
        assert_int_equal(c->interval_usec, MINUTE);
        assert_int_equal(c->concurrency, 2);
        config_free(c);

        /* but webhook sections do not */
        e = load_fail(TOKEN_FILE_AUTH "[webhook]\nurl = http://a\n[webhook default]\nurl = http://b\n"
                                      "[webhook x]\nurl = http://c\n[webhook x]\nurl = http://d\n"
                                      "[webhook y]\nurl = http://e\nurl = http://f\n");
        assert_string_equal(
                e, "provwatch.conf:6: [webhook default]: duplicate section (first at provwatch.conf:4)\n"
                   "provwatch.conf:10: [webhook x]: duplicate section (first at provwatch.conf:8)\n"
                   "provwatch.conf:14: [webhook y] url is set twice (first at provwatch.conf:13)\n");
        free(e);

        /* the same key in two webhooks is fine */
        c = load_ok(TOKEN_FILE_AUTH "[webhook a]\nurl = http://a\n[webhook b]\nurl = http://b\n");
        assert_int_equal(c->n_webhooks, 2);
        config_free(c);
}

static void test_missing_required(void **state) {
        /* refresh-token (the default) needs tenant, client, secret and refresh token */
        char *e = load_fail("# nothing\n\n[partner-center]\nlocale = en-GB\n");
        assert_string_equal(
                e, "provwatch.conf:3: [partner-center]: tenant-id is required unless auth = token-file\n"
                   "provwatch.conf:3: [partner-center]: client-id is required unless auth = token-file\n"
                   "provwatch.conf:3: [partner-center]: client-secret-file (or the credential "
                   "\"client-secret\") "
                   "is required with auth = refresh-token\n"
                   "provwatch.conf:3: [partner-center]: refresh-token-file (or the credential "
                   "\"refresh-token\") "
                   "is required with auth = refresh-token\n");
        free(e);

        /* no section at all: no line */
        e = load_fail("");
        assert_contains(
                e, "provwatch.conf: [partner-center]: tenant-id is required unless auth = token-file\n");
        assert_int_equal(count_lines(e), 4);
        free(e);

        /* client-credentials needs no refresh token */
        e = load_fail("[partner-center]\nauth = client-credentials\ntenant-id = t\nclient-id = c\n");
        assert_string_equal(e, "provwatch.conf:1: [partner-center]: client-secret-file (or the credential "
                               "\"client-secret\") is required with auth = client-credentials\n");
        free(e);

        write_file("cs", "x\n", 0600);
        Config *c = load_ok("[partner-center]\nauth = client-credentials\ntenant-id = t\nclient-id = c\n"
                            "client-secret-file = cs\nrefresh-token-file = /nonexistent\ntoken-file = /t\n");
        assert_string_equal(c->client_secret, "x");
        assert_null(c->refresh_token);
        assert_string_equal(c->warnings[0],
                            "provwatch.conf:7: [partner-center] token-file is ignored with auth = "
                            "client-credentials");
        assert_string_equal(c->warnings[1],
                            "provwatch.conf:6: [partner-center] refresh-token-file is ignored with "
                            "auth = client-credentials");
        assert_null(c->warnings[2]);
        config_free(c);

        /* token-file needs the token file */
        e = load_fail("[partner-center]\nauth = token-file\n");
        assert_string_equal(
                e, "provwatch.conf:1: [partner-center]: token-file is required with auth = token-file\n");
        free(e);

        /* a webhook needs a url */
        e = load_fail(TOKEN_FILE_AUTH "[webhook]\nevents = *\n[webhook two]\nurl =\n");
        assert_string_equal(e, "provwatch.conf:4: [webhook]: url or url-file (or the credential "
                               "\"webhook-url\") is required\n"
                               "provwatch.conf:6: [webhook two]: url or url-file (or the credential "
                               "\"webhook-two-url\") is required\n");
        free(e);
}

static void test_secret_files(void **state) {
        /* a missing file names the key, the path and the reason */
        char *e = load_fail(
                "[partner-center]\ntenant-id = t\nclient-id = c\nclient-secret-file = /nonexistent/cs\n"
                "refresh-token-file = /nonexistent/rt\n");
        assert_string_equal(
                e, "provwatch.conf:4: [partner-center] client-secret-file: cannot read \"/nonexistent/cs\": "
                   "No such file or directory\n"
                   "provwatch.conf:5: [partner-center] refresh-token-file: cannot read \"/nonexistent/rt\": "
                   "No such file or directory\n");
        free(e);

        /* empty, multi-line, directory */
        write_file("empty", "\n", 0600);
        write_file("twolines", "line1\nline2\n", 0600);
        mkdir("adir", 0700);
        e = load_fail("[partner-center]\ntenant-id = t\nclient-id = c\nclient-secret-file = empty\n"
                      "refresh-token-file = twolines\n[webhook]\nurl = http://h\nsecret-file = adir\n");
        assert_string_equal(
                e, "provwatch.conf:4: [partner-center] client-secret-file: \"empty\" is empty\n"
                   "provwatch.conf:5: [partner-center] refresh-token-file: \"twolines\" holds more than "
                   "one line or control characters\n"
                   "provwatch.conf:8: [webhook] secret-file: cannot read \"adir\": not a regular file\n");
        assert_null(strstr(e, "line1"));
        free(e);

        /* too large */
        char *big = malloc(70000);
        memset(big, 'a', 69999);
        big[69999] = 0;
        write_file("big", big, 0600);
        free(big);
        e = load_fail(TOKEN_FILE_AUTH "[webhook]\nurl = http://h\nsecret-file = big\n");
        assert_string_equal(e, "provwatch.conf:6: [webhook] secret-file: cannot read \"big\": file is "
                               "larger than 64 KiB\n");
        free(e);

        /* a bad whsec_ secret; the secret is not printed */
        write_file("badwh", "whsec_!!notbase64!!\n", 0600);
        e = load_fail(TOKEN_FILE_AUTH "[webhook]\nurl = http://h\nsecret-file = badwh\n");
        assert_string_equal(
                e, "provwatch.conf:6: [webhook] secret-file: \"badwh\" starts with \"whsec_\" but is not "
                   "valid base64\n");
        free(e);
}

static void test_world_readable_secret(void **state) {
        write_file("cs-open", "secret-a\n", 0644);
        write_file("rt-group", "secret-b\n", 0640);
        write_file("wh-ok", "secret-c\n", 0600);

        Config *c =
                load_ok("[partner-center]\ntenant-id = t\nclient-id = c\nclient-secret-file = cs-open\n"
                        "refresh-token-file = rt-group\n[webhook]\nurl = https://h\nsecret-file = wh-ok\n");
        assert_string_equal(c->warnings[0],
                            "cs-open is accessible by other users; secrets should be mode 0600");
        assert_string_equal(c->warnings[1],
                            "rt-group is accessible by other users; secrets should be mode 0600");
        assert_null(c->warnings[2]);
        for (size_t i = 0; c->warnings[i]; i++)
                assert_null(strstr(c->warnings[i], "secret-"));
        config_free(c);
}

static void test_credentials_directory(void **state) {
        char *creds = tmp_path("creds");
        char *wh_file = tmp_path("wh-file");
        mkdir(creds, 0700);
        write_file("creds/client-secret", "cred-client-secret\n", 0644); /* exempt from the mode warning */
        write_file("creds/refresh-token", "cred-refresh-token", 0644);
        write_file("creds/webhook-secret", "cred-webhook\n", 0644);
        write_file("creds/webhook-ops-secret", "cred-ops\n", 0600);
        write_file("cs", "file-client-secret\n", 0600);
        write_file("wh-file", "file-webhook\n", 0600);

        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);
        Config *c = load_ok("[partner-center]\ntenant-id = t\nclient-id = c\nclient-secret-file = cs\n"
                            "[webhook]\nurl = https://h\nsecret-file = wh-file\n"
                            "[webhook ops]\nurl = https://o\n"
                            "[webhook other]\nurl = https://p\nsecret-file = wh-file\n");
        assert_string_equal(c->client_secret, "cred-client-secret");
        assert_string_equal(c->client_secret_origin, "credential client-secret");
        assert_string_equal(c->refresh_token, "cred-refresh-token");
        assert_string_equal(c->refresh_token_origin, "credential refresh-token");
        assert_int_equal(c->webhooks[0].secret_size, strlen("cred-webhook"));
        assert_memory_equal(c->webhooks[0].secret, "cred-webhook", c->webhooks[0].secret_size);
        assert_string_equal(c->webhooks[0].secret_origin, "credential webhook-secret");
        assert_memory_equal(c->webhooks[1].secret, "cred-ops", c->webhooks[1].secret_size);
        assert_string_equal(c->webhooks[1].secret_origin, "credential webhook-ops-secret");
        /* no credential "webhook-other-secret": the file */
        assert_memory_equal(c->webhooks[2].secret, "file-webhook", c->webhooks[2].secret_size);
        assert_string_equal(c->webhooks[2].secret_origin, wh_file + strlen(tmpdir) + 1);
        assert_null(c->warnings[0]);
        config_free(c);

        /* an unreadable credential (here: a directory) is an error, not a fall-back */
        unlink("creds/client-secret");
        mkdir("creds/client-secret", 0700);
        char *e = load_fail("[partner-center]\ntenant-id = t\nclient-id = c\nclient-secret-file = cs\n");
        char *expected = strdup_printf(
                "provwatch.conf: credential client-secret: cannot read \"%s/client-secret\": Is a "
                "directory\n",
                creds);
        assert_string_equal(e, expected);
        free(expected);
        free(e);
        rmdir("creds/client-secret");

        unsetenv("CREDENTIALS_DIRECTORY");
        free(creds);
        free(wh_file);
}

/* provwatch status runs outside the unit, where neither the credentials nor (often) the secret
 * files can be read: it loads with CONFIG_SKIP_SECRETS; everything else is still validated. */
static void test_skip_secrets(void **state) {
        static const char conf[] =
                "[partner-center]\ntenant-id = t\nclient-id = c\nclient-secret-file = /nonexistent/cs\n"
                "refresh-token-file = unreadable\n[webhook]\nurl = https://h\nsecret-file = /nonexistent/wh\n"
                "[webhook ops]\nurl = https://o\n[state]\ndirectory = /tmp/provwatch-state\n";
        char *creds = tmp_path("creds-skip");
        Config *c = NULL;
        char *e = NULL;
        FILE *f;

        write_file("unreadable", "secret-rt\n", 0000);
        mkdir(creds, 0700);
        mkdir("creds-skip/client-secret", 0700); /* a credential that cannot be read */
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);

        /* the normal load (run, once, check-config) fails on them */
        e = load_fail(conf);
        assert_contains(e, "credential client-secret: cannot read");
        assert_contains(e, "provwatch.conf:8: [webhook] secret-file: cannot read \"/nonexistent/wh\"");
        free(e);

        size_t size = 0;
        e = NULL;
        f = open_memstream(&e, &size);
        assert_non_null(f);
        assert_int_equal(config_load_full("provwatch.conf", CONFIG_SKIP_SECRETS, f, &c), 0);
        fclose(f);
        assert_string_equal(e, "");
        free(e);
        assert_non_null(c);
        assert_string_equal(c->tenant_id, "t");
        assert_string_equal(c->state_directory, "/tmp/provwatch-state");
        assert_null(c->client_secret);
        assert_null(c->client_secret_origin);
        assert_null(c->refresh_token);
        assert_null(c->refresh_token_origin);
        assert_int_equal(c->n_webhooks, 2);
        assert_string_equal(c->webhooks[0].name, "default");
        assert_string_equal(c->webhooks[1].name, "ops");
        for (size_t i = 0; i < c->n_webhooks; i++) {
                assert_null(c->webhooks[i].secret);
                assert_null(c->webhooks[i].secret_origin);
        }
        assert_null(c->warnings[0]);
        config_free(c);

        unsetenv("CREDENTIALS_DIRECTORY");
        rmdir("creds-skip/client-secret");
        rmdir(creds);
        free(creds);

        /* secrets that are not configured at all are not required either */
        f = open_memstream(&e, &size);
        assert_non_null(f);
        write_file("provwatch.conf", "[partner-center]\ntenant-id = t\nclient-id = c\n", 0644);
        assert_int_equal(config_load_full("provwatch.conf", CONFIG_SKIP_SECRETS, f, &c), 0);
        fclose(f);
        assert_string_equal(e, "");
        free(e);
        config_free(c);

        /* other mistakes are still errors */
        c = NULL;
        e = NULL;
        f = open_memstream(&e, &size);
        assert_non_null(f);
        write_file("provwatch.conf",
                   "[partner-center]\nclient-id = c\nclient-secret-file = /nonexistent/cs\n"
                   "[poll]\ninterval = 5 parsecs\n",
                   0644);
        assert_int_equal(config_load_full("provwatch.conf", CONFIG_SKIP_SECRETS, f, &c), -EINVAL);
        fclose(f);
        assert_null(c);
        assert_string_equal(e, "provwatch.conf:1: [partner-center]: tenant-id is required unless auth = "
                               "token-file\n"
                               "provwatch.conf:5: [poll] interval: \"5 parsecs\" is not a time span\n");
        free(e);
}

/* ---- webhook URLs ---- */

#define TEAMS_SIG "TOPSECRETsig0123456789abcdefghijklmnopqrstu"
/* 253 characters: too long for a configuration line */
#define TEAMS_URL                                                                                            \
        "https://prod-12.westus.logic.azure.com:443/workflows/0123456789abcdef0123456789abcdef/triggers/"  \
        "manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" TEAMS_SIG
#define SLACK_URL "https://hooks.slack.com/services/T00000000/B00000000/TOPSECRETxxxxxxxxxxxxxxx"

static void test_url_mask(void **state) {
        static const struct {
                const char *url, *masked;
        } table[] = {
                {"https://hooks.example.com/provwatch", "https://hooks.example.com/provwatch"},
                {"http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"},
                {"https://h/api/v1/webhooks/events", "https://h/api/v1/webhooks/events"},
                {"https://user:hunter2@h/x", "https://user:***@h/x"},
                {"https://user:@h/x", "https://user:***@h/x"},
                {"https://TOPSECRET123@h/x", "https://...@h/x"},
                {SLACK_URL, "https://hooks.slack.com/services/.../.../..."},
                {TEAMS_URL, "https://prod-12.westus.logic.azure.com:443/workflows/.../triggers/manual/paths/invoke?..."},
                {"https://h/hook?token=abc#frag", "https://h/hook?...#..."},
                {"https://h/hook?", "https://h/hook?"},
                {"https://h/hook#x", "https://h/hook#..."},
                {"https://h/abcdefghijklmnopq", "https://h/..."}, /* long */
                {"https://h/Hook/AbCdEfGh", "https://h/Hook/..."},  /* mixed case */
                {"https://h/a1b2", "https://h/..."},                 /* letters and digits */
                {"https://h//x/", "https://h//x/"},
                {"https://h", "https://h"},
                {"", ""},
                {"not a url", "not a url"},
                {"hooks.slack.com/services/T0AB1/B0CD2/secret123", "hooks.slack.com/services/.../.../..."},
                {"https://[::1]:99/x?y", "https://[::1]:99/x?..."},
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char *m = url_mask(table[i].url);
                assert_non_null(m);
                if (!streq(m, table[i].masked))
                        fail_msg("url_mask(\"%s\") = \"%s\", not \"%s\"", table[i].url, m, table[i].masked);
                free(m);
        }
}

/* A webhook URL from the credential, url-file or url: exactly one of them. */
static void test_webhook_url_sources(void **state) {
        char *creds = tmp_path("creds-url");
        char *e;
        mkdir(creds, 0700);

        /* url-file: its first line, white space around it stripped, the rest ignored */
        write_file("teams.url", "  " TEAMS_URL " \r\nsecond line, ignored\n", 0600);
        write_file("slack.url", SLACK_URL, 0600);
        Config *c = load_ok(TOKEN_FILE_AUTH "[webhook teams]\nurl-file = teams.url\nformat = teams\n"
                                            "[webhook slack]\nurl-file = slack.url\n"
                                            "[webhook plain]\nurl = https://hooks.example.com/x\n");
        assert_string_equal(c->webhooks[0].url, TEAMS_URL);
        assert_string_equal(c->webhooks[0].url_origin, "teams.url");
        assert_string_equal(c->webhooks[1].url, SLACK_URL);
        assert_string_equal(c->webhooks[1].url_origin, "slack.url");
        assert_string_equal(c->webhooks[2].url, "https://hooks.example.com/x");
        assert_null(c->webhooks[2].url_origin);
        assert_null(c->warnings[0]);

        /* check-config's summary shows where it came from, masked */
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        config_print_summary(c, f);
        fclose(f);
        assert_contains(buf, "  url:                 https://prod-12.westus.logic.azure.com:443/workflows/.../"
                             "triggers/manual/paths/invoke?... (from teams.url)\n");
        assert_contains(buf, "  url:                 https://hooks.slack.com/services/.../.../... (from slack.url)\n");
        assert_contains(buf, "  url:                 https://hooks.example.com/x\n");
        assert_null(strstr(buf, "TOPSECRET"));
        free(buf);
        config_free(c);

        /* the credentials "webhook-url" and "webhook-NAME-url" */
        write_file("creds-url/webhook-url", TEAMS_URL "\n", 0644); /* exempt from the mode warning */
        write_file("creds-url/webhook-slack-url", SLACK_URL "\n", 0600);
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", creds, 1), 0);
        c = load_ok(TOKEN_FILE_AUTH "[webhook]\nformat = teams\n[webhook slack]\nformat = slack\n"
                                    "[webhook other]\nurl-file = teams.url\n");
        assert_string_equal(c->webhooks[0].url, TEAMS_URL);
        assert_string_equal(c->webhooks[0].url_origin, "credential webhook-url");
        assert_string_equal(c->webhooks[1].url, SLACK_URL);
        assert_string_equal(c->webhooks[1].url_origin, "credential webhook-slack-url");
        assert_string_equal(c->webhooks[2].url_origin, "teams.url");
        assert_null(c->warnings[0]);
        config_free(c);

        /* more than one source: the credential too, or url and url-file */
        e = load_fail(TOKEN_FILE_AUTH "[webhook]\nurl = https://h/x\n[webhook slack]\nurl-file = slack.url\n"
                                      "[webhook both]\nurl = https://h/x\nurl-file = teams.url\n");
        assert_string_equal(e, "provwatch.conf:5: [webhook] url: the URL is also given by the credential "
                               "\"webhook-url\"; give it in one place only\n"
                               "provwatch.conf:7: [webhook slack] url-file: the URL is also given by the "
                               "credential \"webhook-slack-url\"; give it in one place only\n"
                               "provwatch.conf:10: [webhook both] url-file: the URL is also given by url "
                               "(provwatch.conf:9); give it in one place only\n");
        free(e);

        /* a credential that is no URL (never quoted) */
        write_file("creds-url/webhook-url", "TOPSECRET not a url\n", 0600);
        e = load_fail(TOKEN_FILE_AUTH "[webhook]\n");
        assert_string_equal(e, "provwatch.conf: credential webhook-url: not an http:// or https:// URL with a "
                               "host\n");
        free(e);
        unsetenv("CREDENTIALS_DIRECTORY");

        /* url-file problems name the file, never its content */
        write_file("bad.url", "ftp://TOPSECRET/x\n", 0600);
        write_file("empty.url", "\n\n", 0600);
        write_file("ctl.url", "https://h/\x01TOPSECRET\nhttps://h/\n", 0600);
        e = load_fail(TOKEN_FILE_AUTH "[webhook a]\nurl-file = bad.url\n[webhook b]\nurl-file = empty.url\n"
                                      "[webhook c]\nurl-file = ctl.url\n[webhook d]\nurl-file = /nonexistent/d.url\n"
                                      "[webhook e]\nformat = slack\n");
        assert_string_equal(e, "provwatch.conf:5: [webhook a] url-file: \"bad.url\" does not hold an http:// or "
                               "https:// URL with a host\n"
                               "provwatch.conf:7: [webhook b] url-file: \"empty.url\" is empty\n"
                               "provwatch.conf:9: [webhook c] url-file: \"ctl.url\" holds control characters in "
                               "its first line\n"
                               "provwatch.conf:11: [webhook d] url-file: cannot read \"/nonexistent/d.url\": No "
                               "such file or directory\n"
                               "provwatch.conf:12: [webhook e]: url or url-file (or the credential "
                               "\"webhook-e-url\") is required\n");
        assert_null(strstr(e, "TOPSECRET"));
        free(e);

        /* readable by others: used, with the warning of secret files */
        write_file("open.url", SLACK_URL "\n", 0644);
        c = load_ok(TOKEN_FILE_AUTH "[webhook]\nurl-file = open.url\n");
        assert_string_equal(c->warnings[0], "open.url is accessible by other users; secrets should be mode 0600");
        assert_null(c->warnings[1]);
        config_free(c);

        /* status (no secrets read): neither url-file nor the credential is read, none is required, but
         * url and url-file together are still a mistake */
        f = open_memstream(&buf, &size);
        write_file("provwatch.conf", TOKEN_FILE_AUTH "[webhook]\nurl-file = /nonexistent/u\n[webhook b]\n", 0644);
        assert_int_equal(config_load_full("provwatch.conf", CONFIG_SKIP_SECRETS, f, &c), 0);
        fclose(f);
        assert_string_equal(buf, "");
        free(buf);
        assert_null(c->webhooks[0].url);
        assert_null(c->webhooks[1].url);
        config_free(c);
        f = open_memstream(&buf, &size);
        write_file("provwatch.conf", TOKEN_FILE_AUTH "[webhook]\nurl = https://h/\nurl-file = /nonexistent/u\n",
                   0644);
        assert_int_equal(config_load_full("provwatch.conf", CONFIG_SKIP_SECRETS, f, &c), -EINVAL);
        fclose(f);
        assert_contains(buf, "provwatch.conf:6: [webhook] url-file: the URL is also given by url");
        free(buf);

        unlink("creds-url/webhook-url");
        unlink("creds-url/webhook-slack-url");
        rmdir(creds);
        free(creds);
}

static char *fixture_string(const char *file, const char *key) {
        char *path = strdup_printf("%s/%s", fixtures, file), *data = NULL;
        if (read_full_file(path, 1 << 20, &data, NULL) < 0)
                fail_msg("cannot read fixture %s (set $FIXTURES)", path);
        free(path);
        char *pattern = strdup_printf("\"%s\": \"", key);
        char *s = strstr(data, pattern);
        assert_non_null(s);
        s += strlen(pattern);
        char *r = strndup(s, strcspn(s, "\""));
        free(pattern);
        free(data);
        return r;
}

static void test_webhook_secret_decode(void **state) {
        char *secret = fixture_string("webhook-signature.json", "secret");
        char *key = fixture_string("webhook-signature.json", "key_utf8");
        char *out = NULL;
        size_t size = 0;

        assert_string_equal(secret, "whsec_cHJvdndhdGNoLXRlc3QtdmVjdG9yLXNlY3JldC0wMTIzNDU2Nzg5");
        assert_int_equal(webhook_secret_decode(secret, strlen(secret), &out, &size), 0);
        assert_int_equal(size, strlen(key));
        assert_memory_equal(out, key, size);
        assert_string_equal(out, "provwatch-test-vector-secret-0123456789");
        free(out);

        /* the same through config_load, from a file with a newline */
        char *content = strdup_printf("%s\n", secret);
        write_file("whsec", content, 0600);
        free(content);
        Config *c = load_ok(TOKEN_FILE_AUTH "[webhook]\nurl = https://h\nsecret-file = whsec\n");
        assert_int_equal(c->webhooks[0].secret_size, strlen(key));
        assert_memory_equal(c->webhooks[0].secret, key, strlen(key));
        config_free(c);

        /* raw variant, trailing newline stripped once */
        assert_int_equal(webhook_secret_decode(key, strlen(key), &out, &size), 0);
        assert_int_equal(size, strlen(key));
        assert_memory_equal(out, key, size);
        free(out);
        assert_int_equal(webhook_secret_decode("raw\r\n", 5, &out, &size), 0);
        assert_int_equal(size, 3);
        assert_string_equal(out, "raw");
        free(out);
        assert_int_equal(webhook_secret_decode("a\0b\n", 4, &out, &size), 0);
        assert_int_equal(size, 3);
        assert_memory_equal(out, "a\0b", 3);
        free(out);

        /* padding: "a" = YQ==, "ab" = YWI=, also unpadded */
        static const struct {
                const char *in;
                const char *out;
        } good[] = {
                {"whsec_YQ==", "a"},
                {"whsec_YQ", "a"},
                {"whsec_YWI=", "ab"},
                {"whsec_YWI", "ab"},
                {"whsec_YWJj", "abc"},
                {"whsec_YWJj\n", "abc"},
                {"whsec_/+/+", "\xff\xef\xfe"},
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(webhook_secret_decode(good[i].in, strlen(good[i].in), &out, &size), 0);
                assert_int_equal(size, strlen(good[i].out));
                assert_memory_equal(out, good[i].out, size);
                free(out);
        }
        static const char *const bad[] = {
                "whsec_",         "whsec_Y",    "whsec_YQ=",   "whsec_YQ===", "whsec_Y===",
                "whsec_YQ==YQ==", "whsec_YW J", "whsec_YWJj-", "whsec_=",     "whsec_YWJjZ",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (webhook_secret_decode(bad[i], strlen(bad[i]), &out, &size) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);

        free(secret);
        free(key);
}

static void test_orders_dir(void **state) {
        char *dir = tmp_path("od");
        mkdir(dir, 0755);
        write_file("od/b.list", "# comment\n\nc2 o2\n  c3\to3   # trailing comment\r\nc1 o1\n", 0644);
        write_file("od/a.list", "c1 o1\nC1 O1\n", 0644);
        write_file("od/.hidden.list", "bad line here\n", 0644);
        write_file("od/c.list.sample", "bad line here\n", 0644);
        mkdir("od/d.list", 0755);

        Config *c = load_ok(TOKEN_FILE_AUTH "[orders]\norder = c0 o0\norders-dir = od\norder = c1 o1\n");
        assert_int_equal(c->n_orders, 4);
        static const char *const expected[][3] = {
                {"c0", "o0", "provwatch.conf:5"},
                {"c1", "o1", "provwatch.conf:7"},
                {"c2", "o2", "od/b.list:3"},
                {"c3", "o3", "od/b.list:4"},
        };
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                assert_string_equal(c->orders[i].customer_id, expected[i][0]);
                assert_string_equal(c->orders[i].order_id, expected[i][1]);
                assert_string_equal(where(&c->orders[i]), expected[i][2]);
        }
        /* duplicates are warnings */
        assert_string_equal(c->warnings[0],
                            "od/a.list:1: order c1 o1 is listed twice (first at provwatch.conf:7)");
        assert_string_equal(c->warnings[1],
                            "od/a.list:2: order C1 O1 is listed twice (first at provwatch.conf:7)");
        assert_string_equal(c->warnings[2],
                            "od/b.list:5: order c1 o1 is listed twice (first at provwatch.conf:7)");
        assert_null(c->warnings[3]);
        config_free(c);

        /* bad lines */
        write_file("od/e.list", "c5 o5\nonlyone\n\nc6 o6 extra\nc7 o/7\n", 0644);
        char *e = load_fail(TOKEN_FILE_AUTH "[orders]\norders-dir = od/\n");
        assert_string_equal(e, "od/e.list:2: \"onlyone\" is not \"CUSTOMER_ID ORDER_ID\"\n"
                               "od/e.list:4: \"c6 o6 extra\" is not \"CUSTOMER_ID ORDER_ID\"\n"
                               "od/e.list:5: \"o/7\" is not a valid order ID (1 to 128 characters of A-Z "
                               "a-z 0-9 . _ ~ -)\n");
        free(e);

        /* the same through config_read_orders_dir() */
        OrderRef *orders = NULL;
        size_t n = 0;
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        assert_int_equal(config_read_orders_dir(dir, f, &orders, &n), -EINVAL);
        fclose(f);
        assert_null(orders);
        assert_int_equal(count_lines(buf), 3);
        char *expected_line =
                strdup_printf("%s/e.list:2: \"onlyone\" is not \"CUSTOMER_ID ORDER_ID\"\n", dir);
        assert_contains(buf, expected_line);
        free(expected_line);
        free(buf);

        unlink("od/e.list");
        f = open_memstream(&buf, &size);
        assert_int_equal(config_read_orders_dir(dir, f, &orders, &n), 0);
        fclose(f);
        assert_string_equal(buf, "");
        free(buf);
        assert_int_equal(n, 3); /* a.list: c1 o1 (C1 O1 dropped); b.list: c2, c3 (c1 again dropped) */
        assert_string_equal(orders[0].customer_id, "c1");
        assert_string_equal(orders[1].customer_id, "c2");
        assert_string_equal(orders[2].customer_id, "c3");
        order_refs_free(orders, n);

        /* a missing directory is empty */
        c = load_ok(TOKEN_FILE_AUTH "[orders]\norders-dir = /nonexistent/orders.d\n");
        assert_int_equal(c->n_orders, 0);
        assert_string_equal(c->orders_dir, "/nonexistent/orders.d");
        config_free(c);
        assert_int_equal(config_read_orders_dir("/nonexistent/orders.d", NULL, &orders, &n), 0);
        assert_int_equal(n, 0);
        order_refs_free(orders, n);

        /* an unreadable one is not */
        write_file("notadir", "", 0644);
        e = load_fail(TOKEN_FILE_AUTH "[orders]\norders-dir = notadir\n");
        assert_string_equal(e, "notadir: cannot read directory: Not a directory\n");
        free(e);

        free(dir);
}

static void test_tenant_substitution(void **state) {
        write_file("cs-t1", "x\n", 0600);
        write_file("rt", "y\n", 0600);
        Config *c = load_ok("[webhook]\nurl = https://hooks.example.com/{tenant-id}/in\n"
                            "[partner-center]\n"
                            "token-endpoint = https://login.example.com/{tenant-id}/{tenant-id}\n"
                            "client-secret-file = cs-{tenant-id}\n"
                            "refresh-token-file = rt\n"
                            "client-id = c\n"
                            "tenant-id = t1\n");
        assert_string_equal(c->webhooks[0].url, "https://hooks.example.com/t1/in");
        assert_string_equal(c->token_endpoint, "https://login.example.com/t1/t1");
        assert_string_equal(c->client_secret_origin, "cs-t1");
        assert_string_equal(c->tenant_id, "t1");
        config_free(c);

        /* without tenant-id a placeholder cannot make a valid URL */
        char *e = load_fail(TOKEN_FILE_AUTH "[webhook]\nurl = https://h/{tenant-id}\n");
        assert_string_equal(
                e,
                "provwatch.conf:5: [webhook] url: \"https://h/{tenant-id}\" is not an http:// or https:// "
                "URL with a host\n");
        free(e);
}

static void test_state_directory(void **state) {
        assert_int_equal(setenv("STATE_DIRECTORY", "/var/lib/private/provwatch:/var/lib/other", 1), 0);
        Config *c = load_ok(TOKEN_FILE_AUTH);
        assert_string_equal(c->state_directory, "/var/lib/private/provwatch");
        config_free(c);

        c = load_ok(TOKEN_FILE_AUTH "[state]\ndirectory = /srv/state\n");
        assert_string_equal(c->state_directory, "/srv/state");
        config_free(c);

        assert_int_equal(setenv("STATE_DIRECTORY", "", 1), 0);
        c = load_ok(TOKEN_FILE_AUTH);
        assert_string_equal(c->state_directory, "/var/lib/provwatch");
        config_free(c);
        unsetenv("STATE_DIRECTORY");
}

static void test_empty_values_and_lists(void **state) {
        Config *c = load_ok(TOKEN_FILE_AUTH
                            "[orders]\norder = a b\norder =\norder = c d\norders-dir =\n"
                            "[webhook]\nurl = http://h\nevents = x\nevents =\nheader = A: b\nheader =\n"
                            "[poll]\nterminal-statuses =\n");
        assert_int_equal(c->n_orders, 1);
        assert_string_equal(c->orders[0].customer_id, "c");
        assert_null(c->orders_dir); /* "orders-dir =" turns the default directory off */
        assert_strv_equal(c->webhooks[0].events, (const char *const[]){"*", NULL});
        assert_null(c->webhooks[0].headers[0]);
        assert_strv_equal(c->terminal_statuses, (const char *const[]){"fulfilled", "unfulfilled", NULL});
        config_free(c);
}

static void test_discovery(void **state) {
        /* with discovery on, no order at all is a valid configuration */
        Config *c = load_ok(TOKEN_FILE_AUTH "[orders]\norders-dir =\n[discovery]\nenabled = yes\n");
        assert_true(c->discovery_enabled);
        assert_int_equal(c->n_orders, 0);
        assert_null(c->orders_dir);
        config_free(c);

        /* lookback: 0 and the limit itself are fine; customers add up, an empty value clears them */
        c = load_ok(TOKEN_FILE_AUTH "[discovery]\nlookback = 0\ncustomers = a b\ncustomers =\ncustomers = c\n"
                                    "sweep-interval = 1d\nenabled = 0\n");
        assert_false(c->discovery_enabled);
        assert_int_equal(c->discovery_lookback_usec, 0);
        assert_strv_equal(c->discovery_customers, (const char *const[]){"c", NULL});
        assert_int_equal(c->discovery_sweep_interval_usec, DAY);
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        config_print_summary(c, f);
        fclose(f);
        assert_contains(buf, "\n[discovery]\n  enabled:             no\n  interval:            1m\n"
                             "  lookback:            0\n  customers:           c\n");
        assert_contains(buf, "  sweep interval:      1d\n");
        free(buf);
        config_free(c);
        c = load_ok(TOKEN_FILE_AUTH "[discovery]\nlookback = 2136h\ncustomers = a\ncustomers =\n");
        assert_int_equal(c->discovery_lookback_usec, 89 * DAY);
        assert_null(c->discovery_customers);
        config_free(c);

        /* the other keys are set once; a bad customer line keeps none of its IDs */
        char *e = load_fail(TOKEN_FILE_AUTH "[discovery]\ninterval = 1m\ninterval = 2m\ncustomers = x y/\n"
                                            "[poll]\nstall-after = 0\nstall-after = 1h\n");
        assert_string_equal(e, "provwatch.conf:6: [discovery] interval is set twice (first at provwatch.conf:5)\n"
                               "provwatch.conf:7: [discovery] customers: \"y/\" is not a valid customer ID (1 to 128 "
                               "characters of A-Z a-z 0-9 . _ ~ -)\n"
                               "provwatch.conf:10: [poll] stall-after is set twice (first at provwatch.conf:9)\n");
        free(e);

        /* stall-after = 0 turns the alert off; every format name */
        static const struct {
                const char *name;
                WebhookFormat format;
        } formats[] = {
                {"cloudevents", WEBHOOK_FORMAT_CLOUDEVENTS},
                {"teams", WEBHOOK_FORMAT_TEAMS},
                {"slack", WEBHOOK_FORMAT_SLACK},
        };
        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                char *conf = strdup_printf(TOKEN_FILE_AUTH "[poll]\nstall-after = 0\n[webhook]\nurl = http://h\n"
                                                           "format = %s ; a comment\n",
                                           formats[i].name);
                c = load_ok(conf);
                assert_int_equal(c->stall_after_usec, 0);
                assert_int_equal(c->webhooks[0].format, formats[i].format);
                config_free(c);
                free(conf);
        }
}

static void test_webhook_wants_event(void **state) {
        Config *c =
                load_ok(TOKEN_FILE_AUTH "[webhook]\nurl = http://h\n"
                                        "[webhook orders]\nurl = http://h\nevents = provwatch.order.*\n"
                                        "[webhook two]\nurl = http://h\nevents = provwatch.lineitem.added\n"
                                        "events = *.completed\n");
        assert_true(webhook_wants_event(&c->webhooks[0], "provwatch.lineitem.changed"));
        assert_true(webhook_wants_event(&c->webhooks[1], "provwatch.order.completed"));
        assert_false(webhook_wants_event(&c->webhooks[1], "provwatch.lineitem.changed"));
        assert_true(webhook_wants_event(&c->webhooks[2], "provwatch.lineitem.added"));
        assert_true(webhook_wants_event(&c->webhooks[2], "provwatch.order.completed"));
        assert_false(webhook_wants_event(&c->webhooks[2], "provwatch.order.recovered"));
        assert_false(webhook_wants_event(NULL, "x"));
        config_free(c);
}

static void test_summary(void **state) {
        write_file("cs", "TOPSECRET-CLIENT\n", 0600);
        write_file("rt", "TOPSECRET-REFRESH\n", 0600);
        write_file("wh", "whsec_VE9QU0VDUkVULVdFQkhPT0s=\n", 0600); /* TOPSECRET-WEBHOOK */
        char orders[4096] = "";
        for (int i = 0; i < 12; i++)
                snprintf(orders + strlen(orders), sizeof orders - strlen(orders), "order = cust%d ord%d\n",
                         i, i);
        char *conf =
                strdup_printf("[partner-center]\ntenant-id = t\nclient-id = c\nclient-secret-file = cs\n"
                              "refresh-token-file = rt\n"
                              "[orders]\n%s"
                              "[webhook]\nurl = https://user:TOPSECRET-PASSWORD@hooks.example.com/x\n"
                              "secret-file = wh\nheader = Authorization: Bearer TOPSECRET-HEADER\n"
                              "header = X-Other: TOPSECRET-OTHER\n"
                              "events = provwatch.order.*\n",
                              orders);
        Config *c = load_ok(conf);
        free(conf);
        assert_int_equal(c->webhooks[0].secret_size, strlen("TOPSECRET-WEBHOOK"));
        assert_memory_equal(c->webhooks[0].secret, "TOPSECRET-WEBHOOK", c->webhooks[0].secret_size);

        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        config_print_summary(c, f);
        fclose(f);

        assert_null(strstr(buf, "TOPSECRET"));
        assert_null(strstr(buf, "VE9QU0VDUkVU"));
        assert_contains(buf, "https://api.partnercenter.microsoft.com");
        assert_contains(buf, "refresh-token");
        assert_contains(buf, "cs\n");
        assert_contains(buf, "rt (a newer rotated token in the state store wins)");
        assert_contains(buf, "https://user:***@hooks.example.com/x");
        assert_contains(buf, "Authorization, X-Other");
        assert_contains(buf, "provwatch.order.*");
        assert_contains(buf, "cust0 ord0 (provwatch.conf:7)");
        assert_contains(buf, "cust9 ord9");
        assert_null(strstr(buf, "cust10"));
        assert_contains(buf, "... and 2 more");
        assert_contains(buf, "12\n");
        assert_contains(buf, "2m\n");
        assert_contains(buf, "6h\n");
        assert_contains(buf, "/var/lib/provwatch");
        assert_contains(buf, "  stall after:         1d\n");
        assert_contains(buf, "  format:              cloudevents\n");
        assert_contains(buf, "\n[discovery]\n  enabled:             no\n  interval:            1m\n"
                             "  lookback:            7d\n  customers:           (all)\n"
                             "  forget after:        30d\n  sweep interval:      0 (off)\n");
        free(buf);
        config_free(c);
}

static void test_missing_config_file(void **state) {
        Config *c = NULL;
        char *buf = NULL;
        size_t size;
        FILE *f = open_memstream(&buf, &size);
        assert_int_equal(config_load("/nonexistent/provwatch.conf", f, &c), -ENOENT);
        fclose(f);
        assert_null(c);
        assert_string_equal(buf, "/nonexistent/provwatch.conf: No such file or directory\n");
        free(buf);
}

/* Not a fuzzer, but hostile bytes must neither crash nor leak. */
static void test_garbage(void **state) {
        static const char alphabet[] = "[]=:;# \t\n\r\0\xef\xbb\xbfwebhook order url poll{tenant-id}5m/x";
        unsigned seed = 1;

        for (int round = 0; round < 300; round++) {
                char data[600];
                size_t n = (size_t)(rand_r(&seed) % (int)sizeof data);
                for (size_t i = 0; i < n; i++)
                        data[i] = (round & 1) ? (char)rand_r(&seed)
                                              : alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
                FILE *f = fopen("provwatch.conf", "w");
                assert_non_null(f);
                assert_int_equal(fwrite(data, 1, n, f), n);
                fclose(f);
                FILE *null = fopen("/dev/null", "w");
                Config *c = NULL;
                int r = config_load("provwatch.conf", null, &c);
                fclose(null);
                assert_true(r == 0 || r == -EINVAL);
                if (r == 0) {
                        null = fopen("/dev/null", "w");
                        config_print_summary(c, null);
                        fclose(null);
                }
                config_free(c);
        }

        /* many errors at once */
        char *many = malloc(200000);
        size_t o = 0;
        while (o < 200000 - 8) {
                memcpy(many + o, "x = 1\n", 6);
                o += 6;
        }
        many[o] = 0;
        char *e = load_fail(many);
        assert_contains(e, "more errors\n");
        free(e);
        free(many);
}

int main(void) {
        const char *env = getenv("FIXTURES");
        if (!env || !realpath(env, fixtures)) {
                char dir[PATH_MAX];
                snprintf(dir, sizeof dir, "%s", __FILE__);
                char *slash = strrchr(dir, '/');
                snprintf(slash ? slash + 1 : dir, sizeof dir - (size_t)(slash ? slash + 1 - dir : 0),
                         "fixtures");
                if (!realpath(dir, fixtures))
                        snprintf(fixtures, sizeof fixtures, "%s", dir);
        }

        snprintf(tmpdir, sizeof tmpdir, "%s/test-config.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        if (chdir(tmpdir) < 0) {
                perror("chdir");
                return 1;
        }
        umask(022);

        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_defaults, setup),
                cmocka_unit_test_setup(test_every_key, setup),
                cmocka_unit_test_setup(test_journal_and_comments, setup),
                cmocka_unit_test_setup(test_spec_error_message, setup),
                cmocka_unit_test_setup(test_value_errors, setup),
                cmocka_unit_test_setup(test_all_errors_reported, setup),
                cmocka_unit_test_setup(test_syntax_errors, setup),
                cmocka_unit_test_setup(test_long_line, setup),
                cmocka_unit_test_setup(test_duplicates, setup),
                cmocka_unit_test_setup(test_missing_required, setup),
                cmocka_unit_test_setup(test_secret_files, setup),
                cmocka_unit_test_setup(test_world_readable_secret, setup),
                cmocka_unit_test_setup(test_credentials_directory, setup),
                cmocka_unit_test_setup(test_skip_secrets, setup),
                cmocka_unit_test_setup(test_url_mask, setup),
                cmocka_unit_test_setup(test_webhook_url_sources, setup),
                cmocka_unit_test_setup(test_webhook_secret_decode, setup),
                cmocka_unit_test_setup(test_orders_dir, setup),
                cmocka_unit_test_setup(test_tenant_substitution, setup),
                cmocka_unit_test_setup(test_state_directory, setup),
                cmocka_unit_test_setup(test_empty_values_and_lists, setup),
                cmocka_unit_test_setup(test_discovery, setup),
                cmocka_unit_test_setup(test_webhook_wants_event, setup),
                cmocka_unit_test_setup(test_summary, setup),
                cmocka_unit_test_setup(test_missing_config_file, setup),
                cmocka_unit_test_setup(test_garbage, setup),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);

        char *cmd = strdup_printf("rm -rf -- '%s'", tmpdir);
        if (cmd && chdir("/") == 0)
                (void)system(cmd);
        free(cmd);
        return r;
}
