/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "alloc-util.h"
#include "log.h"
#include "partner-center.h"
#include "pc-client.h"
#include "strv.h"

#define TOKEN_FILE_RECHECK_MSEC 1000
#define USER_AGENT "User-Agent: provwatch/" PROVWATCH_VERSION

struct PcCall {
        PcClient *client;
        char *url;
        char **headers; /* of the next request: a continuation's */
        char request_id[37];
        char correlation_id[37];
        char *token; /* sent with the request in flight, to tell auth which one a 401 refused */
        HttpRequest *request;
        unsigned page;
        bool retried_401;
        bool ready;
        uint64_t start_usec;
        PcAnswerFn fn;
        void *userdata;
        PcCall *prev, *next;             /* every call */
        PcCall *ready_prev, *ready_next; /* waiting for the gate */
};

struct PcClient {
        uv_loop_t *loop;
        Http *http;
        Auth *auth;
        const Config *config;
        Metrics *metrics;
        PcPullFn pull;
        PcNoTokenFn no_token;
        void *userdata;

        Budget budget;
        PcCall *calls;
        PcCall *ready_head, *ready_tail;
        size_t in_flight;
        uv_timer_t *timer; /* its own allocation: it outlives the client until its close callback */
        bool stopped, dispatching, again;
};

static void dispatch(PcClient *c);

static void ready_unlink(PcClient *c, PcCall *call) {
        if (!call->ready)
                return;
        if (call->ready_prev)
                call->ready_prev->ready_next = call->ready_next;
        else
                c->ready_head = call->ready_next;
        if (call->ready_next)
                call->ready_next->ready_prev = call->ready_prev;
        else
                c->ready_tail = call->ready_prev;
        call->ready_prev = call->ready_next = NULL;
        call->ready = false;
}

static void ready_push(PcClient *c, PcCall *call, bool front) {
        ready_unlink(c, call);
        call->ready = true;
        if (front) {
                call->ready_next = c->ready_head;
                if (c->ready_head)
                        c->ready_head->ready_prev = call;
                else
                        c->ready_tail = call;
                c->ready_head = call;
        } else {
                call->ready_prev = c->ready_tail;
                if (c->ready_tail)
                        c->ready_tail->ready_next = call;
                else
                        c->ready_head = call;
                c->ready_tail = call;
        }
}

void pc_call_free(PcCall *call) {
        if (!call)
                return;
        PcClient *c = call->client;
        ready_unlink(c, call);
        if (call->request) {
                http_cancel(c->http, call->request);
                c->in_flight--;
        }
        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        free(call->url);
        strv_free(call->headers);
        erase_and_free_string(call->token);
        free(call);
}

const char *pc_call_request_id(const PcCall *call) {
        return call->request_id;
}

int pc_call_new(PcClient *c, const char *url, const char *request_id, PcAnswerFn fn, void *userdata,
                PcCall **ret) {
        PcCall *call = calloc(1, sizeof *call);
        if (!call)
                return -ENOMEM;
        call->client = c;
        call->fn = fn;
        call->userdata = userdata;
        call->page = 1;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        call->url = strdup(url);
        if (!call->url) {
                pc_call_free(call);
                return -ENOMEM;
        }
        if (request_id)
                snprintf(call->request_id, sizeof call->request_id, "%s", request_id);
        else {
                int r = uuid_random(call->request_id);
                if (r < 0) {
                        pc_call_free(call);
                        return r;
                }
        }
        ready_push(c, call, false);
        *ret = call;
        return 0;
}

int pc_call_next_page(PcCall *call, const char *uri, char **headers) {
        PcClient *c = call->client;
        char *url = strdup_printf("%s/v%s%s", c->config->endpoint, c->config->api_version, uri);
        if (!url)
                return -ENOMEM;
        free(call->url);
        call->url = url;
        strv_free(call->headers);
        call->headers = headers;
        call->retried_401 = false;
        call->page++;
        ready_push(c, call, false);
        return 0;
}

