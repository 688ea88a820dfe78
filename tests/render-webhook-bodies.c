/* SPDX-License-Identifier: MIT */
/* Renders the webhook body of every event in a fixture file, for tests outside C (the Adaptive Card
 * validator) and for looking at them:
 *
 *     render-webhook-bodies FORMAT [FIXTURES_FILE]
 *
 * prints one line per event, {"name": NAME, "body": BODY}. The fixture file (default
 * tests/fixtures/webhook-format-events.json) maps names to {"summary": …, "event": {CloudEvent}}. */
#include <json-c/json.h>
#include <stdio.h>

#include "json-util.h"
#include "util.h"
#include "webhook-format.h"

int main(int argc, char **argv) {
        const char *path = argc > 2 ? argv[2] : "tests/fixtures/webhook-format-events.json";
        _cleanup_(json_object_putp) json_object *fixtures = NULL;
        _cleanup_free_ char *text = NULL;
        WebhookFormat format;
        int r;

        if (argc < 2 || argc > 3 || (format = webhook_format_from_string(argv[1])) < 0) {
                fprintf(stderr, "usage: %s cloudevents|teams|slack [FIXTURES_FILE]\n", argv[0]);
                return 64;
        }
        r = read_full_file(path, 1 << 20, &text, NULL);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return 1;
        }
        fixtures = json_tokener_parse(text);
        if (!json_object_is_type(fixtures, json_type_object)) {
                fprintf(stderr, "%s: not a JSON object\n", path);
                return 1;
        }
        json_object_object_foreach(fixtures, name, fixture) {
                const char *event =
                        json_object_to_json_string_ext(json_get(fixture, "event"), JSON_C_TO_STRING_PLAIN);
                _cleanup_free_ char *body = NULL;

                const char *summary = json_get_cstring(json_get(fixture, "summary"));
                r = webhook_format_body(format, event, summary, &body);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", name, strerror(-r));
                        return 1;
                }
                _cleanup_(json_object_putp) json_object *line = json_object_new_object();
                if (!line || json_add(line, "name", json_object_new_string(name)) < 0 ||
                    json_add(line, "body", json_tokener_parse(body)) < 0) {
                        fprintf(stderr, "%s: the body is not JSON\n", name);
                        return 1;
                }
                puts(json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN));
        }
        return fflush(stdout) == 0 ? 0 : 1;
}
