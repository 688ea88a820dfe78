/* SPDX-License-Identifier: MIT */
/* config_load() on arbitrary bytes written to provwatch.conf in a private scratch directory, which
 * also holds the files a configuration may name (secrets, a token file, orders directories) and a
 * credentials directory, so that the loading of secrets is reached too. The environment is fixed
 * at start: nothing outside the scratch directory changes what a run does. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "http-syntax.h"
#include "secrets.h"
#include "webhook.h"
#include "fuzz.h"
#include "parse-util.h"

/* In every secret the scratch directory holds, never in file names: the summary and the error
 * messages must never show it. */
#define SECRET_MARK "SeCrEt"

static char scratch[] = "/tmp/provwatch-fuzz-config-XXXXXX";
static int scratch_fd = -1, conf_fd = -1;

static const struct {
        const char *path;
        const char *content; /* NULL: a directory */
        mode_t mode;
} scratch_files[] = {
        { "client-secret", SECRET_MARK "-client-0123\n", 0600 },
        { "refresh-token", SECRET_MARK "-refresh-4567\r\n", 0600 },
        /* whsec_ of "SeCrEt-webhook-89ab" */
        { "webhook-secret", "whsec_U2VDckV0LXdlYmhvb2stODlhYg==\n", 0600 },
        { "webhook-raw-secret", SECRET_MARK "-raw-webhook\n", 0600 },
        { "shared-secret", SECRET_MARK "-world-readable\n", 0644 },
        { "empty-secret", "", 0600 },
        { "two-lines-secret", SECRET_MARK "-line1\n" SECRET_MARK "-line2\n", 0600 },
        { "bad-whsec", "whsec_" SECRET_MARK "!!\n", 0600 },
        { "token", "eyJ0eXAiOiJKV1QifQ.e30.c2ln\n", 0600 },
        { "ca.pem", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", 0644 },
        { "orders.d", NULL, 0755 },
        { "orders.d/a.list", "# customers of a\nc1 o1\nc2 o2 # inline comment\n", 0644 },
        { "orders.d/b.list", "C1 O1\n\n  c3   o3  \n", 0644 },
        { "orders.d/ignored.txt", "not a list\n", 0644 },
        { "bad-orders.d", NULL, 0755 },
        { "bad-orders.d/x.list", "c1\nc/1 o1\nc1 o1 extra\nc4 o\"4\n", 0644 },
        { "credentials", NULL, 0700 },
        /* whsec_ of "SeCrEt-credential-ops" */
        { "credentials/webhook-ops-secret", "whsec_U2VDckV0LWNyZWRlbnRpYWwtb3Bz\n", 0600 },
        { "credentials/webhook-broken-secret", "whsec_***\n", 0600 },
        { "credentials/webhook-empty-secret", "", 0600 },
        /* webhook URLs holding their credential (url-file, webhook-NAME-url): shown masked only */
        { "hook.url", "  https://hooks.example.com/services/T0AB/B0CD/" SECRET_MARK "x42?sig=" SECRET_MARK " \n"
                      "https://second.example.com/" SECRET_MARK "\n", 0600 },
        { "not-a.url", "ftp://" SECRET_MARK "/\n", 0600 },
        { "credentials/webhook-teams-url",
          "https://h.example.com:443/workflows/0123456789abcdef/triggers/manual/paths/invoke?api-version=1&sig="
          SECRET_MARK "\n", 0600 },
        { "credentials/webhook-badurl-url", SECRET_MARK "-not-a-url\n", 0600 },
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

static void scratch_remove(void) {
        (void) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what) {
        fprintf(stderr, "fuzz-config: %s: %s\n", what, strerror(errno));
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char path[PATH_MAX];

        if (!mkdtemp(scratch))
                die("mkdtemp");
        atexit(scratch_remove);
        scratch_fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (scratch_fd < 0)
                die(scratch);
        for (size_t i = 0; i < ELEMENTSOF(scratch_files); i++) {
                snprintf(path, sizeof path, "%s/%s", scratch, scratch_files[i].path);
                if (!scratch_files[i].content) {
                        if (mkdir(path, scratch_files[i].mode) < 0)
                                die(path);
                        continue;
                }
                int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, scratch_files[i].mode);
                size_t len = strlen(scratch_files[i].content);
                if (fd < 0 || write(fd, scratch_files[i].content, len) != (ssize_t) len ||
                    fchmod(fd, scratch_files[i].mode) < 0 || close(fd) < 0)
                        die(path);
        }
        snprintf(path, sizeof path, "%s/provwatch.conf", scratch);
        conf_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (conf_fd < 0)
                die(path);

        snprintf(path, sizeof path, "%s/credentials", scratch);
        if (setenv("CREDENTIALS_DIRECTORY", path, 1) < 0 ||
            setenv("STATE_DIRECTORY", "/var/lib/provwatch-fuzz:/var/lib/other", 1) < 0)
                die("setenv");
        return 0;
}

/* Whether the input holds a piece of SECRET_MARK, from which a value might be put together that
 * shows it without any secret leaking. */
static bool mark_pieces_in(const uint8_t *data, size_t size) {
        for (size_t i = 0; i + 1 < strlen(SECRET_MARK); i++)
                if (size >= 2 && memmem(data, size, &SECRET_MARK[i], 2))
                        return true;
        return false;
}

static void check_messages(const char *text, bool mark_in_input) {
        for (const char *line = text; *line;) {
                const char *nl = strchr(line, '\n');
                fuzz_assert(nl); /* every message ends with a newline */
                for (const char *c = line; c < nl; c++)
                        fuzz_assert((unsigned char) *c >= 0x20 && (unsigned char) *c != 0x7f);
                line = nl + 1;
        }
        fuzz_assert(mark_in_input || !strstr(text, SECRET_MARK));
}

static bool id_is_valid(const char *s) {
        size_t n = strlen(s);
        if (n < 1 || n > 128)
                return false;
        for (; *s; s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      strchr("._~-", *s)))
                        return false;
        return true;
}

