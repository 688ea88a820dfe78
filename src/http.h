/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util.h"

/* The libcurl multi ↔ libuv glue and nothing else: requests go in, one callback per request comes
 * out, on the loop's thread. Connections are kept alive and HTTP/2 is multiplexed where offered. */

typedef struct Http Http;
typedef struct HttpRequest HttpRequest;

/* How a request ended, without libcurl's vocabulary: callers decide on retries and messages. */
typedef enum HttpResult {
        HTTP_OK,             /* a complete answer arrived (any HTTP status) */
        HTTP_TIMEOUT,        /* the whole request took longer than its timeout */
        HTTP_CONNECT_FAILED, /* name resolution or the TCP connection failed */
        HTTP_TLS_FAILED,     /* handshake or certificate verification failed */
        HTTP_TOO_LARGE,      /* the answer exceeded max_body */
        HTTP_FAILED,         /* anything else: reset, malformed answer, out of memory, ... */
} HttpResult;

typedef struct HttpRequestSpec {
        const char *method; /* "GET" or "POST" */
        const char *url;
        const char *const *headers; /* NULL-terminated "Name: value" */
        const char *body;           /* POST body, copied */
        size_t body_size;
        uint64_t timeout_usec; /* whole request; 0 = none */
        const char *ca_file;   /* extra trusted CA bundle, NULL = system only */
        size_t max_body;       /* larger answers fail with HTTP_TOO_LARGE; 0 = 8 MiB */
        /* Headers, body and answer carry secrets (a bearer token, a client secret, tokens): their
         * copies are wiped before their memory is freed. */
        bool sensitive;
        bool public_answer; /* with sensitive: only the request carries secrets, the answer is not wiped */
        const char *capture_header; /* the value of this answer header is passed back, if any */
} HttpRequestSpec;

typedef struct HttpResponse {
        long status;         /* HTTP status, 0 when there was no answer */
        HttpResult result;
        const char *error;   /* human reason when result != HTTP_OK */
        const char *body;    /* NUL-terminated for convenience; may contain NULs */
        size_t body_size;
        const char *captured_header; /* value of spec->capture_header, NULL when absent */
        int64_t retry_after_sec; /* Retry-After in seconds, -1 when absent */
        uint64_t duration_usec;
} HttpResponse;

typedef void (*HttpDoneFn)(const HttpResponse *resp, void *userdata);

int http_new(uv_loop_t *loop, Http **ret);
/* Abandons every request in flight (no callbacks) and closes the handles; the memory goes once the
 * loop has run the close callbacks. */
void http_free(Http *h);

/* Starts a request; done is called exactly once unless the request is cancelled first. */
int http_submit(Http *h, const HttpRequestSpec *spec, HttpDoneFn done, void *userdata, HttpRequest **ret);
/* Abandons a request: its callback is never called. */
void http_cancel(Http *h, HttpRequest *r);
size_t http_in_flight(Http *h);

/* Global libcurl init/cleanup, once per process. */
int http_global_init(void);
void http_global_cleanup(void);
