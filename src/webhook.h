/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "http.h"
#include "store.h"

/* Webhook delivery (SPEC §6 Webhooks): every [webhook] section has its own durable queue in the
 * store, delivered over the shared Http multi handle. A dead or slow endpoint delays nothing else. */

typedef struct Webhooks Webhooks;

/* Called when nothing deliverable is left right now (queues empty, or only waiting on retries,
 * or endpoints disabled); `once` uses it to stop waiting. */
typedef void (*WebhooksIdleFn)(void *userdata);

int webhooks_new(uv_loop_t *loop, Http *http, Store *store, const Config *config, const char *hostname,
                 Webhooks **ret);
Webhooks *webhooks_free(Webhooks *w);

/* Reload: sections added, removed or changed take effect; disabled (410) endpoints are enabled again. */
void webhooks_set_config(Webhooks *w, const Config *config);

/* New events were committed to the queues. */
void webhooks_kick(Webhooks *w);

/* Stop starting deliveries (shutdown); in-flight ones are abandoned by http_free(). */
void webhooks_stop(Webhooks *w);

/* Events still queued across all configured webhooks (from the store). */
uint64_t webhooks_queued(Webhooks *w);

/* Events queued that could be attempted now or are in flight (0 means "waiting on retry timers or
 * nothing left"). */
size_t webhooks_busy(Webhooks *w);

void webhooks_set_idle_callback(Webhooks *w, WebhooksIdleFn fn, void *userdata);

/* Standard Webhooks signature: "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)). */
char *webhook_signature(const void *key, size_t key_size, const char *id, const char *timestamp,
                        const char *body, size_t body_size);

/* The retry schedule: about 5 s, 30 s, 2 min, 10 min, 30 min, then hourly (before jitter). */
uint64_t webhook_retry_delay_usec(unsigned attempts, double rnd);
