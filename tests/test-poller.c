/* SPDX-License-Identifier: MIT */
/* One poll of one order through the real loop, curl, token acquisition and Partner Center client,
 * against the simulator (tests/pcsim.py) on loopback: what each kind of answer becomes, and what
 * went over the wire (the simulator's request log). */
#include <curl/curl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "pc-client.h"
#include "poller.h"
#include "store.h"


static const char *fixtures(void) {
        const char *f = getenv("FIXTURES");
        return f ? f : "tests/fixtures";
}

/* ---- the simulator ---- */

typedef struct Sim {
        pid_t pid;
        char dir[64];
        int port;
} Sim;

static Sim sim;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
        return remove(path);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata) {
        FILE *f = userdata;
        return fwrite(ptr, size, nmemb, f);
}

/* A control call; the answer as JSON (caller puts it). */
static json_object *control(const char *method, const char *path, const char *body) {
        _cleanup_free_ char *url = strdup_printf("http://127.0.0.1:%d/_control/%s", sim.port, path);
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        CURL *c = curl_easy_init();
        long status = 0;
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        assert_non_null(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        if (body)
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        fclose(f);
        assert_int_equal(status, 200);
        json_object *o = json_tokener_parse(text);
        free(text);
        assert_non_null(o);
        return o;
}

static void control_void(const char *method, const char *path, const char *body) {
        json_object_put(control(method, path, body));
}

static const char *jstr(json_object *o, const char *key) {
        json_object *v = NULL;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
                       ? json_object_get_string(v)
                       : NULL;
}

static int64_t jint(json_object *o, const char *key) {
        json_object *v = NULL;
        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_int64(v);
}

static const char *header(json_object *record, const char *name) {
        json_object *h = NULL;
        assert_true(json_object_object_get_ex(record, "headers", &h));
        return jstr(h, name);
}

static int64_t requests_mark(void) {
        json_object *o = control("GET", "requests?since=999999999", NULL);
        int64_t next = jint(o, "next");
        json_object_put(o);
        return next;
}

/* The API requests since mark (caller puts the array's owner). */
static json_object *requests_since(int64_t mark, json_object **owner) {
        _cleanup_free_ char *path = strdup_printf("requests?since=%lld&kind=api", (long long) mark);
        *owner = control("GET", path, NULL);
        json_object *list = NULL;
        assert_true(json_object_object_get_ex(*owner, "requests", &list));
        return list;
}

static const char scenario[] =
        "{\"orders\": ["
        "{\"customer\": \"c1\", \"order\": \"one\", \"line_items\": ["
        "  {\"number\": 0, \"olid\": 0, \"status\": \"fulfilled\", \"quantities\": {\"fulfilled\": 2}},"
        "  {\"number\": 1, \"status\": \"prefulfillmentpending\"}]},"
        "{\"customer\": \"c1\", \"order\": \"three\", \"line_items\": ["
        "  {\"number\": 0, \"status\": \"fulfilled\"}, {\"number\": 1, \"status\": \"fulfilled\"},"
        "  {\"number\": 2, \"status\": \"fulfilled\"}]}]}";

static int sim_start(void) {
        _cleanup_free_ char *script = strdup_printf("%s/../pcsim.py", fixtures());
        if (access(script, R_OK) < 0)
                return -1;
        snprintf(sim.dir, sizeof sim.dir, "/tmp/test-poller-XXXXXX");
        assert_non_null(mkdtemp(sim.dir));
        _cleanup_free_ char *port_file = strdup_printf("%s/port", sim.dir);
        _cleanup_free_ char *scenario_file = strdup_printf("%s/scenario.json", sim.dir);
        _cleanup_free_ char *log = strdup_printf("%s/pcsim.log", sim.dir);
        FILE *f = fopen(scenario_file, "w");
        assert_non_null(f);
        fputs(scenario, f);
        fclose(f);

        sim.pid = fork();
        assert_true(sim.pid >= 0);
        if (sim.pid == 0) {
                const char *argv[] = { "python3", script, "--port-file", port_file, "--scenario", scenario_file,
                                       "--log", log, NULL };
                execvp("python3", (char **) argv);
                _exit(127);
        }
        for (int i = 0; i < 400; i++) {
                _cleanup_free_ char *text = NULL;
                if (read_full_file(port_file, 64, &text, NULL) >= 0 && (sim.port = atoi(text)) > 0)
                        return 0;
                int status;
                if (waitpid(sim.pid, &status, WNOHANG) == sim.pid) {
                        sim.pid = 0;
                        return -1;
                }
                usleep(50 * 1000);
        }
        fail_msg("the simulator did not start");
        return -1;
}

static void sim_stop(void) {
        if (sim.pid > 0) {
                kill(sim.pid, SIGTERM);
                waitpid(sim.pid, NULL, 0);
        }
        (void) nftw(sim.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a loop with the real parts ---- */

typedef struct Ctx {
        uv_loop_t loop;
        uv_timer_t deadline;
        Http *http;
        Store *store;
        Auth *auth;
        PcClient *client;
        Poller *poller;
        Metrics metrics;
        Config config;
        char *endpoint, *token_endpoint, *state;
        char *terminal[3];

        PollTarget targets[8];
        size_t n_targets, next_target, done;
        PollAnswer answers[8]; /* copies; strings below */
        char reasons[8][256], codes[8][64], descriptions[8][256], request_ids[8][37], correlation_ids[8][37];
        size_t n_snapshot_items[8];
        bool had_snapshot[8];
} Ctx;

static void on_deadline(uv_timer_t *t) {
        fail_msg("the polls did not finish within 20 s");
}

static void on_done(PollAnswer *a, void *userdata) {
        Ctx *c = userdata;
        size_t i = c->done++;
        c->answers[i] = *a;
        snprintf(c->reasons[i], sizeof c->reasons[i], "%s", a->reason ? a->reason : "");
        snprintf(c->codes[i], sizeof c->codes[i], "%s", a->code ? a->code : "");
        snprintf(c->descriptions[i], sizeof c->descriptions[i], "%s", a->description ? a->description : "");
        snprintf(c->request_ids[i], sizeof c->request_ids[i], "%s", a->request_id);
        snprintf(c->correlation_ids[i], sizeof c->correlation_ids[i], "%s", a->correlation_id);
        c->had_snapshot[i] = a->snapshot != NULL;
        c->n_snapshot_items[i] = a->snapshot ? a->snapshot->n_items : 0;
        c->answers[i].snapshot = NULL;
        if (c->done == c->n_targets)
                uv_stop(&c->loop);
}

/* Polls one after the other, so that the answers come back in target order. */
static bool on_pull(void *userdata, uint64_t now, uint64_t *ret_wake) {
        Ctx *c = userdata;
        if (c->next_target >= c->n_targets || c->next_target > c->done)
                return false;
        assert_int_equal(poller_start(c->poller, &c->targets[c->next_target++], on_done, NULL, c, NULL), 0);
        return true;
}

static void on_auth(void *userdata) {
        Ctx *c = userdata;
        if (c->client)
                pc_client_kick(c->client);
}

static void ctx_init(Ctx *c) {
        *c = (Ctx) {};
        assert_int_equal(uv_loop_init(&c->loop), 0);
        c->endpoint = strdup_printf("http://127.0.0.1:%d", sim.port);
        c->token_endpoint = strdup_printf("http://127.0.0.1:%d/tenant1/oauth2/token", sim.port);
        c->state = strdup_printf("%s/state-XXXXXX", sim.dir);
        assert_non_null(mkdtemp(c->state));
        c->terminal[0] = (char *) "fulfilled";
        c->terminal[1] = (char *) "unfulfilled";
        c->config = (Config) {
                .endpoint = c->endpoint,
                .api_version = (char *) "1",
                .auth = AUTH_REFRESH_TOKEN,
                .tenant_id = (char *) "tenant1",
                .client_id = (char *) "test-client",
                .client_secret = (char *) "test-secret",
                .refresh_token = (char *) "initial-refresh-token",
                .token_endpoint = c->token_endpoint,
                .resource = (char *) "https://api.partnercenter.microsoft.com",
                .timeout_usec = 5 * USEC_PER_SEC,
                .locale = (char *) "de-DE",
                .terminal_statuses = c->terminal,
                .concurrency = 4,
        };
        assert_int_equal(store_open(c->state, STORE_READ_WRITE, &c->store), 0);
        assert_int_equal(http_new(&c->loop, &c->http), 0);
        assert_int_equal(auth_new(&c->loop, c->http, c->store, &c->config, &c->metrics, on_auth, c, &c->auth), 0);
        assert_int_equal(pc_client_new(&c->loop, c->http, c->auth, &c->config, &c->metrics, on_pull, NULL, c, &c->client), 0);
        assert_int_equal(poller_new(c->client, &c->config, &c->poller), 0);
        uv_timer_init(&c->loop, &c->deadline);
}

static void ctx_add(Ctx *c, const char *order, const char *request_id, const uint8_t *digest) {
        c->targets[c->n_targets++] = (PollTarget) {
                .customer_id = "c1",
                .order_id = order,
                .request_id = request_id,
                .known_digest = digest,
        };
}

static void ctx_run(Ctx *c) {
        uv_timer_start(&c->deadline, on_deadline, 20000, 0);
        pc_client_kick(c->client);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_timer_stop(&c->deadline);
        assert_int_equal(c->done, c->n_targets);
}

static void ctx_done(Ctx *c) {
        poller_free(c->poller);
        pc_client_free(c->client);
        auth_free(c->auth);
        http_free(c->http);
        uv_close((uv_handle_t *) &c->deadline, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&c->loop), 0);
        store_free(c->store);
        metrics_done(&c->metrics);
        free(c->endpoint);
        free(c->token_endpoint);
        free(c->state);
}

#define SKIP_WITHOUT_SIM() \
        do { \
                if (sim.pid <= 0) \
                        skip(); \
        } while (0)

static void test_answers(void **state) {
        SKIP_WITHOUT_SIM();
        Ctx c;
        ctx_init(&c);
        control_void("DELETE", "fault", NULL);
        int64_t mark = requests_mark();
        control_void("POST", "fault", "{\"kind\": \"status\", \"status\": 503, \"order\": \"three\", \"count\": 1}");
        control_void("POST", "fault", "{\"kind\": \"malformed\", \"order\": \"three\", \"count\": 1}");
        control_void("POST", "fault", "{\"kind\": \"429\", \"retry_after\": 1, \"order\": \"three\", \"count\": 1}");
        ctx_add(&c, "one", "0a1b2c3d-0000-4000-8000-000000000001", NULL);
        ctx_add(&c, "missing", NULL, NULL);
        ctx_add(&c, "three", NULL, NULL); /* 503 */
        ctx_add(&c, "three", NULL, NULL); /* malformed */
        ctx_add(&c, "three", NULL, NULL); /* 429 */
        ctx_add(&c, "three", NULL, NULL);
        ctx_run(&c);

        /* ok, one page */
        assert_int_equal(c.answers[0].outcome, POLL_OUTCOME_OK);
        assert_true(c.had_snapshot[0]);
        assert_int_equal(c.n_snapshot_items[0], 2);
        assert_true(c.answers[0].has_digest);
        assert_string_equal(c.request_ids[0], "0a1b2c3d-0000-4000-8000-000000000001");
        /* 404 */
        assert_int_equal(c.answers[1].outcome, POLL_OUTCOME_NOT_FOUND);
        assert_int_equal(c.answers[1].http_status, 404);
        assert_string_equal(c.codes[1], "20000");
        assert_string_equal(c.descriptions[1], "Order ID not found");
        /* 503 */
        assert_int_equal(c.answers[2].outcome, POLL_OUTCOME_FAILED);
        assert_false(c.answers[2].throttled);
        assert_int_equal(c.answers[2].http_status, 503);
        assert_true(strncmp(c.reasons[2], "HTTP 503", 8) == 0);
        /* malformed */
        assert_int_equal(c.answers[3].outcome, POLL_OUTCOME_FAILED);
        assert_true(strncmp(c.reasons[3], "unexpected answer: ", 19) == 0);
        /* 429 */
        assert_true(c.answers[4].throttled);
        assert_int_equal(c.answers[4].http_status, 429);
        assert_int_equal(c.metrics.rate_limited_total, 1);
        /* three line items over one page */
        assert_int_equal(c.answers[5].outcome, POLL_OUTCOME_OK);
        assert_int_equal(c.n_snapshot_items[5], 3);

        /* on the wire: the headers of SPEC §3, a new correlation id every time */
        json_object *owner;
        json_object *list = requests_since(mark, &owner);
        assert_int_equal(json_object_array_length(list), 6);
        for (size_t i = 0; i < 6; i++) {
                json_object *r = json_object_array_get_idx(list, i);
                assert_string_equal(jstr(r, "auth"), "valid");
                assert_string_equal(header(r, "Accept"), "application/json");
                assert_string_equal(header(r, "X-Locale"), "de-DE");
                assert_string_equal(header(r, "User-Agent"), "provwatch/" PROVWATCH_VERSION);
                assert_string_equal(header(r, "MS-RequestId"), c.request_ids[i]);
                assert_string_equal(header(r, "MS-CorrelationId"), c.correlation_ids[i]);
                for (size_t j = 0; j < i; j++)
                        assert_string_not_equal(c.correlation_ids[i], c.correlation_ids[j]);
        }
        json_object_put(owner);
        ctx_done(&c);
}

/* A new context whose first poll (answer 0) is order "one", and that answer's digest. */
static void ctx_init_with_digest(Ctx *c, uint8_t digest[static POLL_DIGEST_SIZE]) {
        ctx_init(c);
        control_void("DELETE", "fault", NULL);
        ctx_add(c, "one", NULL, NULL);
        ctx_run(c);
        assert_true(c->answers[0].has_digest);
        memcpy(digest, c->answers[0].digest, POLL_DIGEST_SIZE);
}

static void test_digest_and_pages(void **state) {
        SKIP_WITHOUT_SIM();
        Ctx c;
        uint8_t digest[POLL_DIGEST_SIZE];
        ctx_init_with_digest(&c, digest);

        /* the same answer again: recognised, not parsed */
        ctx_add(&c, "one", NULL, digest);
        /* a changed answer: parsed */
        ctx_add(&c, "three", NULL, digest);
        c.next_target = 1;
        c.done = 1;
        ctx_run(&c);
        assert_int_equal(c.answers[1].outcome, POLL_OUTCOME_OK);
        assert_false(c.had_snapshot[1]);
        assert_int_equal(memcmp(c.answers[1].digest, digest, sizeof digest), 0);
        assert_true(c.had_snapshot[2]);

        /* three pages, the continuation headers sent back; a multi-page answer is not remembered */
        int64_t mark = requests_mark();
        control_void("POST", "fault", "{\"kind\": \"paginate\", \"page_size\": 1, \"order\": \"three\"}");
        ctx_add(&c, "three", NULL, NULL);
        ctx_run(&c);
        assert_int_equal(c.answers[3].outcome, POLL_OUTCOME_OK);
        assert_int_equal(c.n_snapshot_items[3], 3);
        assert_false(c.answers[3].has_digest);
        json_object *owner;
        json_object *list = requests_since(mark, &owner);
        assert_int_equal(json_object_array_length(list), 3);
        assert_null(header(json_object_array_get_idx(list, 0), "MS-ContinuationToken"));
        for (size_t i = 1; i < 3; i++) {
                json_object *r = json_object_array_get_idx(list, i);
                assert_non_null(header(r, "MS-ContinuationToken"));
                assert_int_equal(jint(r, "status"), 200);
                assert_string_equal(header(r, "MS-RequestId"), c.request_ids[3]);
        }
        json_object_put(owner);

        /* every header a next link names is sent back, not only the first nine: the simulator
         * answers 400 to a next page without all twelve X-Page-Extra-n and its token */
        control_void("DELETE", "fault", NULL);
        control_void("POST", "fault",
                     "{\"kind\": \"paginate\", \"page_size\": 1, \"extra_headers\": 12, \"order\": \"three\"}");
        ctx_add(&c, "three", NULL, NULL);
        ctx_run(&c);
        assert_int_equal(c.answers[4].outcome, POLL_OUTCOME_OK);
        assert_int_equal(c.n_snapshot_items[4], 3);
        control_void("DELETE", "fault", NULL);
        ctx_done(&c);
}

/* The digest covers the terminal statuses: a reload that changes them makes the same answer new (parsed
 * and judged again); changed back, the digest is the first one again. */
static void test_digest_follows_terminal_statuses(void **state) {
        SKIP_WITHOUT_SIM();
        Ctx c;
        uint8_t digest[POLL_DIGEST_SIZE];
        ctx_init_with_digest(&c, digest);

        Config changed = c.config;
        char *terminal[] = { (char *) "fulfilled", NULL };
        changed.terminal_statuses = terminal;
        poller_set_config(c.poller, &changed);
        ctx_add(&c, "one", NULL, digest);
        ctx_run(&c);
        assert_int_equal(c.answers[1].outcome, POLL_OUTCOME_OK);
        assert_true(c.answers[1].has_digest);
        assert_int_not_equal(memcmp(c.answers[1].digest, digest, sizeof digest), 0);
        assert_true(c.had_snapshot[1]);

        poller_set_config(c.poller, &c.config);
        ctx_add(&c, "one", NULL, digest);
        ctx_run(&c);
        assert_int_equal(c.answers[2].outcome, POLL_OUTCOME_OK);
        assert_int_equal(memcmp(c.answers[2].digest, digest, sizeof digest), 0);
        assert_false(c.had_snapshot[2]);
        ctx_done(&c);
}

static void test_401_renews_the_token_once(void **state) {
        SKIP_WITHOUT_SIM();
        Ctx c;
        ctx_init(&c);
        control_void("DELETE", "fault", NULL);
        ctx_add(&c, "one", NULL, NULL);
        ctx_run(&c);
        int64_t mark = requests_mark();
        control_void("POST", "tokens/expire", "{}");
        ctx_add(&c, "one", NULL, NULL);
        ctx_run(&c);
        assert_int_equal(c.answers[1].outcome, POLL_OUTCOME_OK);
        json_object *owner;
        json_object *list = requests_since(mark, &owner);
        assert_int_equal(json_object_array_length(list), 2);
        assert_int_equal(jint(json_object_array_get_idx(list, 0), "status"), 401);
        assert_int_equal(jint(json_object_array_get_idx(list, 1), "status"), 200);
        /* one logical request: the retry keeps its MS-RequestId */
        assert_string_equal(header(json_object_array_get_idx(list, 0), "MS-RequestId"),
                            header(json_object_array_get_idx(list, 1), "MS-RequestId"));
        json_object_put(owner);
        assert_int_equal(c.metrics.token_refreshes_ok, 2);

        /* a 401 that a new token does not cure is the poll's failure */
        control_void("POST", "fault", "{\"kind\": \"status\", \"status\": 401, \"count\": 2}");
        ctx_add(&c, "one", NULL, NULL);
        ctx_run(&c);
        assert_int_equal(c.answers[2].outcome, POLL_OUTCOME_FAILED);
        assert_int_equal(c.answers[2].http_status, 401);
        control_void("DELETE", "fault", NULL);
        ctx_done(&c);
}

static void count_abandoned(void *userdata) {
        (*(unsigned *) userdata)++;
}

static void on_never(PollAnswer *a, void *userdata) {
        fail_msg("a poll abandoned at once must not complete");
}

/* Polls abandoned with the poller (a shutdown with requests in flight) give their userdata back. */
static void test_abandon(void **state) {
        SKIP_WITHOUT_SIM();
        Ctx c;
        ctx_init(&c);
        unsigned abandoned = 0;
        PollTarget t = { .customer_id = "c1", .order_id = "one" };
        Poll *p1 = NULL, *p2 = NULL;
        assert_int_equal(poller_start(c.poller, &t, on_never, count_abandoned, &abandoned, &p1), 0);
        assert_int_equal(poller_start(c.poller, &t, on_never, count_abandoned, &abandoned, &p2), 0);
        poll_cancel(p1);
        assert_int_equal(abandoned, 1);
        c.poller = poller_free(c.poller);
        assert_int_equal(abandoned, 2);
        ctx_done(&c);
}

static int group_setup(void **state) {
        if (http_global_init() < 0)
                return -1;
        if (sim_start() < 0)
                fprintf(stderr, "python3 or pcsim.py missing: the poller tests are skipped\n");
        return 0;
}

static int group_teardown(void **state) {
        sim_stop();
        http_global_cleanup();
        return 0;
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_answers),
                cmocka_unit_test(test_digest_and_pages),
                cmocka_unit_test(test_digest_follows_terminal_statuses),
                cmocka_unit_test(test_401_renews_the_token_once),
                cmocka_unit_test(test_abandon),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
