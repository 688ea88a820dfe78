/* SPDX-License-Identifier: MIT */
/* webhook_format_body() on arbitrary bytes: the input up to its first NUL is the summary and the rest
 * (up to the next NUL) the event JSON; without a NUL the whole input is the event and the summary is
 * NULL. Every format accepts or refuses the same events (-EBADMSG, or -ENOMEM), leaving *ret alone
 * when it refuses. Accepted: cloudevents is a byte-identical copy; teams and slack are deterministic,
 * strict JSON in valid UTF-8 of the shapes of SPEC §10, without control characters (but the line
 * breaks Slack's fields and lines need), within Slack's limits (text 3000, a field 2000 UTF-16 code
 * units, at most 10 fields). */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "fuzz.h"
#include "json-util.h"
#include "util.h"
#include "webhook-format.h"

static char sentinel[] = "untouched";

static size_t utf16_units(const char *s) {
        size_t n = 0;
        for (const unsigned char *u = (const unsigned char *) s; *u; u++)
                if ((*u & 0xc0) != 0x80)
                        n += *u >= 0xf0 ? 2 : 1;
        return n;
}

static json_object *parse_strict(const char *s) {
        json_tokener *tok = json_tokener_new();
        fuzz_assert(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        json_object *o = json_tokener_parse_ex(tok, s, (int) strlen(s));
        fuzz_assert(json_tokener_get_error(tok) == json_tokener_success);
        fuzz_assert(json_tokener_get_parse_end(tok) == strlen(s));
        json_tokener_free(tok);
        fuzz_assert(json_object_is_type(o, json_type_object));
        return o;
}

static const char *string_of(json_object *o, const char *key) {
        const char *s = json_get_cstring(json_get(o, key));
        fuzz_assert(s);
        return s;
}

static json_object *element(json_object *a, size_t i) {
        fuzz_assert(json_object_is_type(a, json_type_array) && i < json_object_array_length(a));
        return json_object_array_get_idx(a, i);
}

static void check_teams(const char *body) {
        _cleanup_(json_object_putp) json_object *o = parse_strict(body);
        json_object *attachment = element(json_get(o, "attachments"), 0), *card, *facts;

        fuzz_assert(streq(string_of(o, "type"), "message"));
        fuzz_assert(streq(string_of(attachment, "contentType"), "application/vnd.microsoft.card.adaptive"));
        fuzz_assert(json_object_object_get_ex(attachment, "contentUrl", NULL) && !json_get(attachment, "contentUrl"));
        card = json_get(attachment, "content");
        fuzz_assert(streq(string_of(card, "type"), "AdaptiveCard") && streq(string_of(card, "version"), "1.4"));
        fuzz_assert(json_object_array_length(json_get(card, "body")) == 2);
        json_object *text = element(json_get(card, "body"), 0);
        fuzz_assert(streq(string_of(text, "type"), "TextBlock"));
        fuzz_assert(*string_of(text, "text") && !fuzz_has_control_chars(string_of(text, "text"), ""));
        fuzz_assert(utf16_units(string_of(text, "text")) <= 3000);
        facts = json_get(element(json_get(card, "body"), 1), "facts");
        fuzz_assert(json_object_array_length(facts) >= 1); /* the event type, at least */
        for (size_t i = 0; i < json_object_array_length(facts); i++) {
                json_object *fact = element(facts, i);
                fuzz_assert(*string_of(fact, "title") && *string_of(fact, "value"));
                fuzz_assert(!fuzz_has_control_chars(string_of(fact, "title"), ""));
                fuzz_assert(!fuzz_has_control_chars(string_of(fact, "value"), ""));
                fuzz_assert(utf16_units(string_of(fact, "value")) <= 2000);
        }
}

static void check_slack(const char *body) {
        _cleanup_(json_object_putp) json_object *o = parse_strict(body);
        json_object *blocks = json_get(o, "blocks");

        fuzz_assert(*string_of(o, "text") && !fuzz_has_control_chars(string_of(o, "text"), ""));
        fuzz_assert(utf16_units(string_of(o, "text")) <= 3000);
        fuzz_assert(json_object_is_type(blocks, json_type_array));
        fuzz_assert(json_object_array_length(blocks) >= 2 && json_object_array_length(blocks) <= 3);
        for (size_t i = 0; i < json_object_array_length(blocks); i++) {
                json_object *block = element(blocks, i), *fields = json_get(block, "fields");
                fuzz_assert(streq(string_of(block, "type"), "section"));
                if (!fields) {
                        const char *text = string_of(json_get(block, "text"), "text");
                        fuzz_assert(utf16_units(text) <= 3000 && !fuzz_has_control_chars(text, "\n"));
                        continue;
                }
                fuzz_assert(json_object_array_length(fields) >= 1 && json_object_array_length(fields) <= 10);
                for (size_t j = 0; j < json_object_array_length(fields); j++) {
                        const char *text = string_of(element(fields, j), "text");
                        fuzz_assert(utf16_units(text) <= 2000 && !fuzz_has_control_chars(text, "\n"));
                        /* Slack's control characters only as the entities we wrote */
                        fuzz_assert(!strchr(text, '<') && !strchr(text, '>'));
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *input = malloc(size + 2);
        const char *summary = NULL, *event;
        int expected = 1;

        if (!input)
                return 0;
        memcpy(input, data, size);
        input[size] = input[size + 1] = 0;
        event = input;
        if (memchr(input, 0, size)) {
                summary = input;
                event = input + strlen(input) + 1;
        }

        for (WebhookFormat f = 0; f < _WEBHOOK_FORMAT_MAX; f++) {
                _cleanup_free_ char *again = NULL;
                char *body = sentinel;
                int r = webhook_format_body(f, event, summary, &body);

                if (r < 0) {
                        fuzz_assert(r == -EBADMSG || r == -ENOMEM);
                        fuzz_assert(body == sentinel);
                        fuzz_assert(expected == 1 || expected == r || r == -ENOMEM);
                        expected = r;
                        continue;
                }
                fuzz_assert(r == 0 && body && body != sentinel);
                fuzz_assert(expected == 1 || expected == 0);
                expected = 0;
                switch (f) {
                case WEBHOOK_FORMAT_CLOUDEVENTS:
                        fuzz_assert(streq(body, event));
                        break;
                case WEBHOOK_FORMAT_TEAMS:
                        check_teams(body);
                        break;
                default:
                        check_slack(body);
                }
                fuzz_assert(webhook_format_body(f, event, summary, &again) == 0 && streq(again, body));
                free(body);
        }
        return 0;
}