/* What a successfully loaded configuration promises its users. */
static void check_config(const Config *c) {
        fuzz_assert(c->path && strcmp(c->path, "provwatch.conf") == 0);
        fuzz_assert(c->endpoint && *c->endpoint && c->endpoint[strlen(c->endpoint) - 1] != '/');
        fuzz_assert(c->api_version && c->token_endpoint && c->resource && c->locale && c->state_directory);
        fuzz_assert(!c->tenant_id || !strstr(c->token_endpoint, "{tenant-id}"));
        switch (c->auth) {
        case AUTH_REFRESH_TOKEN:
                fuzz_assert(c->refresh_token && c->refresh_token_origin);
                __attribute__((fallthrough));
        case AUTH_CLIENT_CREDENTIALS:
                fuzz_assert(c->tenant_id && c->client_id && c->client_secret && c->client_secret_origin);
                fuzz_assert(*c->client_secret && !fuzz_has_control_chars(c->client_secret, ""));
                break;
        case AUTH_TOKEN_FILE:
                fuzz_assert(c->token_file);
                break;
        default:
                fuzz_assert(!"unknown auth mode");
        }
        fuzz_assert(c->timeout_usec > 0 && c->interval_usec > 0);
        fuzz_assert(c->concurrency >= 1 && c->concurrency <= 1024);
        fuzz_assert(c->failure_threshold >= 1 && c->failure_threshold <= 1000);
        fuzz_assert(c->max_requests_per_minute <= 100000);
        fuzz_assert(c->terminal_statuses);
        for (char **s = c->terminal_statuses; *s; s++)
                for (const char *p = *s; *p; p++)
                        fuzz_assert(!(*p >= 'A' && *p <= 'Z'));
        for (size_t i = 0; i < c->n_orders; i++) {
                fuzz_assert(id_is_valid(c->orders[i].customer_id) && id_is_valid(c->orders[i].order_id));
                fuzz_assert(c->orders[i].file && c->orders[i].file->n_ref > 0 && c->orders[i].line > 0);
                for (size_t j = 0; j < i; j++)
                        fuzz_assert(strcasecmp(c->orders[i].customer_id, c->orders[j].customer_id) != 0 ||
                                    strcasecmp(c->orders[i].order_id, c->orders[j].order_id) != 0);
        }
        for (size_t i = 0; i < c->n_webhooks; i++) {
                const WebhookConfig *w = &c->webhooks[i];
                fuzz_assert(w->name && w->url && w->events && w->events[0] && w->headers);
                fuzz_assert(!w->secret == !w->secret_origin);
                fuzz_assert(!w->secret || w->secret_size > 0);
                fuzz_assert(w->timeout_usec > 0);
                for (size_t j = 0; j < i; j++)
                        fuzz_assert(strcmp(w->name, c->webhooks[j].name) != 0);
                for (char **h = w->headers; *h; h++)
                        fuzz_assert(strstr(*h, ": ") && !fuzz_has_control_chars(*h, "\t"));
                (void) webhook_wants_event(w, "provwatch.order.completed");
        }
        fuzz_assert(c->warnings);
}

