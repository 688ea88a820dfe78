/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "order-state.h"
#include "pc-client.h"
#include "snapshot.h"

/* One poll of one order's provisioning status (SPEC §3): the request and its pages, sent through the
 * Partner Center client, the snapshot put together from them, and what the answer means. It knows
 * nothing of the store or of events: the outcome goes to a callback. */

#define POLL_DIGEST_SIZE 16

typedef struct PollAnswer {
        PollOutcome outcome;
        /* A 429: nothing was learnt and the client paused the budget; the poll is to start over once
         * the pause ends (a continuation token may not outlive it). outcome is FAILED then. */
        bool throttled;
        bool timed_out; /* failed by its timeout: a retry keeps the MS-RequestId */
        /* OK: the line items, NULL when the answer is the one known_digest names. The callback may
         * take it (TAKE_PTR); the poll frees what is left. */
        Snapshot *snapshot;
        uint8_t digest[POLL_DIGEST_SIZE]; /* of a single-page answer, to recognise it next time */
        bool has_digest;
        long http_status; /* 0 without an answer */
        const char *reason;              /* FAILED */
        const char *code, *description;  /* NOT_FOUND: from the error body, NULL when absent */
        const char *correlation_id, *request_id, *ms_cv; /* of the last request, for support */
        uint64_t duration_usec;
} PollAnswer;

typedef struct Poller Poller;
typedef struct Poll Poll;

/* Called once per poll; the poll is freed when it returns. */
typedef void (*PollDoneFn)(PollAnswer *answer, void *userdata);
/* Called instead when the poll is abandoned (poll_cancel(), poller_free()): userdata is the caller's
 * to release. */
typedef void (*PollAbandonFn)(void *userdata);

typedef struct PollTarget {
        const char *customer_id;
        const char *order_id;
        const char *request_id;     /* the MS-RequestId to send, NULL for a new one */
        const uint8_t *known_digest; /* POLL_DIGEST_SIZE bytes: the answer the stored snapshot came from */
} PollTarget;

int poller_new(PcClient *client, const Config *config, Poller **ret);
/* Abandons the polls under way (no callbacks). */
Poller *poller_free(Poller *p);
void poller_set_config(Poller *p, const Config *config);

/* The poll's first request waits for the client's gate like any other; *ret (may be NULL) is set
 * before anything else happens, and stays valid until the callback returns. */
int poller_start(Poller *p, const PollTarget *target, PollDoneFn done, PollAbandonFn abandon, void *userdata,
                 Poll **ret);
/* Abandons a poll: its done callback is not called, its abandon callback is (when not NULL). */
void poll_cancel(Poll *poll);