static void answer(PcCall *call, const HttpResponse *resp, const char *ms_cv) {
        PcAnswer a = {
                .status = resp->status,
                .result = resp->result,
                .error = resp->error,
                .body = resp->body ? resp->body : "",
                .body_size = resp->body_size,
                .retry_after_sec = resp->retry_after_sec,
                .correlation_id = call->correlation_id,
                .request_id = call->request_id,
                .ms_cv = ms_cv,
                .page = call->page,
                .duration_usec = call->start_usec ? now_monotonic_usec() - call->start_usec : 0,
        };
        call->fn(call, &a, call->userdata);
}

static void throttle(PcClient *c, uint64_t now, int64_t retry_after_sec) {
        c->metrics->rate_limited_total++;
        if (!budget_throttle(&c->budget, now, retry_after_sec > 0 ? (uint64_t) retry_after_sec * USEC_PER_SEC : 0))
                return; /* part of a pause already under way: said once */
        log_warning("Partner Center throttles requests (HTTP 429); pausing all polls for %llu s.",
                    (unsigned long long) ((c->budget.paused_until - now + USEC_PER_SEC - 1) / USEC_PER_SEC));
}

static void on_answer(const HttpResponse *resp, void *userdata) {
        PcCall *call = userdata;
        PcClient *c = call->client;
        uint64_t now = now_monotonic_usec();

        call->request = NULL;
        c->in_flight--;
        metrics_count_http(c->metrics, resp->result == HTTP_OK ? resp->status : 0);
        if (resp->result == HTTP_OK && resp->status != 429)
                budget_success(&c->budget, now);

        if (resp->result == HTTP_OK && resp->status == 401 && !call->retried_401) {
                /* a token revoked or expired early: one new token, then the same request again */
                auth_reject(c->auth, call->token);
                call->retried_401 = true;
                ready_push(c, call, true);
        } else {
                if (resp->result == HTTP_OK && resp->status == 429)
                        throttle(c, now, resp->retry_after_sec);
                answer(call, resp, resp->captured_header); /* may free call */
        }
        dispatch(c);
}

static int call_send(PcCall *call, const char *token) {
        PcClient *c = call->client;
        size_t n_extra = 0;
        int r;

        for (char **h = call->headers; h && *h; h++)
                n_extra++;
        r = uuid_random(call->correlation_id);
        if (r < 0)
                return r;
        /* http_submit() copies the header lines: those of a fixed size are put together on the stack */
        char corr[sizeof "MS-CorrelationId: " + 36], reqid[sizeof "MS-RequestId: " + 36];
        snprintf(corr, sizeof corr, "MS-CorrelationId: %s", call->correlation_id);
        snprintf(reqid, sizeof reqid, "MS-RequestId: %s", call->request_id);
        _cleanup_free_ char *locale = strdup_printf("X-Locale: %s", c->config->locale);
        const char *fixed[7 + 4], **headers = fixed;
        _cleanup_free_ const char **many = NULL;
        if (n_extra > 4) {
                headers = many = calloc(n_extra + 7, sizeof *headers);
                if (!many)
                        return -ENOMEM;
        }
        char *auth = strdup_printf("Authorization: Bearer %s", token);
        char *t = strdup(token);
        if (!locale || !auth || !t) {
                erase_and_free_string(auth);
                erase_and_free_string(t);
                return -ENOMEM;
        }
        size_t n = 0;
        headers[n++] = auth;
        headers[n++] = "Accept: application/json";
        headers[n++] = corr;
        headers[n++] = reqid;
        headers[n++] = locale;
        headers[n++] = USER_AGENT;
        for (size_t i = 0; i < n_extra; i++)
                headers[n++] = call->headers[i];
        headers[n] = NULL;

        HttpRequestSpec spec = {
                .method = "GET",
                .url = call->url,
                .headers = headers,
                .timeout_usec = c->config->timeout_usec,
                .ca_file = c->config->ca_file,
                .max_body = PC_MAX_BODY,
                .sensitive = true, /* the bearer token */
                .public_answer = true,
                .capture_header = "MS-CV",
        };
        r = http_submit(c->http, &spec, on_answer, call, &call->request);
        erase_and_free_string(auth);
        if (r < 0) {
                erase_and_free_string(t);
                return r;
        }
        erase_and_free_string(call->token);
        call->token = t;
        uint64_t now = now_monotonic_usec();
        if (!call->start_usec)
                call->start_usec = now;
        c->in_flight++;
        budget_record(&c->budget, now);
        log_debug("GET %s (MS-RequestId %s)", call->url, call->request_id);
        return 0;
}

