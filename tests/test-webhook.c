/* SPDX-License-Identifier: MIT */
/* Webhook delivery: the signature against the Standard Webhooks test vector, the retry schedule,
 * and delivery through the real loop, HTTP glue and store to tests/webhook_receiver.py (which
 * checks signatures and headers on its own). The delivery tests are skipped without python3.
 *
 * Environment: FIXTURES (default tests/fixtures), WEBHOOK_RECEIVER (default
 * FIXTURES/../webhook_receiver.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "secrets.h"
#include "http.h"
#include "metrics.h"
#include "store.h"
#include "webhook.h"

#define TEST_SECRET "whsec_cHJvdndhdGNoLXRlc3QtdmVjdG9yLXNlY3JldC0wMTIzNDU2Nzg5"

static const char *fixtures(void) {
        const char *f = getenv("FIXTURES");
        return f ? f : "tests/fixtures";
}

static json_object *read_json(const char *path) {
        _cleanup_free_ char *text = NULL;
        assert_int_equal(read_full_file(path, 1 << 20, &text, NULL), 0);
        json_object *j = json_tokener_parse(text);
        assert_non_null(j);
        return j;
}

static const char *json_str(json_object *o, const char *key) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v))
                return NULL;
        return json_object_get_string(v);
}

/* ---- pure functions ---- */

static void test_signature_vector(void **state) {
        _cleanup_free_ char *path = strdup_printf("%s/webhook-signature.json", fixtures());
        json_object *j = read_json(path);
        json_object *raw_variant;
        const char *id = json_str(j, "webhook_id"), *ts = json_str(j, "webhook_timestamp"),
                   *body = json_str(j, "body"), *want = json_str(j, "webhook_signature");
        assert_true(json_object_object_get_ex(j, "raw_secret_variant", &raw_variant));

        /* whsec_: the base64 part is the key */
        const char *secret = json_str(j, "secret");
        _cleanup_free_ char *key = NULL;
        size_t key_size = 0;
        assert_int_equal(webhook_secret_decode(secret, strlen(secret), &key, &key_size), 0);
        assert_int_equal(key_size, strlen(json_str(j, "key_utf8")));
        assert_memory_equal(key, json_str(j, "key_utf8"), key_size);
        _cleanup_free_ char *sig = webhook_signature(key, key_size, id, ts, body, strlen(body));
        assert_non_null(sig);
        assert_string_equal(sig, want);

        /* raw bytes (a secret file without whsec_, with its trailing newline) */
        _cleanup_free_ char *file = strdup_printf("%s\n", json_str(raw_variant, "secret_file_contents"));
        _cleanup_free_ char *raw = NULL;
        size_t raw_size = 0;
        assert_int_equal(webhook_secret_decode(file, strlen(file), &raw, &raw_size), 0);
        _cleanup_free_ char *sig_raw = webhook_signature(raw, raw_size, id, ts, body, strlen(body));
        assert_non_null(sig_raw);
        assert_string_equal(sig_raw, json_str(raw_variant, "webhook_signature"));
        assert_string_equal(sig_raw, "v1,EGU5GEs2uSqTnxi40kB0sQIXDiI03JB7oGNy8AHsD38=");

        /* every part is signed */
        _cleanup_free_ char *other_ts =
                webhook_signature(key, key_size, id, "1795470914", body, strlen(body));
        _cleanup_free_ char *other_body = webhook_signature(key, key_size, id, ts, body, strlen(body) - 1);
        _cleanup_free_ char *other_key = webhook_signature(key, key_size - 1, id, ts, body, strlen(body));
        assert_string_not_equal(other_ts, want);
        assert_string_not_equal(other_body, want);
        assert_string_not_equal(other_key, want);

        json_object_put(j);
}

static void test_signature_edge_cases(void **state) {
        /* an empty body and an empty key still give a well-formed v1 signature (32 bytes → 44 chars) */
        _cleanup_free_ char *a = webhook_signature("k", 1, "id", "1", "", 0);
        _cleanup_free_ char *b = webhook_signature("", 0, "id", "1", "{}", 2);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(strlen(a), 3 + 44);
        assert_int_equal(strlen(b), 3 + 44);
        assert_memory_equal(a, "v1,", 3);
        /* bodies may contain NUL bytes: the size counts, not strlen */
        _cleanup_free_ char *c = webhook_signature("k", 1, "id", "1", "a\0b", 3);
        _cleanup_free_ char *d = webhook_signature("k", 1, "id", "1", "a\0c", 3);
        assert_string_not_equal(c, d);
        assert_null(webhook_signature("k", 1, NULL, "1", "", 0));
}

