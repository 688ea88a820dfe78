/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "util.h"
#include "webhook-format.h"

static const char *const format_names[_WEBHOOK_FORMAT_MAX] = {
        [WEBHOOK_FORMAT_CLOUDEVENTS] = "cloudevents",
        [WEBHOOK_FORMAT_TEAMS] = "teams",
        [WEBHOOK_FORMAT_SLACK] = "slack",
};

const char *webhook_format_to_string(WebhookFormat f) {
        return f >= 0 && f < _WEBHOOK_FORMAT_MAX ? format_names[f] : NULL;
}

WebhookFormat webhook_format_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(format_names); i++)
                if (streq(s, format_names[i]))
                        return (WebhookFormat) i;
        return _WEBHOOK_FORMAT_INVALID;
}

const char *webhook_format_content_type(WebhookFormat f) {
        return f == WEBHOOK_FORMAT_CLOUDEVENTS ? "application/cloudevents+json" : "application/json";
}
