/* SPDX-License-Identifier: MIT */
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "alloc-util.h"
#include "auth.h"
#include "json-util.h"
#include "log.h"
#include "metrics.h"
#include "partner-center.h"

#define KV_REFRESH_TOKEN "refresh-token"
#define KV_AUTH_STATE "auth-state"
#define DESCRIPTION_MAX 300
#define KV_REFRESH_TOKEN_SOURCE "refresh-token-source"
#define RETRY_MIN_USEC (2 * USEC_PER_SEC)
#define RETRY_MAX_USEC (300 * USEC_PER_SEC)

struct Auth {
        uv_loop_t *loop;
        Http *http;
        Store *store;
        const Config *config;
        Metrics *metrics;
        AuthChangedFn changed;
        void *userdata;

        char *access_token;
        uint64_t expires_usec; /* monotonic; USEC_INFINITY for token files */
        uint64_t ttl_usec;
        char *refresh_token;   /* the one to redeem next */

        HttpRequest *request; /* token request in flight */
        uv_timer_t timer;     /* renewal ahead of expiry, or retry after a failure */
        bool timer_armed;
        uint64_t retry_usec;
        char problem[256];

        /* auth = token-file */
        struct timespec token_file_mtime;
        uint64_t token_file_checked_msec; /* uv_now() of the last stat() */
        bool token_file_rejected;

        /* alerts (SPEC §9): failures in a row, since when, and whether auth.failed is out */
        unsigned failures;
        uint64_t failing_since; /* realtime */
        bool alerted;
        AuthAlertFn alert;
        void *alert_userdata;
};

/* One failure to obtain a token, as auth.failed reports it. */
typedef struct Failure {
        long http_status;
        const char *error;
        const int64_t *error_codes;
        size_t n_error_codes;
        const char *description;
        bool permanent; /* the grant is refused for good: waiting does not help */
} Failure;

static void auth_acquire(Auth *a);

static void set_problem(Auth *a, const char *fmt, ...) _printf_(2, 3);
static void set_problem(Auth *a, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(a->problem, sizeof a->problem, fmt, ap);
        va_end(ap);
}


static int source_digest(const char *configured, char hex[static 65]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_Digest(configured, strlen(configured), md, &len, EVP_sha256(), NULL) != 1)
                return -EIO;
        for (unsigned i = 0; i < len && i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
        return 0;
}

/* The newest (rotated) token wins over the configured one, until the configured one changes:
 * the store remembers a digest of the configured token its rotation started from. */
int auth_pick_refresh_token(Store *store, const char *configured, char **ret, bool *ret_from_store) {
        char hex[65] = "";
        _cleanup_free_ char *source = NULL;
        char *stored = NULL;

        if (configured && source_digest(configured, hex) < 0)
                return -EIO;
        if (store && store_kv_get(store, KV_REFRESH_TOKEN_SOURCE, &source) >= 0 &&
            (!configured || streq(source, hex)) && store_kv_get(store, KV_REFRESH_TOKEN, &stored) >= 0) {
                *ret = stored;
                *ret_from_store = true;
                return 0;
        }
        if (!configured)
                return -ENOENT;
        *ret = strdup(configured);
        if (!*ret)
                return -ENOMEM;
        *ret_from_store = false;
        return 0;
}

static int store_rotated_token(Auth *a, const char *token) {
        char hex[65] = "";
        if (a->config->refresh_token && source_digest(a->config->refresh_token, hex) < 0)
                return -EIO;
        int r = store_begin(a->store);
        if (r < 0)
                return r;
        r = store_kv_set(a->store, KV_REFRESH_TOKEN, token);
        if (r >= 0)
                r = store_kv_set(a->store, KV_REFRESH_TOKEN_SOURCE, hex);
        if (r >= 0)
                r = store_commit(a->store);
        if (r < 0)
                store_rollback(a->store);
        return r;
}

static void arm_timer(Auth *a, uint64_t delay_usec);

static void on_timer(uv_timer_t *t) {
        Auth *a = t->data;
        a->timer_armed = false;
        auth_acquire(a);
}

static void arm_timer(Auth *a, uint64_t delay_usec) {
        uv_timer_start(&a->timer, on_timer, delay_usec / USEC_PER_MSEC, 0);
        a->timer_armed = true;
}

static const char *grant_name(const Auth *a) {
        switch (a->config->auth) {
        case AUTH_REFRESH_TOKEN:
                return "refresh_token";
        case AUTH_CLIENT_CREDENTIALS:
                return "client_credentials";
        default:
                return "token_file";
        }
}