static void assert_delay_within(unsigned attempts, double lo_sec, double hi_sec) {
        const double rnds[] = { 0.0, 1e-9, 0.25, 0.5, 0.75, 0.999999, 1.0 };
        for (size_t i = 0; i < ELEMENTSOF(rnds); i++) {
                double d = (double) webhook_retry_delay_usec(attempts, rnds[i]) / 1e6;
                if (d < lo_sec || d > hi_sec)
                        fail_msg("attempt %u, rnd %g: %g s not within [%g, %g]", attempts, rnds[i], d,
                                 lo_sec, hi_sec);
        }
        for (int i = 0; i < 1000; i++) {
                double d = (double) webhook_retry_delay_usec(attempts, random_unit()) / 1e6;
                if (d < lo_sec || d > hi_sec)
                        fail_msg("attempt %u: %g s not within [%g, %g]", attempts, d, lo_sec, hi_sec);
        }
}

static void test_retry_schedule(void **state) {
        assert_delay_within(1, 4, 6);
        assert_delay_within(2, 24, 36);
        assert_delay_within(3, 96, 144);
        assert_delay_within(4, 480, 720);
        assert_delay_within(5, 1440, 2160);
        for (unsigned a = 6; a < 40; a++)
                assert_delay_within(a, 2880, 4320);
        assert_delay_within(1000000, 2880, 4320);
        assert_delay_within(UINT32_MAX, 2880, 4320);
        /* 0 attempts behaves like the first retry; out-of-range randomness is clamped */
        assert_delay_within(0, 4, 6);
        assert_true(webhook_retry_delay_usec(1, -3.0) >= 4 * USEC_PER_SEC);
        assert_true(webhook_retry_delay_usec(1, 7.0) <= 6 * USEC_PER_SEC);
        assert_true(webhook_retry_delay_usec(1, 0.0 / 0.0) >= 4 * USEC_PER_SEC);
        /* jitter spreads: the extremes differ by 40 % */
        assert_int_equal(webhook_retry_delay_usec(2, 0.0), 24 * USEC_PER_SEC);
        assert_int_equal(webhook_retry_delay_usec(2, 1.0), 36 * USEC_PER_SEC);
        assert_int_equal(webhook_retry_delay_usec(3, 0.5), 120 * USEC_PER_SEC);
}

/* ---- the receiver ---- */

typedef struct Receiver {
        pid_t pid;
        char dir[64];
        char log[128];
        int port;
} Receiver;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
        return remove(path);
}

static void rm_rf(const char *dir) {
        (void) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* 0, or -1 when python3 or the script is not there (the caller skips). */
static int receiver_start(Receiver *r, const char *secret) {
        const char *script = getenv("WEBHOOK_RECEIVER");
        _cleanup_free_ char *def = strdup_printf("%s/../webhook_receiver.py", fixtures());
        if (!script)
                script = def;
        if (access(script, R_OK) < 0)
                return -1;

        *r = (Receiver) {};
        snprintf(r->dir, sizeof r->dir, "/tmp/test-webhook-rx-XXXXXX");
        assert_non_null(mkdtemp(r->dir));
        snprintf(r->log, sizeof r->log, "%s/log", r->dir);
        _cleanup_free_ char *port_file = strdup_printf("%s/port", r->dir);

        r->pid = fork();
        assert_true(r->pid >= 0);
        if (r->pid == 0) {
                const char *argv[] = { "python3", script, "--port-file", port_file, "--log", r->log,
                                       secret ? "--secret" : NULL, secret, NULL };
                execvp("python3", (char **) argv);
                _exit(127);
        }
        for (int i = 0; i < 200; i++) {
                _cleanup_free_ char *text = NULL;
                if (read_full_file(port_file, 64, &text, NULL) >= 0 && (r->port = atoi(text)) > 0)
                        return 0;
                int status;
                if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
                        r->pid = 0;
                        rm_rf(r->dir);
                        return -1;
                }
                usleep(50 * 1000);
        }
        fail_msg("the webhook receiver did not start");
        return -1;
}

static void receiver_stop(Receiver *r) {
        if (r->pid <= 0)
                return;
        int status = 0;
        assert_int_equal(kill(r->pid, SIGTERM), 0);
        assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        r->pid = 0;
        rm_rf(r->dir);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata) {
        return size * nmemb;
}

