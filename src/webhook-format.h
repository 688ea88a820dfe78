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

/* The body to POST for format f. event_json: the CloudEvent exactly as committed (SPEC §4, and the
 * event types of §8/§9); summary: the event's one-line human summary (the journal MESSAGE), UTF-8;
 * NULL or "" puts the event type in its place.
 *
 * cloudevents: a byte-identical copy of event_json. teams: a Workflows message holding an Adaptive
 * Card 1.4 (the summary in a TextBlock, then a FactSet). slack: an incoming-webhook message (the
 * summary as text and as a section, then a section of fields). The facts come from the CloudEvent's
 * fields, each one left out when the event does not carry it (older events lack the names). Output
 * is compact JSON, always the same for the same input.
 *
 * Text from the event is inserted with control characters as spaces and invalid UTF-8 as U+FFFD;
 * for teams, a markdown link "[text](url)" is broken by a zero-width space (other markdown stays: the
 * renderers do not agree on backslash escapes); for slack, &, < and > are escaped and every text is
 * cut at Slack's limits with "…".
 *
 * 0 and *ret (free()) on success; -EBADMSG when event_json is not a CloudEvent object with a string
 * type and an object data; -EINVAL for an unknown f or NULL arguments; -ENOMEM. */
int webhook_format_body(WebhookFormat f, const char *event_json, const char *summary, char **ret);