static const char *failure_action(const Auth *a, const Failure *f) {
        if (a->config->auth == AUTH_TOKEN_FILE)
                return "Put a valid access token into token-file: whoever keeps it fresh has stopped or failed.";
        if (f->error && streq(f->error, "invalid_grant"))
                return "Obtain a new refresh token by consent (README: \"When the refresh token dies\") and put it "
                       "into the refresh-token credential and restart provwatch, or into refresh-token-file and "
                       "reload it.";
        if (f->error && streq(f->error, "invalid_client"))
                return "Check client-id and the client secret (credential client-secret or client-secret-file): the "
                       "secret may have expired in Entra ID.";
        if (f->error && streq(f->error, "unauthorized_client"))
                return "Check the app registration in Entra ID: it may not use this grant or lacks consent for "
                       "Partner Center.";
        return "Check that the token endpoint is reachable from this host (network, proxy, TLS) and read the log "
               "lines before this one.";
}

/* Edge-triggered: auth.failed once per episode, auth.recovered when a token comes again. */
static void note_failure(Auth *a, const Failure *f) {
        a->failures++;
        if (a->failing_since == 0)
                a->failing_since = now_realtime_usec();
        if (a->alerted || !a->alert || (!f->permanent && a->failures < a->config->failure_threshold))
                return;
        char description[DESCRIPTION_MAX * 4 + 1] = "";
        if (f->description) {
                /* the first 300 characters (UTF-8 code points, so no character is cut) */
                size_t chars = 0, i = 0;
                for (; f->description[i] && chars < DESCRIPTION_MAX; i++)
                        chars += ((unsigned char) f->description[i] & 0xc0) != 0x80;
                while (((unsigned char) f->description[i] & 0xc0) == 0x80)
                        i++;
                snprintf(description, sizeof description, "%.*s", (int) i, f->description);
        }
        a->alerted = true;
        a->alert(&(AuthAlert) {
                         .failed = true,
                         .grant = grant_name(a),
                         .http_status = f->http_status,
                         .error = f->error,
                         .error_codes = f->error_codes,
                         .n_error_codes = f->n_error_codes,
                         .description = f->description ? description : NULL,
                         .action = failure_action(a, f),
                         .since_usec = a->failing_since,
                 },
                 a->alert_userdata);
}

static void note_success(Auth *a) {
        bool was = a->alerted;
        uint64_t since = a->failing_since;
        a->failures = 0;
        a->failing_since = 0;
        a->alerted = false;
        if (was && a->alert)
                a->alert(&(AuthAlert) { .failed = false, .grant = grant_name(a), .since_usec = since },
                         a->alert_userdata);
}

void auth_alert_not_saved(Auth *a, bool failed) {
        /* the alert's commit failed: say it again at the next chance */
        a->alerted = !failed;
}

void auth_set_alert_callback(Auth *a, AuthAlertFn fn, void *userdata) {
        a->alert = fn;
        a->alert_userdata = userdata;
}

static void fail_and_retry(Auth *a, const Failure *f) {
        a->metrics->token_refreshes_error++;
        if (f)
                note_failure(a, f);
        a->retry_usec = a->retry_usec ? a->retry_usec * 2 : RETRY_MIN_USEC;
        if (a->retry_usec > RETRY_MAX_USEC)
                a->retry_usec = RETRY_MAX_USEC;
        uint64_t delay = (uint64_t) ((double) a->retry_usec * (0.8 + 0.4 * random_unit()));
        log_debug("Retrying token acquisition in %llu ms.", (unsigned long long) (delay / USEC_PER_MSEC));
        arm_timer(a, delay);
        if (a->changed)
                a->changed(a->userdata);
}