static void receiver_control(Receiver *r, const char *json) {
        _cleanup_free_ char *url = strdup_printf("http://127.0.0.1:%d/_control", r->port);
        CURL *c = curl_easy_init();
        long status = 0;
        assert_non_null(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        assert_int_equal(status, 200);
        curl_easy_cleanup(c);
}

/* The receiver's log, only the entries of orders whose id starts with prefix, in log order. */
static json_object *receiver_log(Receiver *r, const char *prefix) {
        _cleanup_free_ char *text = NULL;
        json_object *list = json_object_new_array();
        assert_int_equal(read_full_file(r->log, 64 << 20, &text, NULL), 0);
        for (char *line = text, *end; *line; line = end) {
                end = strchrnul(line, '\n');
                if (*end)
                        *end++ = 0;
                json_object *e = json_tokener_parse(line);
                assert_non_null(e);
                const char *order = json_str(e, "order");
                if (order && strncmp(order, prefix, strlen(prefix)) == 0)
                        json_object_array_add(list, e);
                else
                        json_object_put(e);
        }
        return list;
}

static Receiver rx;         /* with TEST_SECRET */
static bool rx_available;

static int group_setup(void **state) {
        if (http_global_init() < 0)
                return -1;
        rx_available = receiver_start(&rx, TEST_SECRET) >= 0;
        if (!rx_available)
                fprintf(stderr, "python3 or webhook_receiver.py missing: delivery tests are skipped\n");
        return 0;
}

static int group_teardown(void **state) {
        if (rx_available)
                receiver_stop(&rx);
        http_global_cleanup();
        return 0;
}

/* ---- a daemon-like setup: loop, Http, Store, Webhooks ---- */

typedef struct Ctx {
        uv_loop_t loop;
        Http *http;
        Store *store;
        char dir[64];
        char url[128];
        WebhookConfig wh;
        char *headers[2];
        Config config;
        Metrics metrics;
        Webhooks *w;
        unsigned idle_calls;
} Ctx;

static void on_idle(void *userdata) {
        Ctx *c = userdata;
        c->idle_calls++;
}

static void ctx_init(Ctx *c, int port, const char *secret, const char *name) {
        *c = (Ctx) {};
        assert_int_equal(uv_loop_init(&c->loop), 0);
        assert_int_equal(http_new(&c->loop, &c->http), 0);
        snprintf(c->dir, sizeof c->dir, "/tmp/test-webhook-state-XXXXXX");
        assert_non_null(mkdtemp(c->dir));
        assert_int_equal(store_open(c->dir, STORE_READ_WRITE, &c->store), 0);
        snprintf(c->url, sizeof c->url, "http://127.0.0.1:%d/hook", port);

        c->headers[0] = (char *) "Authorization: Bearer not-a-real-token";
        c->wh = (WebhookConfig) {
                .name = (char *) name,
                .url = c->url,
                .headers = c->headers,
                .timeout_usec = 10 * USEC_PER_SEC,
                .retry_for_usec = 3600 * USEC_PER_SEC,
                .once_timeout_usec = 30 * USEC_PER_SEC,
        };
        if (secret)
                assert_int_equal(webhook_secret_decode(secret, strlen(secret), &c->wh.secret,
                                                       &c->wh.secret_size),
                                 0);
        c->config = (Config) {
                .journal = JOURNAL_NO,
                .webhooks = &c->wh,
                .n_webhooks = 1,
        };
}

static void ctx_start(Ctx *c) {
        assert_int_equal(webhooks_new(&c->loop, c->http, c->store, &c->config, "test", &c->metrics, &c->w), 0);
        webhooks_set_idle_callback(c->w, on_idle, c);
}

static void ctx_stop_webhooks(Ctx *c) {
        webhooks_free(c->w);
        c->w = NULL;
        uv_run(&c->loop, UV_RUN_NOWAIT); /* close callbacks */
}

static void ctx_done(Ctx *c) {
        if (c->w)
                webhooks_free(c->w);
        http_free(c->http);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&c->loop), 0);
        store_free(c->store);
        metrics_done(&c->metrics);
        free(c->wh.secret);
        rm_rf(c->dir);
}

static void on_tick(uv_timer_t *t) {
}

static bool run_until(Ctx *c, bool (*pred)(Ctx *c), uint64_t timeout_sec) {
        uv_timer_t tick;
        uint64_t end = now_monotonic_usec() + timeout_sec * USEC_PER_SEC;
        bool ok;

        uv_timer_init(&c->loop, &tick);
        uv_timer_start(&tick, on_tick, 20, 20);
        while (!(ok = pred(c)) && now_monotonic_usec() < end)
                uv_run(&c->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *) &tick, NULL);
        uv_run(&c->loop, UV_RUN_NOWAIT);
        return ok;
}

static uint64_t depth(Ctx *c) {
        uint64_t d = UINT64_MAX;
        assert_int_equal(store_queue_depth(c->store, c->wh.name, &d), 0);
        return d;
}

static bool all_delivered(Ctx *c) {
        return depth(c) == 0 && webhooks_busy(c->w) == 0;
}

/* every order but window0 (300 events, refused) is through: none waited behind it */
static bool only_window0_left(Ctx *c) {
        return depth(c) == 300;
}

static bool idle_reported(Ctx *c) {
        return c->idle_calls > 0;
}