/* The value parsers, which config_load() reaches only through whole lines. */
static void fuzz_value_parsers(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = strndup((const char *) data, size);
        fuzz_assert(s);
        uint64_t usec;
        unsigned u;
        (void) parse_timespan(s, &usec);
        (void) parse_boolean(s);
        if (parse_unsigned(s, 1000, &u) == 0)
                fuzz_assert(u <= 1000);

        char *masked = url_mask(s);
        fuzz_assert(masked && strlen(masked) <= strlen(s) + 15);
        free(masked);

        char *key = NULL;
        size_t key_size = 0;
        if (webhook_secret_decode((const char *) data, size, &key, &key_size) == 0) {
                fuzz_assert(key && key_size <= size);
                fuzz_assert(key[key_size] == 0);
                free(key);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *errors = NULL, *summary = NULL;
        size_t errors_size = 0, summary_size = 0;
        Config *c = NULL;
        int cwd_fd;

        if (scratch_fd < 0)
                LLVMFuzzerInitialize(NULL, NULL);
        if (ftruncate(conf_fd, 0) < 0 || pwrite(conf_fd, data, size, 0) != (ssize_t) size)
                die("provwatch.conf");

        /* Relative paths in the input resolve inside the scratch directory. libFuzzer writes its
         * artifacts to the working directory, so go back right after. */
        cwd_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cwd_fd < 0 || fchdir(scratch_fd) < 0)
                die("fchdir");
        FILE *err = open_memstream(&errors, &errors_size);
        fuzz_assert(err);
        int r = config_load("provwatch.conf", err, &c);
        fuzz_assert(fclose(err) == 0);
        if (fchdir(cwd_fd) < 0)
                die("fchdir back");
        close(cwd_fd);

        bool mark_in_input = mark_pieces_in(data, size);
        check_messages(errors, mark_in_input);
        if (r < 0) {
                fuzz_assert(!c);
                /* every failure is explained, but for lack of memory */
                fuzz_assert(r == -ENOMEM || *errors);
        } else {
                fuzz_assert(r == 0 && c);
                fuzz_assert(!*errors);
                check_config(c);

                FILE *out = open_memstream(&summary, &summary_size);
                fuzz_assert(out);
                config_print_summary(c, out);
                fuzz_assert(fclose(out) == 0);
                fuzz_assert(mark_in_input || !strstr(summary, SECRET_MARK));
                config_free(c);
        }

        fuzz_value_parsers(data, size);
        return 0;
}
