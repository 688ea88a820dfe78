/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "metrics.h"
#include "store.h"

/* Webhook delivery (SPEC §6 Webhooks): every [webhook] section has its own durable queue in the
 * store, delivered over the shared Http multi handle. A dead or slow endpoint delays nothing else.
 * Per webhook, the events of one order go out one after the other (the next one only once the
 * previous was delivered or dead-lettered); up to 4 requests per webhook are in flight. Only a
 * bounded window of due events of each queue is held in memory, plus a few numbers for each order
 * whose next event waits for a retry: however many orders keep failing, the others go through. */

typedef struct Webhooks Webhooks;

/* Called when nothing deliverable is left right now (queues empty, or only waiting on retries,
 * or endpoints disabled); `once` uses it to stop waiting. It runs from the loop (a zero timer), never
 * from inside a webhooks_*() call, each time webhooks_busy() dropped to 0 and after a kick that found
 * nothing to do; not after webhooks_stop(). */
typedef void (*WebhooksIdleFn)(void *userdata);

/* Loads every configured webhook's queue and starts delivering what is due (events queued before a
 * restart keep their ids and retry schedule). config is copied: it need not outlive the call. */
int webhooks_new(uv_loop_t *loop, Http *http, Store *store, const Config *config, const char *hostname,
                 Metrics *metrics, Webhooks **ret);
/* Abandons requests in flight (http_cancel(), so before http_free()) and closes the timers; the memory
 * goes in their close callbacks. Queued events stay in the store. */
Webhooks *webhooks_free(Webhooks *w);

/* Reload: sections added, removed or changed take effect; disabled (410) endpoints are enabled again. */
void webhooks_set_config(Webhooks *w, const Config *config);

/* New events were committed to the queues. */
void webhooks_kick(Webhooks *w);

/* Stop starting deliveries (shutdown). Answers to requests already in flight are still recorded
 * until webhooks_free(). */
void webhooks_stop(Webhooks *w);

/* Events still queued across all configured webhooks (from the store). */
uint64_t webhooks_queued(Webhooks *w);

/* Events queued that could be attempted now or are in flight (0 means "waiting on retry timers or
 * nothing left"). */
size_t webhooks_busy(Webhooks *w);

/* Like webhooks_busy(), but also counting events whose retry is due by realtime_usec: for `once`,
 * which keeps waiting while a retry falls before its once-timeout deadline (SPEC §1). */
size_t webhooks_due_before(Webhooks *w, uint64_t realtime_usec);

void webhooks_set_idle_callback(Webhooks *w, WebhooksIdleFn fn, void *userdata);

/* Whether an event type matches one of the webhook's events patterns (fnmatch globs). */
bool webhook_wants_event(const WebhookConfig *w, const char *event_type);

/* Standard Webhooks signature: "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)). */
char *webhook_signature(const void *key, size_t key_size, const char *id, const char *timestamp,
                        const char *body, size_t body_size);

/* The retry schedule: about 5 s, 30 s, 2 min, 10 min, 30 min, then hourly. attempts is the number of
 * failed attempts so far (1 after the first failure; 0 counts as 1); rnd in [0,1] (random_unit())
 * spreads the delay by ±20 %. */
uint64_t webhook_retry_delay_usec(unsigned attempts, double rnd);