static void add_event(Ctx *c, const char *order, unsigned k) {
        char id[37];
        assert_int_equal(uuid_random(id), 0);
        _cleanup_free_ char *body = strdup_printf(
                "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"provwatch://test\","
                "\"type\":\"provwatch.lineitem.changed\","
                "\"subject\":\"customers/c1/orders/%s/lineitems/%u\","
                "\"time\":\"2026-11-23T21:55:13Z\",\"datacontenttype\":\"application/json\","
                "\"data\":{\"customer_id\":\"c1\",\"order_id\":\"%s\",\"k\":%u}}",
                id, order, k, order, k);
        char *names[] = { c->wh.name };
        assert_int_equal(store_add_event(c->store, id, "provwatch.lineitem.changed", "c1", order,
                                         now_realtime_usec(), body, "summary", names, 1),
                         0);
}

static int entry_k(json_object *e) {
        json_object *body, *data, *k;
        assert_true(json_object_object_get_ex(e, "body", &body));
        assert_true(json_object_object_get_ex(body, "data", &data));
        assert_true(json_object_object_get_ex(data, "k", &k));
        return json_object_get_int(k);
}

static int entry_answered(json_object *e) {
        json_object *a;
        assert_true(json_object_object_get_ex(e, "answered", &a));
        return json_object_get_int(a);
}

/* Every order's events arrive in order: no attempt of event k before k-1 was answered 2xx, each
 * order has n_events delivered, every request was signed and well-formed. */
static void check_log_counts(json_object *log, const char *prefix, size_t n_orders, const unsigned *n_events,
                             bool signed_) {
        _cleanup_free_ unsigned *next = calloc(n_orders, sizeof *next);
        assert_non_null(next);
        for (size_t i = 0; i < json_object_array_length(log); i++) {
                json_object *e = json_object_array_get_idx(log, i), *v;
                const char *order = json_str(e, "order");
                size_t o = (size_t) atoi(order + strlen(prefix));
                assert_true(o < n_orders);
                int k = entry_k(e);
                if ((unsigned) k != next[o])
                        fail_msg("order %s: event %d attempted while %u is the next one", order, k, next[o]);
                if (entry_answered(e) / 100 == 2)
                        next[o]++;
                assert_true(json_object_object_get_ex(e, "problems", &v));
                if (json_object_array_length(v) != 0)
                        fail_msg("receiver found problems: %s", json_object_to_json_string(v));
                assert_true(json_object_object_get_ex(e, "signature_ok", &v));
                if (signed_)
                        assert_true(json_object_get_boolean(v));
                else
                        assert_true(json_object_is_type(v, json_type_null));
        }
        for (size_t o = 0; o < n_orders; o++)
                if (next[o] != n_events[o])
                        fail_msg("order %s%zu: %u of %u events delivered", prefix, o, next[o], n_events[o]);
}

static void check_log(json_object *log, const char *prefix, size_t n_orders, unsigned n_events,
                      bool signed_) {
        _cleanup_free_ unsigned *counts = calloc(n_orders, sizeof *counts);
        assert_non_null(counts);
        for (size_t o = 0; o < n_orders; o++)
                counts[o] = n_events;
        check_log_counts(log, prefix, n_orders, counts, signed_);
}

static size_t count_answered(json_object *log, int status) {
        size_t n = 0;
        for (size_t i = 0; i < json_object_array_length(log); i++)
                if (entry_answered(json_object_array_get_idx(log, i)) == status)
                        n++;
        return n;
}

/* ---- delivery tests ---- */

static void test_deliver_in_order(void **state) {
        Ctx c;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "basic");
        receiver_control(&rx, "{\"mode\":\"status\",\"status\":429,\"retry_after\":1,\"count\":2}");
        for (unsigned k = 0; k < 4; k++)
                for (unsigned o = 0; o < 3; o++) {
                        char order[16];
                        snprintf(order, sizeof order, "basic%u", o);
                        add_event(&c, order, k);
                }
        ctx_start(&c);
        assert_true(webhooks_busy(c.w) > 0);
        assert_true(run_until(&c, all_delivered, 30));
        assert_true(run_until(&c, idle_reported, 5));

        json_object *log = receiver_log(&rx, "basic");
        check_log(log, "basic", 3, 4, true);
        assert_int_equal(count_answered(log, 429), 2);
        assert_int_equal(json_object_array_length(log), 14);
        json_object_put(log);

        WebhookMetrics *m = metrics_webhook(&c.metrics, "basic");
        assert_int_equal(m->delivered, 12);
        assert_int_equal(m->failed, 2);
        assert_int_equal(m->dead_lettered, 0);
        assert_int_equal(m->queue_depth, 0);
        assert_int_equal(webhooks_queued(c.w), 0);

        /* a kick with nothing to do reports idle again */
        c.idle_calls = 0;
        webhooks_kick(c.w);
        assert_int_equal(webhooks_busy(c.w), 0);
        assert_true(run_until(&c, idle_reported, 5));
        ctx_done(&c);
}

/* One order with more events than the window, stuck behind a retry, holds one slot: orders queued
 * beyond the first window's worth get through meanwhile, and the big one then drains in order. */