static void on_token_answer(const HttpResponse *resp, void *userdata) {
        Auth *a = userdata;
        TokenResponse t = {};
        const char *reason = NULL;

        a->request = NULL;
        if (resp->result != HTTP_OK) {
                set_problem(a, "token endpoint unreachable: %s", resp->error);
                log_error("Cannot obtain an access token: token endpoint %s unreachable: %s",
                          a->config->token_endpoint, resp->error);
                fail_and_retry(a, &(Failure) { .error = "unreachable", .description = resp->error });
                return;
        }
        int r = pc_parse_token_response(resp->body, resp->body_size, &t, &reason);
        if (r < 0 || (resp->status / 100 != 2 && !t.error)) {
                set_problem(a, "token endpoint answered HTTP %ld with an unexpected body", resp->status);
                log_error("Cannot obtain an access token: token endpoint %s answered HTTP %ld: %s.",
                          a->config->token_endpoint, resp->status, r < 0 ? reason : "not a token answer");
                token_response_done(&t);
                fail_and_retry(a, &(Failure) { .http_status = resp->status, .error = "unexpected_answer",
                                               .description = r < 0 ? reason : "not a token answer" });
                return;
        }
        if (t.error || resp->status / 100 != 2) {
                set_problem(a, "token endpoint refused: %s", t.error ? t.error : "error");
                if (t.error && streq(t.error, "invalid_grant"))
                        log_error("The token endpoint rejected the refresh token (invalid_grant: %s). Obtain a "
                                  "new one by consent and put it into the refresh-token credential or "
                                  "refresh-token-file.",
                                  t.error_description ? t.error_description : "no description");
                else
                        log_error("Cannot obtain an access token: token endpoint %s answered HTTP %ld, %s: %s",
                                  a->config->token_endpoint, resp->status, t.error ? t.error : "error",
                                  t.error_description ? t.error_description : "no description");
                bool permanent = t.error && (streq(t.error, "invalid_grant") || streq(t.error, "invalid_client") ||
                                             streq(t.error, "unauthorized_client"));
                fail_and_retry(a, &(Failure) { .http_status = resp->status, .error = t.error ?: "error",
                                               .error_codes = t.error_codes, .n_error_codes = t.n_error_codes,
                                               .description = t.error_description, .permanent = permanent });
                token_response_done(&t);
                return;
        }

        if (t.refresh_token && a->config->auth == AUTH_REFRESH_TOKEN) {
                r = store_rotated_token(a, t.refresh_token);
                if (r < 0) {
                        /* The rotated token must be durable before anything relies on it. */
                        set_problem(a, "cannot save the rotated refresh token");
                        log_error_errno(r, "Cannot save the rotated refresh token in %s: %s; retrying.",
                                        store_path(a->store), store_error(a->store));
                        erase_and_free_string(a->refresh_token);
                        a->refresh_token = TAKE_PTR(t.refresh_token);
                        token_response_done(&t);
                        fail_and_retry(a, NULL); /* the store's trouble, not the token endpoint's */
                        return;
                }
                erase_and_free_string(a->refresh_token);
                a->refresh_token = TAKE_PTR(t.refresh_token);
        }

        erase_and_free_string(a->access_token);
        a->access_token = TAKE_PTR(t.access_token);
        uint64_t ttl = t.expires_in_usec;
        a->expires_usec = now_monotonic_usec() + ttl;
        a->ttl_usec = ttl;
        a->retry_usec = 0;
        a->problem[0] = 0;
        a->metrics->token_refreshes_ok++;
        note_success(a);
        token_response_done(&t);

        /* Renew when a tenth of the lifetime is left (at least a minute, at most half of it). */
        uint64_t margin = ttl / 10;
        if (margin < 60 * USEC_PER_SEC)
                margin = 60 * USEC_PER_SEC;
        if (margin > ttl / 2)
                margin = ttl / 2;
        arm_timer(a, ttl - margin);
        log_debug("Access token acquired, valid for %llu s.", (unsigned long long) (ttl / USEC_PER_SEC));
        if (a->changed)
                a->changed(a->userdata);
}

static void auth_acquire(Auth *a) {
        const Config *c = a->config;
        if (a->request || c->auth == AUTH_TOKEN_FILE)
                return;
        if (a->timer_armed) {
                uv_timer_stop(&a->timer);
                a->timer_armed = false;
        }

        _cleanup_free_ char *body = NULL;
        if (c->auth == AUTH_REFRESH_TOKEN)
                body = pc_token_request_body("refresh_token", a->refresh_token, c->client_id, c->client_secret,
                                             c->resource);
        else
                body = pc_token_request_body("client_credentials", NULL, c->client_id, c->client_secret,
                                             c->resource);
        if (!body) {
                log_oom();
                fail_and_retry(a, NULL);
                return;
        }
        static const char *const headers[] = {
                "Content-Type: application/x-www-form-urlencoded",
                "Accept: application/json",
                "User-Agent: provwatch/" PROVWATCH_VERSION,
                NULL,
        };
        HttpRequestSpec spec = {
                .method = "POST",
                .url = c->token_endpoint,
                .headers = headers,
                .body = body,
                .body_size = strlen(body),
                .timeout_usec = c->timeout_usec,
                .ca_file = c->ca_file,
                .max_body = 1024 * 1024,
                .sensitive = true,
        };
        int r = http_submit(a->http, &spec, on_token_answer, a, &a->request);
        explicit_bzero(body, strlen(body));
        if (r < 0) {
                log_error_errno(r, "Cannot start a token request: %m");
                fail_and_retry(a, NULL);
        }
}

