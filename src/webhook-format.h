/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>

/* Webhook body formats of SPEC §10. The event, its id, ordering, retries and webhook-* headers are
 * the same for every format; only the body and its Content-Type differ. */

typedef enum WebhookFormat {
        WEBHOOK_FORMAT_CLOUDEVENTS,
        WEBHOOK_FORMAT_TEAMS,
        WEBHOOK_FORMAT_SLACK,
        _WEBHOOK_FORMAT_MAX,
        _WEBHOOK_FORMAT_INVALID = -EINVAL,
} WebhookFormat;

/* "cloudevents", "teams", "slack" */
const char *webhook_format_to_string(WebhookFormat f);
WebhookFormat webhook_format_from_string(const char *s);
/* "application/cloudevents+json" or "application/json" */
const char *webhook_format_content_type(WebhookFormat f);