static void test_window_no_head_of_line_blocking(void **state) {
        Ctx c;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "window");
        /* window0 is refused until every other order got through: no timing involved */
        receiver_control(&rx, "{\"mode\":\"status\",\"status\":503,\"retry_after\":1,"
                              "\"order\":\"window0\"}");
        for (unsigned k = 0; k < 300; k++)
                add_event(&c, "window0", k);
        for (unsigned k = 0; k < 2; k++)
                for (unsigned o = 1; o < 301; o++) {
                        char order[16];
                        snprintf(order, sizeof order, "window%u", o);
                        add_event(&c, order, k);
                }
        ctx_start(&c);
        assert_true(run_until(&c, only_window0_left, 180));
        receiver_control(&rx, "{\"mode\":\"ok\"}");
        assert_true(run_until(&c, all_delivered, 180));

        json_object *log = receiver_log(&rx, "window");
        unsigned counts[301];
        for (size_t o = 0; o < 301; o++)
                counts[o] = o == 0 ? 300 : 2;
        check_log_counts(log, "window", 301, counts, true);

        /* window0's first event failed once; before it went through, orders that were beyond the
         * first window (window256…) had been delivered */
        size_t i, n = json_object_array_length(log), late_orders = 0;
        for (i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(log, i);
                const char *order = json_str(e, "order");
                if (streq(order, "window0") && entry_answered(e) == 204)
                        break;
                if (atoi(order + strlen("window")) >= 256)
                        late_orders++;
        }
        assert_true(i < n);
        assert_int_equal(entry_k(json_object_array_get_idx(log, i)), 0);
        assert_true(late_orders > 0);
        assert_true(count_answered(log, 503) >= 1);
        json_object_put(log);
        ctx_done(&c);
}

#define N_REJECTED 300u

static size_t count_order_attempts(json_object *log, const char *order) {
        size_t n = 0;
        for (size_t i = 0; i < json_object_array_length(log); i++)
                if (streq(json_str(json_object_array_get_idx(log, i), "order"), order))
                        n++;
        return n;
}

/* the three events of reject300 are through, nothing of the others */
static bool reject300_delivered(Ctx *c) {
        return depth(c) == 2 * N_REJECTED;
}

/* every refused order was attempted again: its first retry is due about 5 s after the first failure,
 * the second one half a minute later */
static bool rejected_retried(Ctx *c) {
        return metrics_webhook(&c->metrics, c->wh.name)->failed >= 2 * N_REJECTED;
}

/* A receiver that refuses the events of 300 orders (400: a payload it dislikes, retried until
 * retry-for) must not hold back a 301st order: the rows waiting for their retries hold no slot of
 * the window that the due events of other orders need. */
static void test_rejected_orders_hold_back_no_other(void **state) {
        Ctx c;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "reject");
        c.wh.retry_for_usec = 3 * USEC_PER_DAY;

        _cleanup_free_ char *control = strdup("{\"mode\":\"status\",\"status\":400,\"orders\":[");
        for (unsigned o = 0; o < N_REJECTED; o++) {
                char *next = strdup_printf("%s%s\"reject%u\"", control, o > 0 ? "," : "", o);
                assert_non_null(next);
                free(control);
                control = next;
        }
        char *full = strdup_printf("%s]}", control);
        assert_non_null(full);
        free(control);
        control = full;
        receiver_control(&rx, control);

        for (unsigned k = 0; k < 2; k++)
                for (unsigned o = 0; o < N_REJECTED; o++) {
                        char order[16];
                        snprintf(order, sizeof order, "reject%u", o);
                        add_event(&c, order, k);
                }
        for (unsigned k = 0; k < 3; k++)
                add_event(&c, "reject300", k);

        uint64_t start = now_monotonic_usec();
        ctx_start(&c);
        bool delivered = run_until(&c, reject300_delivered, 30);
        double waited = (double) (now_monotonic_usec() - start) / 1e6;
        print_message("reject300: %s after %.1f s\n", delivered ? "delivered" : "still queued", waited);
        if (!delivered)
                fail_msg("the events of order reject300 still wait after %.1f s, behind %u refused orders",
                         waited, N_REJECTED);

        /* the refused orders keep their retry schedule */
        assert_true(run_until(&c, rejected_retried, 30));
        receiver_control(&rx, "{\"mode\":\"ok\"}");

        json_object *log = receiver_log(&rx, "reject");
        for (unsigned o = 0; o < N_REJECTED; o++) {
                char order[16];
                snprintf(order, sizeof order, "reject%u", o);
                assert_int_equal(count_order_attempts(log, order), 2);
        }
        unsigned counts[N_REJECTED + 1] = { [N_REJECTED] = 3 };
        check_log_counts(log, "reject", N_REJECTED + 1, counts, true); /* no event 1 of a refused order */
        assert_int_equal(count_answered(log, 204), 3);
        assert_true(count_answered(log, 400) >= 2 * N_REJECTED);
        json_object_put(log);
        assert_int_equal(depth(&c), 2 * N_REJECTED);
        WebhookMetrics *m = metrics_webhook(&c.metrics, "reject");
        assert_int_equal(m->delivered, 3);
        assert_int_equal(m->dead_lettered, 0);
        ctx_done(&c);
}

