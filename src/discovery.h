/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit-log.h"
#include "config.h"
#include "metrics.h"
#include "names.h"
#include "pc-client.h"
#include "store.h"

/* Finding orders without being told (SPEC §8): the activity log, read every [discovery] interval
 * through the Partner Center client like every other request, and the sweep of customers' order
 * lists every sweep-interval. A read's findings go to the owner as one batch, which the owner
 * commits in one transaction together with the discovery state the batch advances (cursor,
 * de-duplication keys), so that a crash never loses or repeats a discovery. The owner decides what
 * a finding means for its orders; this module knows nothing of them. */

typedef struct Discovery Discovery;

typedef struct DiscoveryFinding {
        AuditVerdict verdict; /* AUDIT_CREATE_ORDER or AUDIT_UPDATE_ORDER */
        char *customer_id;
        char *order_id;
        OrderNames *names; /* never NULL */
        uint64_t operation_usec; /* 0 from the sweep */
} DiscoveryFinding;

typedef struct DiscoveryBatch {
        bool sweep; /* from a customer's order list, not from the activity log */
        DiscoveryFinding *findings;
        size_t n_findings;
        /* what committing the batch records */
        char **keys; /* de-duplication keys of the records processed */
        uint64_t *key_dates;
        size_t n_keys, keys_alloc;
        uint64_t cursor_usec;  /* the cursor once committed */
        uint64_t read_usec;    /* realtime of the read */
        size_t records;        /* records the read returned */
} DiscoveryBatch;

/* A batch is ready: the owner commits it and calls discovery_batch_done() afterwards, in either
 * case. No new read starts before. */
typedef void (*DiscoveryFoundFn)(DiscoveryBatch *batch, void *userdata);

int discovery_new(PcClient *client, Store *store, const Config *config, Metrics *metrics, DiscoveryFoundFn found,
                  void *userdata, Discovery **ret);
/* Abandons a read under way. */
Discovery *discovery_free(Discovery *d);
void discovery_set_config(Discovery *d, const Config *config);

/* For the client's pull: starts the read of the activity log when one is due and returns true; else
 * false with *ret_wake lowered to when one will be (monotonic). */
bool discovery_pull_log(Discovery *d, uint64_t now, uint64_t *ret_wake);
/* The same for the next request of the sweep, which only gets what the polls leave. */
bool discovery_pull_sweep(Discovery *d, uint64_t now, uint64_t *ret_wake);

/* Inside the owner's transaction: the keys, the cursor and the last read. */
int discovery_batch_save(Store *store, const DiscoveryBatch *b);
/* After the owner's commit (r < 0: it failed, and the same records are read again next time). Frees
 * the batch. */
void discovery_batch_done(Discovery *d, DiscoveryBatch *b, int r);

/* What `provwatch status` shows, from the store (read-only is fine). */
typedef struct DiscoveryStatus {
        uint64_t cursor_usec;   /* 0: none yet */
        uint64_t last_read_usec;
        char *last_result;      /* "ok", or what went wrong; NULL before the first read */
        uint64_t last_records;
} DiscoveryStatus;

int discovery_status_load(Store *store, DiscoveryStatus *ret);
void discovery_status_done(DiscoveryStatus *s);