static const char *token_file_current(Auth *a) {
        /* Every request asks for the token: a stat() each time showed in every profile. A new token
         * in the file is picked up within a second (the loop's time, read once per iteration). */
        uint64_t now = uv_now(a->loop);
        if (a->access_token && !a->token_file_rejected && !isempty(a->access_token) &&
            now < a->token_file_checked_msec + 1000)
                return a->access_token;
        a->token_file_checked_msec = now;
        struct stat st;
        if (stat(a->config->token_file, &st) < 0) {
                if (!streq(a->problem, "token file unreadable")) { /* once, not at every look */
                        int e = errno;
                        log_error_errno(e, "Cannot read token-file '%s': %m", a->config->token_file);
                        note_failure(a, &(Failure) { .error = "unreadable", .description = strerror(e), .permanent = true });
                }
                set_problem(a, "token file unreadable");
                return NULL;
        }
        bool changed = st.st_mtim.tv_sec != a->token_file_mtime.tv_sec ||
                       st.st_mtim.tv_nsec != a->token_file_mtime.tv_nsec;
        if (changed || !a->access_token) {
                char *text = NULL;
                int r = read_full_file(a->config->token_file, 64 * 1024, &text, NULL);
                if (r < 0) {
                        if (!streq(a->problem, "token file unreadable")) {
                                log_error_errno(r, "Cannot read token-file '%s': %m", a->config->token_file);
                                note_failure(a, &(Failure) { .error = "unreadable", .description = strerror(-r),
                                                             .permanent = true });
                        }
                        set_problem(a, "token file unreadable");
                        return NULL;
                }
                text[strcspn(text, "\r\n")] = 0;
                erase_and_free_string(a->access_token);
                a->access_token = text;
                a->token_file_mtime = st.st_mtim;
                a->token_file_rejected = false;
                a->problem[0] = 0;
                if (!isempty(text))
                        note_success(a);
        }
        if (a->token_file_rejected || isempty(a->access_token)) {
                set_problem(a, "token in token-file rejected; waiting for it to change");
                return NULL;
        }
        return a->access_token;
}

const char *auth_token(Auth *a) {
        if (a->config->auth == AUTH_TOKEN_FILE)
                return token_file_current(a);
        /* a token about to expire is not handed out: a request must not outlive it */
        uint64_t slack = a->ttl_usec / 4 < 5 * USEC_PER_SEC ? a->ttl_usec / 4 : 5 * USEC_PER_SEC;
        if (a->access_token && now_monotonic_usec() + slack < a->expires_usec)
                return a->access_token;
        if (!a->timer_armed || a->retry_usec == 0)
                auth_acquire(a);
        return NULL;
}

void auth_reject(Auth *a, const char *token) {
        if (!a->access_token || !token || !streq(a->access_token, token))
                return; /* already replaced */
        if (a->config->auth == AUTH_TOKEN_FILE) {
                a->token_file_rejected = true;
                log_warning("Partner Center rejected the token in '%s' (HTTP 401); waiting for it to change.",
                            a->config->token_file);
                note_failure(a, &(Failure) { .http_status = 401, .error = "rejected",
                                             .description = "Partner Center answered HTTP 401 to the token",
                                             .permanent = true });
                return;
        }
        erase_and_free_string(a->access_token);
        a->access_token = NULL;
        a->retry_usec = 0;
        auth_acquire(a);
}

const char *auth_problem(Auth *a) {
        return a->problem[0] ? a->problem : NULL;
}

static void timer_closed(uv_handle_t *h) {
        free(h->data);
}