static void test_gone_then_reload(void **state) {
        Ctx c;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "gone");
        receiver_control(&rx, "{\"mode\":\"status\",\"status\":410}");
        for (unsigned o = 0; o < 6; o++) {
                char order[16];
                snprintf(order, sizeof order, "gone%u", o);
                add_event(&c, order, 0);
        }
        ctx_start(&c);
        assert_true(run_until(&c, idle_reported, 30));
        assert_int_equal(webhooks_busy(c.w), 0);
        assert_int_equal(depth(&c), 6);
        json_object *log = receiver_log(&rx, "gone");
        size_t attempts = json_object_array_length(log);
        assert_true(attempts >= 1 && attempts <= 4); /* only those already in flight */
        json_object_put(log);

        /* disabled: new events wait too */
        add_event(&c, "gone0", 1);
        c.idle_calls = 0;
        webhooks_kick(c.w);
        assert_int_equal(webhooks_busy(c.w), 0);
        assert_true(run_until(&c, idle_reported, 5));
        assert_int_equal(depth(&c), 7);

        receiver_control(&rx, "{\"mode\":\"ok\"}");
        webhooks_set_config(c.w, &c.config);
        assert_true(webhooks_busy(c.w) > 0);
        assert_true(run_until(&c, all_delivered, 30));
        log = receiver_log(&rx, "gone");
        assert_int_equal(count_answered(log, 204), 7);
        json_object_put(log);
        ctx_done(&c);
}

static void test_dead_letter(void **state) {
        Ctx c;
        uint64_t n = 0;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "dead");
        c.wh.retry_for_usec = 0; /* the first failure is the last */
        receiver_control(&rx, "{\"mode\":\"status\",\"status\":500}");
        for (unsigned k = 0; k < 3; k++)
                add_event(&c, "dead0", k);
        add_event(&c, "dead1", 0);
        ctx_start(&c);
        assert_true(run_until(&c, all_delivered, 30));
        receiver_control(&rx, "{\"mode\":\"ok\"}");
        assert_int_equal(store_dead_letter_count(c.store, "dead", &n), 0);
        assert_int_equal(n, 4);
        WebhookMetrics *m = metrics_webhook(&c.metrics, "dead");
        assert_int_equal(m->dead_lettered, 4);
        assert_int_equal(m->failed, 4);
        assert_int_equal(m->delivered, 0);

        /* still one at a time per order */
        json_object *log = receiver_log(&rx, "dead");
        assert_int_equal(json_object_array_length(log), 4);
        int k = 0;
        for (size_t i = 0; i < 4; i++) {
                json_object *e = json_object_array_get_idx(log, i);
                if (streq(json_str(e, "order"), "dead0"))
                        assert_int_equal(entry_k(e), k++);
        }
        json_object_put(log);
        ctx_done(&c);
}

static bool one_attempt_made(Ctx *c) {
        QueuedEvent *q = NULL;
        size_t n = 0;
        assert_int_equal(store_queue_list(c->store, c->wh.name, 0, 0, &q, &n), 0);
        bool made = n > 0 && q[0].attempts == 1 && webhooks_busy(c->w) == 0;
        queued_events_free(q, n);
        return made;
}

/* A parked event (waiting for its retry) that leaves the queue meanwhile gives its place to the
 * order's next event. */
