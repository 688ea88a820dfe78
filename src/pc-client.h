/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "metrics.h"
#include "scheduler.h"

/* Every request toward Partner Center passes through here (SPEC §3): the gate that holds them to
 * `concurrency` and to the request budget, the headers every request carries, the pages of a
 * collection (links.next with its headers), one token renewal after a 401, and the pause of the whole
 * budget after a 429. A caller (a poll of an order, a read of the activity log) sees one callback per
 * answer that is its to judge. New requests are pulled from the owner only when one may be sent
 * right now, so that the owner decides at the last moment what is most urgent; requests already
 * under way (next pages, retries after a 401) go first. */

typedef struct PcClient PcClient;
typedef struct PcCall PcCall;

typedef struct PcAnswer {
        long status;      /* HTTP status, 0 without an answer */
        HttpResult result;
        const char *error; /* when result != HTTP_OK */
        const char *body;
        size_t body_size;
        int64_t retry_after_sec;    /* -1 when absent */
        const char *correlation_id; /* the MS-CorrelationId sent */
        const char *request_id;     /* the MS-RequestId sent */
        const char *ms_cv;          /* the MS-CV received, NULL when absent */
        unsigned page;              /* 1 for the first page */
        uint64_t duration_usec;     /* of the whole call so far */
} PcAnswer;

/* The final answer to one request of call: everything but a 401 that a new token may cure (429s come
 * here after the budget was paused). The callback either asks for the next page with
 * pc_call_next_page() or ends the call with pc_call_free(). */
typedef void (*PcAnswerFn)(PcCall *call, const PcAnswer *answer, void *userdata);

/* A request may be sent now: start one with pc_call_new() and return true, or return false and set
 * *ret_wake to the monotonic time when one will be due (USEC_INFINITY: not before a kick). */
typedef bool (*PcPullFn)(void *userdata, uint64_t now, uint64_t *ret_wake);

/* No access token can be had now and the token source reports this problem. */
typedef void (*PcNoTokenFn)(void *userdata, const char *problem);

int pc_client_new(uv_loop_t *loop, Http *http, Auth *auth, const Config *config, Metrics *metrics,
                  PcPullFn pull, PcNoTokenFn no_token, void *userdata, PcClient **ret);
/* Abandons every call (no callbacks) and closes the timer; the memory goes in its close callback. */
PcClient *pc_client_free(PcClient *c);
/* A reload: endpoint, timeouts, concurrency and the budget's rate (its history is kept). */
int pc_client_set_config(PcClient *c, const Config *config);

/* Something may have become due: look now (from the loop, never re-entrantly). */
void pc_client_kick(PcClient *c);
/* Sends nothing more; answers to requests in flight still arrive. */
void pc_client_stop(PcClient *c);
/* Ends every call waiting to be sent with a failed answer carrying reason (for `once` without a
 * token). */
void pc_client_fail_waiting(PcClient *c, const char *reason);

size_t pc_client_in_flight(const PcClient *c);
/* Requests sent in the last 60 seconds. */
size_t pc_client_window_count(PcClient *c);

/* A logical request: GET url, then the pages pc_call_next_page() asks for. request_id: the
 * MS-RequestId to send (NULL: a new one). The call waits for the gate and is sent as soon as it
 * allows; *ret is set before anything else happens. */
int pc_call_new(PcClient *c, const char *url, const char *request_id, PcAnswerFn fn, void *userdata,
                PcCall **ret);
/* uri is relative to {endpoint}/v{api-version}; headers ("Key: value", NULL-terminated, may be NULL)
 * are taken over. On failure the call is unchanged. */
int pc_call_next_page(PcCall *call, const char *uri, char **headers);
/* Ends the call; a request in flight is abandoned. Accepts NULL. */
void pc_call_free(PcCall *call);
const char *pc_call_request_id(const PcCall *call);