void auth_set_config(Auth *a, const Config *config) {
        bool source_changed = !streq_ptr(a->config->refresh_token, config->refresh_token) ||
                              !streq_ptr(a->config->client_id, config->client_id) ||
                              !streq_ptr(a->config->client_secret, config->client_secret) ||
                              !streq_ptr(a->config->token_endpoint, config->token_endpoint) ||
                              a->config->auth != config->auth;
        a->config = config;
        if (!source_changed)
                return;
        if (config->auth == AUTH_REFRESH_TOKEN) {
                char *t = NULL;
                bool from_store;
                if (auth_pick_refresh_token(a->store, config->refresh_token, &t, &from_store) >= 0) {
                        erase_and_free_string(a->refresh_token);
                        a->refresh_token = t;
                }
        }
        if (a->request) {
                http_cancel(a->http, a->request);
                a->request = NULL;
        }
        erase_and_free_string(a->access_token);
        a->access_token = NULL;
        memset(&a->token_file_mtime, 0, sizeof a->token_file_mtime);
        a->retry_usec = 0;
}

int auth_new(uv_loop_t *loop, Http *http, Store *store, const Config *config, Metrics *metrics,
             AuthChangedFn changed, void *userdata, Auth **ret) {
        Auth *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->loop = loop;
        a->http = http;
        a->store = store;
        a->config = config;
        a->metrics = metrics;
        a->changed = changed;
        a->userdata = userdata;
        if (config->auth == AUTH_REFRESH_TOKEN) {
                bool from_store = false;
                int r = auth_pick_refresh_token(store, config->refresh_token, &a->refresh_token, &from_store);
                if (r < 0) {
                        free(a);
                        return r;
                }
                log_debug("Using the %s refresh token.", from_store ? "stored (rotated)" : "configured");
        }
        /* an alert out before a restart stays out: no second auth.failed, and a recovery is said */
        _cleanup_free_ char *state = NULL;
        if (store && store_kv_get(store, KV_AUTH_STATE, &state) >= 0) {
                AuthState st = {};
                if (auth_state_parse(state, &st) >= 0 && st.failing) {
                        a->alerted = true;
                        a->failing_since = st.since_usec;
                }
                auth_state_done(&st);
        }
        uv_timer_init(loop, &a->timer);
        a->timer.data = a;
        *ret = a;
        return 0;
}

Auth *auth_free(Auth *a) {
        if (!a)
                return NULL;
        if (a->request)
                http_cancel(a->http, a->request);
        erase_and_free_string(a->access_token);
        erase_and_free_string(a->refresh_token);
        uv_timer_stop(&a->timer);
        uv_close((uv_handle_t *) &a->timer, timer_closed);
        return NULL;
}

/* ---- the persisted state: what `provwatch status` shows and a restart remembers ---- */

char *auth_state_format(const AuthAlert *alert) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o || json_add(o, "failing", json_object_new_boolean(alert->failed)) < 0 ||
            json_add(o, "since", json_object_new_int64((int64_t) alert->since_usec)) < 0 ||
            (alert->error && json_add(o, "error", json_object_new_string(alert->error)) < 0) ||
            (alert->description && json_add(o, "description", json_object_new_string(alert->description)) < 0))
                return NULL;
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        return s ? strdup(s) : NULL;
}

int auth_state_parse(const char *text, AuthState *ret) {
        _cleanup_(json_object_putp) json_object *o = json_tokener_parse(text);
        json_object *failing = json_get(o, "failing");
        int64_t since = 0;
        if (!json_object_is_type(failing, json_type_boolean))
                return -EBADMSG;
        (void) json_get_int64(json_get(o, "since"), &since);
        const char *error = json_get_cstring(json_get(o, "error")), *desc = json_get_cstring(json_get(o, "description"));
        *ret = (AuthState) {
                .failing = json_object_get_boolean(failing),
                .since_usec = since > 0 ? (uint64_t) since : 0,
                .error = error ? strdup(error) : NULL,
                .description = desc ? strdup(desc) : NULL,
        };
        return 0;
}

void auth_state_done(AuthState *s) {
        free(s->error);
        free(s->description);
        *s = (AuthState) {};
}

int auth_state_save(Store *store, const AuthAlert *alert) {
        _cleanup_free_ char *state = auth_state_format(alert);
        return state ? store_kv_set(store, KV_AUTH_STATE, state) : -ENOMEM;
}

int auth_state_load(Store *store, AuthState *ret) {
        _cleanup_free_ char *text = NULL;
        int r = store_kv_get(store, KV_AUTH_STATE, &text);
        if (r == -ENOENT) {
                *ret = (AuthState) {};
                return 0;
        }
        return r < 0 ? r : auth_state_parse(text, ret);
}