static void test_parked_event_removed(void **state) {
        Ctx c;
        QueuedEvent *q = NULL;
        size_t n = 0;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "unpark");
        receiver_control(&rx, "{\"mode\":\"status\",\"status\":503,\"retry_after\":1,\"count\":1}");
        add_event(&c, "unpark0", 0);
        add_event(&c, "unpark0", 1);
        ctx_start(&c);
        assert_true(run_until(&c, one_attempt_made, 30));
        assert_int_equal(store_queue_list(c.store, "unpark", 0, 1, &q, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(store_queue_delivered(c.store, "unpark", q[0].seq), 0);
        queued_events_free(q, n);

        assert_true(run_until(&c, all_delivered, 30));
        json_object *log = receiver_log(&rx, "unpark");
        assert_int_equal(json_object_array_length(log), 2);
        assert_int_equal(entry_k(json_object_array_get_idx(log, 0)), 0);
        assert_int_equal(entry_answered(json_object_array_get_idx(log, 0)), 503);
        assert_int_equal(entry_k(json_object_array_get_idx(log, 1)), 1);
        assert_int_equal(entry_answered(json_object_array_get_idx(log, 1)), 204);
        json_object_put(log);
        ctx_done(&c);
}

#define N_WAITING 1100u

static bool only_waiting_left(Ctx *c) {
        return depth(c) == N_WAITING;
}

/* After a restart, more orders wait for their retries than one turn of the loop reads: the due event
 * queued behind them still goes out at once, and until it is found the webhook counts as busy (so
 * that `once` does not stop waiting). */
static void test_restart_many_waiting(void **state) {
        Ctx c;
        QueuedEvent *q = NULL;
        size_t n = 0;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "waiting");
        assert_int_equal(store_begin(c.store), 0);
        for (unsigned o = 0; o <= N_WAITING; o++) {
                char order[16];
                snprintf(order, sizeof order, "waiting%u", o);
                add_event(&c, order, 0);
        }
        assert_int_equal(store_queue_list(c.store, "waiting", 0, 0, &q, &n), 0);
        assert_int_equal(n, N_WAITING + 1);
        uint64_t later = now_realtime_usec() + 3600 * USEC_PER_SEC;
        for (size_t i = 0; i < N_WAITING; i++)
                assert_int_equal(store_queue_reschedule(c.store, "waiting", q[i].seq, 1, later, "HTTP 400"), 0);
        queued_events_free(q, n);
        assert_int_equal(store_commit(c.store), 0);

        ctx_start(&c);
        assert_true(webhooks_busy(c.w) > 0);
        assert_true(run_until(&c, only_waiting_left, 30));
        assert_true(run_until(&c, idle_reported, 5));
        assert_int_equal(webhooks_busy(c.w), 0);
        assert_int_equal(webhooks_due_before(c.w, later), N_WAITING);
        json_object *log = receiver_log(&rx, "waiting");
        assert_int_equal(json_object_array_length(log), 1);
        assert_string_equal(json_str(json_object_array_get_idx(log, 0), "order"), "waiting1100");
        json_object_put(log);
        ctx_done(&c);
}

/* What is queued survives a restart with its id and schedule. */
static void test_restart(void **state) {
        Ctx c;
        QueuedEvent *q = NULL;
        size_t n = 0;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "restart");
        receiver_control(&rx, "{\"mode\":\"status\",\"status\":503,\"retry_after\":2,\"count\":1}");
        add_event(&c, "restart0", 0);
        add_event(&c, "restart0", 1);
        ctx_start(&c);
        assert_true(run_until(&c, one_attempt_made, 30));
        assert_int_equal(store_queue_list(c.store, "restart", 0, 0, &q, &n), 0);
        assert_int_equal(n, 2);
        _cleanup_free_ char *id = strdup(q[0].event_id);
        uint64_t next = q[0].next_attempt_usec, now = now_realtime_usec();
        assert_true(next > now && next <= now + 2 * USEC_PER_SEC + USEC_PER_SEC / 2);
        queued_events_free(q, n);
        ctx_stop_webhooks(&c);

        ctx_start(&c);
        assert_int_equal(webhooks_busy(c.w), 0); /* waiting for Retry-After */
        assert_true(run_until(&c, all_delivered, 30));
        assert_true(now_realtime_usec() >= next);
        json_object *log = receiver_log(&rx, "restart");
        check_log(log, "restart", 1, 2, true);
        assert_int_equal(json_object_array_length(log), 3);
        assert_string_equal(json_str(json_object_array_get_idx(log, 0), "id"), id);
        assert_string_equal(json_str(json_object_array_get_idx(log, 1), "id"), id);
        json_object_put(log);
        ctx_done(&c);
}

static bool idle_and_attempted(Ctx *c) {
        return c->idle_calls > 0 && one_attempt_made(c);
}