static void on_timer(uv_timer_t *t) {
        dispatch(t->data);
}

static void arm(PcClient *c, uint64_t delay_usec) {
        uv_timer_start(c->timer, on_timer, (delay_usec + USEC_PER_MSEC - 1) / USEC_PER_MSEC, 0);
}

static void dispatch_pass(PcClient *c) {
        uv_timer_stop(c->timer);
        while (!c->stopped && c->in_flight < c->config->concurrency) {
                uint64_t now = now_monotonic_usec();
                uint64_t slot = budget_next_slot(&c->budget, now);
                if (slot > now) {
                        arm(c, slot - now);
                        return;
                }
                const char *token = auth_token(c->auth);
                if (!token) {
                        /* auth calls back when a token is there; nobody calls back for a file */
                        if (c->config->auth == AUTH_TOKEN_FILE)
                                arm(c, TOKEN_FILE_RECHECK_MSEC * USEC_PER_MSEC);
                        const char *problem = auth_problem(c->auth);
                        if (problem && c->no_token)
                                c->no_token(c->userdata, problem);
                        return;
                }
                if (!c->ready_head) {
                        uint64_t wake = USEC_INFINITY;
                        if (!c->pull(c->userdata, now, &wake) || !c->ready_head) {
                                if (wake != USEC_INFINITY)
                                        arm(c, wake > now ? wake - now : 0);
                                return;
                        }
                }
                PcCall *call = c->ready_head;
                ready_unlink(c, call);
                int r = call_send(call, token);
                if (r < 0) {
                        char error[128];
                        snprintf(error, sizeof error, "cannot send the request: %s", strerror(-r));
                        answer(call, &(HttpResponse) { .result = HTTP_FAILED, .error = error, .retry_after_sec = -1 },
                               NULL);
                }
        }
}

/* Answers and pulls may kick the client from inside a pass: one pass runs at a time, and runs again. */
static void dispatch(PcClient *c) {
        if (c->dispatching) {
                c->again = true;
                return;
        }
        c->dispatching = true;
        do {
                c->again = false;
                dispatch_pass(c);
        } while (c->again);
        c->dispatching = false;
}

void pc_client_kick(PcClient *c) {
        dispatch(c);
}

void pc_client_stop(PcClient *c) {
        c->stopped = true;
        uv_timer_stop(c->timer);
}

void pc_client_fail_waiting(PcClient *c, const char *reason) {
        while (c->ready_head) {
                PcCall *call = c->ready_head;
                ready_unlink(c, call);
                answer(call, &(HttpResponse) { .result = HTTP_FAILED, .error = reason, .retry_after_sec = -1 }, NULL);
        }
}

size_t pc_client_in_flight(const PcClient *c) {
        return c->in_flight;
}

size_t pc_client_window_count(PcClient *c) {
        return budget_window_count(&c->budget, now_monotonic_usec());
}

int pc_client_set_config(PcClient *c, const Config *config) {
        c->config = config;
        return budget_set_rpm(&c->budget, config->max_requests_per_minute);
}

int pc_client_new(uv_loop_t *loop, Http *http, Auth *auth, const Config *config, Metrics *metrics,
                  PcPullFn pull, PcNoTokenFn no_token, void *userdata, PcClient **ret) {
        PcClient *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (PcClient) {
                .loop = loop,
                .http = http,
                .auth = auth,
                .config = config,
                .metrics = metrics,
                .pull = pull,
                .no_token = no_token,
                .userdata = userdata,
        };
        c->timer = calloc(1, sizeof *c->timer);
        if (!c->timer || budget_init(&c->budget, config->max_requests_per_minute) < 0) {
                free(c->timer);
                free(c);
                return -ENOMEM;
        }
        uv_timer_init(loop, c->timer);
        c->timer->data = c;
        *ret = c;
        return 0;
}

static void timer_closed(uv_handle_t *h) {
        free(h);
}

PcClient *pc_client_free(PcClient *c) {
        if (!c)
                return NULL;
        while (c->calls)
                pc_call_free(c->calls);
        budget_done(&c->budget);
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *) c->timer, timer_closed);
        free(c);
        return NULL;
}