/* No answer at all (nothing listens): the normal schedule, about 5 s. */
static void test_transport_error(void **state) {
        Ctx c;
        QueuedEvent *q = NULL;
        size_t n = 0;
        ctx_init(&c, 1, NULL, "refused");
        add_event(&c, "refused0", 0);
        uint64_t before = now_realtime_usec();
        ctx_start(&c);
        assert_true(run_until(&c, idle_and_attempted, 30));
        assert_int_equal(store_queue_list(c.store, "refused", 0, 0, &q, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(q[0].attempts, 1);
        assert_true(q[0].next_attempt_usec >= before + 4 * USEC_PER_SEC);
        assert_true(q[0].next_attempt_usec <= now_realtime_usec() + 6 * USEC_PER_SEC);
        queued_events_free(q, n);
        assert_int_equal(webhooks_busy(c.w), 0);
        assert_int_equal(webhooks_queued(c.w), 1);
        /* `once` keeps waiting for a retry that falls before its deadline */
        assert_int_equal(webhooks_due_before(c.w, now_realtime_usec()), 0);
        assert_int_equal(webhooks_due_before(c.w, now_realtime_usec() + 7 * USEC_PER_SEC), 1);

        /* stopping: nothing starts any more; freeing with the queue left is fine */
        webhooks_stop(c.w);
        webhooks_kick(c.w);
        assert_int_equal(webhooks_busy(c.w), 0);
        ctx_done(&c);
}

/* A receiver that does not answer in time counts as a failure. */
static void test_timeout(void **state) {
        Ctx c;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "timeout");
        c.wh.timeout_usec = USEC_PER_SEC;
        receiver_control(&rx, "{\"mode\":\"ok\",\"hang\":3}");
        add_event(&c, "timeout0", 0);
        ctx_start(&c);
        assert_true(run_until(&c, one_attempt_made, 30));
        receiver_control(&rx, "{\"mode\":\"ok\"}");
        assert_int_equal(depth(&c), 1);
        assert_int_equal(metrics_webhook(&c.metrics, "timeout")->failed, 1);
        ctx_done(&c);
}

static void test_unsigned(void **state) {
        Receiver plain;
        Ctx c;
        if (!rx_available || receiver_start(&plain, NULL) < 0)
                skip();
        ctx_init(&c, plain.port, NULL, "plain");
        add_event(&c, "plain0", 0);
        add_event(&c, "plain0", 1);
        ctx_start(&c);
        assert_true(run_until(&c, all_delivered, 30));
        json_object *log = receiver_log(&plain, "plain");
        check_log(log, "plain", 1, 2, false);
        json_object_put(log);
        ctx_done(&c);
        receiver_stop(&plain);
}

/* Reload: a removed webhook stops (its queue stays in the store), an added one starts. */
static void test_reconfigure(void **state) {
        Ctx c;
        if (!rx_available)
                skip();
        ctx_init(&c, rx.port, TEST_SECRET, "reconf-a");
        ctx_start(&c);
        WebhookConfig b = c.wh;
        b.name = (char *) "reconf-b";
        char *names[] = { (char *) "reconf-a", (char *) "reconf-b" };
        char id[37];
        assert_int_equal(uuid_random(id), 0);
        _cleanup_free_ char *body = strdup_printf(
                "{\"specversion\":\"1.0\",\"id\":\"%s\",\"type\":\"provwatch.order.completed\","
                "\"data\":{\"customer_id\":\"c1\",\"order_id\":\"reconf0\",\"k\":0}}",
                id);
        assert_int_equal(store_add_event(c.store, id, "provwatch.order.completed", "c1", "reconf0",
                                         now_realtime_usec(), body, NULL, names, 2),
                         0);

        /* "reconf-a" is sending it (slowly) when it is removed: the request is abandoned */
        receiver_control(&rx, "{\"mode\":\"ok\",\"hang\":1,\"order\":\"reconf0\"}");
        webhooks_kick(c.w);
        assert_int_equal(webhooks_busy(c.w), 1);

        /* only "reconf-b" from now on */
        c.config.webhooks = &b;
        webhooks_set_config(c.w, &c.config);
        webhooks_kick(c.w);
        uint64_t d = 0;
        assert_true(run_until(&c, idle_reported, 30));
        receiver_control(&rx, "{\"mode\":\"ok\"}");
        assert_int_equal(store_queue_depth(c.store, "reconf-b", &d), 0);
        assert_int_equal(d, 0);
        assert_int_equal(store_queue_depth(c.store, "reconf-a", &d), 0);
        assert_int_equal(d, 1);
        assert_int_equal(webhooks_queued(c.w), 0);
        json_object *log = receiver_log(&rx, "reconf");
        size_t n = json_object_array_length(log);
        assert_true(n >= 1 && n <= 2); /* the abandoned request may have been recorded too */
        json_object_put(log);
        ctx_done(&c);
}

static void test_no_webhooks(void **state) {
        Ctx c;
        ctx_init(&c, 1, NULL, "none");
        c.config.n_webhooks = 0;
        c.config.webhooks = NULL;
        ctx_start(&c);
        assert_int_equal(webhooks_busy(c.w), 0);
        assert_int_equal(webhooks_queued(c.w), 0);
        webhooks_kick(c.w);
        assert_true(run_until(&c, idle_reported, 5));
        ctx_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_signature_vector),
                cmocka_unit_test(test_signature_edge_cases),
                cmocka_unit_test(test_retry_schedule),
                cmocka_unit_test(test_no_webhooks),
                cmocka_unit_test(test_deliver_in_order),
                cmocka_unit_test(test_window_no_head_of_line_blocking),
                cmocka_unit_test(test_rejected_orders_hold_back_no_other),
                cmocka_unit_test(test_parked_event_removed),
                cmocka_unit_test(test_restart_many_waiting),
                cmocka_unit_test(test_gone_then_reload),
                cmocka_unit_test(test_dead_letter),
                cmocka_unit_test(test_restart),
                cmocka_unit_test(test_transport_error),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_unsigned),
                cmocka_unit_test(test_reconfigure),
        };
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
