/* SPDX-License-Identifier: MIT */
/* Webhook bodies of SPEC §10 (cloudevents, teams, slack) for the events of
 * tests/fixtures/webhook-format-events.json: the exact structure of each, escaping, Slack's limits,
 * malformed input. tests/card-validator checks the same Teams cards against the Adaptive Cards
 * library.
 *
 * Environment: FIXTURES (default tests/fixtures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>

#include "json-util.h"
#include "util.h"
#include "webhook-format.h"

#define CARD_SCHEMA "http://adaptivecards.io/schemas/adaptive-card.json"
#define CARD_CONTENT_TYPE "application/vnd.microsoft.card.adaptive"
#define ELLIPSIS "\xE2\x80\xA6"

static json_object *fixtures;

static int load_fixtures(void **state) {
        const char *dir = getenv("FIXTURES") ?: "tests/fixtures";
        _cleanup_free_ char *path = strdup_printf("%s/webhook-format-events.json", dir);
        _cleanup_free_ char *text = NULL;

        if (read_full_file(path, 1 << 20, &text, NULL) < 0)
                return -1;
        fixtures = json_tokener_parse(text);
        return json_object_is_type(fixtures, json_type_object) ? 0 : -1;
}

static int free_fixtures(void **state) {
        json_object_put(fixtures);
        return 0;
}

static json_object *fixture(const char *name) {
        json_object *f = json_get(fixtures, name);
        assert_non_null(f);
        return f;
}

static const char *fixture_summary(const char *name) {
        const char *s = json_get_cstring(json_get(fixture(name), "summary"));
        assert_non_null(s);
        return s;
}

/* A copy of the fixture's CloudEvent, to change before rendering it. */
static json_object *fixture_event(const char *name) {
        json_object *copy = NULL;
        assert_int_equal(json_object_deep_copy(json_get(fixture(name), "event"), &copy, NULL), 0);
        return copy;
}

static char *to_json(json_object *o) {
        char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        assert_non_null(s);
        return s;
}

/* Parses a body strictly, as valid UTF-8. */
static json_object *parse_body(const char *body) {
        json_tokener *tok = json_tokener_new();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        json_object *o = json_tokener_parse_ex(tok, body, (int) strlen(body));
        assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
        assert_int_equal(json_tokener_get_parse_end(tok), strlen(body));
        json_tokener_free(tok);
        assert_true(json_object_is_type(o, json_type_object));
        return o;
}

static char *render_string(WebhookFormat f, json_object *event, const char *summary) {
        _cleanup_free_ char *json = to_json(event);
        char *body = NULL;
        assert_int_equal(webhook_format_body(f, json, summary, &body), 0);
        assert_non_null(body);
        return body;
}

static json_object *render(WebhookFormat f, json_object *event, const char *summary) {
        _cleanup_free_ char *body = render_string(f, event, summary);
        return parse_body(body);
}

static json_object *render_fixture(WebhookFormat f, const char *name) {
        _cleanup_(json_object_putp) json_object *event = fixture_event(name);
        return render(f, event, fixture_summary(name));
}

static const char *str(json_object *o, const char *key) {
        const char *s = json_get_cstring(json_get(o, key));
        assert_non_null(s);
        return s;
}

static json_object *idx(json_object *a, size_t i) {
        assert_true(json_object_is_type(a, json_type_array));
        assert_true(i < json_object_array_length(a));
        return json_object_array_get_idx(a, i);
}

static size_t len(json_object *a) {
        assert_true(json_object_is_type(a, json_type_array));
        return json_object_array_length(a);
}

/* UTF-16 code units, what Slack's limits count. */
static size_t units(const char *s) {
        size_t n = 0;
        for (const unsigned char *u = (const unsigned char *) s; *u; u++)
                if ((*u & 0xc0) != 0x80)
                        n += *u >= 0xf0 ? 2 : 1;
        return n;
}

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

typedef struct Fact {
        const char *title, *value;
} Fact;

/* The Teams envelope of SPEC §10 around an Adaptive Card 1.4; returns the card. */
static json_object *teams_card(json_object *body) {
        json_object *attachment, *card;

        assert_int_equal(json_object_object_length(body), 2);
        assert_string_equal(str(body, "type"), "message");
        assert_int_equal(len(json_get(body, "attachments")), 1);
        attachment = idx(json_get(body, "attachments"), 0);
        assert_int_equal(json_object_object_length(attachment), 3);
        assert_string_equal(str(attachment, "contentType"), CARD_CONTENT_TYPE);
        assert_true(json_object_object_get_ex(attachment, "contentUrl", NULL));
        assert_null(json_get(attachment, "contentUrl"));
        card = json_get(attachment, "content");
        assert_int_equal(json_object_object_length(card), 4);
        assert_string_equal(str(card, "type"), "AdaptiveCard");
        assert_string_equal(str(card, "version"), "1.4");
        assert_string_equal(str(card, "$schema"), CARD_SCHEMA);
        assert_int_equal(len(json_get(card, "body")), 2);
        return card;
}

/* body[0]: the summary TextBlock, with color when given. */
static void assert_teams_summary(json_object *card, const char *summary, const char *color) {
        json_object *text = idx(json_get(card, "body"), 0);

        assert_int_equal(json_object_object_length(text), color ? 5 : 4);
        assert_string_equal(str(text, "type"), "TextBlock");
        assert_string_equal(str(text, "text"), summary);
        assert_true(json_object_get_boolean(json_get(text, "wrap")));
        assert_true(json_object_is_type(json_get(text, "wrap"), json_type_boolean));
        assert_string_equal(str(text, "weight"), "bolder");
        if (color)
                assert_string_equal(str(text, "color"), color);
}

/* body[1]: a FactSet with exactly these facts, in this order (NULL title ends the list). */
static void assert_teams_facts(json_object *card, const Fact *expected) {
        json_object *factset = idx(json_get(card, "body"), 1), *facts = json_get(factset, "facts");
        size_t n = 0;

        assert_int_equal(json_object_object_length(factset), 2);
        assert_string_equal(str(factset, "type"), "FactSet");
        for (; expected[n].title; n++) {
                json_object *fact = idx(facts, n);
                assert_int_equal(json_object_object_length(fact), 2);
                assert_string_equal(str(fact, "title"), expected[n].title);
                assert_string_equal(str(fact, "value"), expected[n].value);
        }
        assert_int_equal(len(facts), n);
}

static void assert_teams(const char *name, const char *color, const Fact *facts) {
        _cleanup_(json_object_putp) json_object *body = render_fixture(WEBHOOK_FORMAT_TEAMS, name);
        json_object *card = teams_card(body);

        assert_teams_summary(card, fixture_summary(name), color);
        assert_teams_facts(card, facts);
}

/* {"text": summary, "blocks": [summary section, fields section, lines section (when lines)]}, the
 * fields being "*Title*\nvalue". */
static void assert_slack_body(json_object *body, const char *summary, const Fact *fields,
                              const char *lines) {
        json_object *blocks = json_get(body, "blocks"), *section, *text, *f;
        size_t n = 0;

        assert_int_equal(json_object_object_length(body), 2);
        assert_string_equal(str(body, "text"), summary);
        assert_int_equal(len(blocks), lines ? 3 : 2);

        section = idx(blocks, 0);
        assert_int_equal(json_object_object_length(section), 2);
        assert_string_equal(str(section, "type"), "section");
        text = json_get(section, "text");
        assert_int_equal(json_object_object_length(text), 2);
        assert_string_equal(str(text, "type"), "mrkdwn");
        assert_string_equal(str(text, "text"), summary);

        section = idx(blocks, 1);
        assert_int_equal(json_object_object_length(section), 2);
        assert_string_equal(str(section, "type"), "section");
        f = json_get(section, "fields");
        for (; fields[n].title; n++) {
                _cleanup_free_ char *expected = strdup_printf("*%s*\n%s", fields[n].title, fields[n].value);
                json_object *field = idx(f, n);
                assert_int_equal(json_object_object_length(field), 2);
                assert_string_equal(str(field, "type"), "mrkdwn");
                assert_string_equal(str(field, "text"), expected);
        }
        assert_int_equal(len(f), n);

        if (lines) {
                section = idx(blocks, 2);
                assert_int_equal(json_object_object_length(section), 2);
                assert_string_equal(str(section, "type"), "section");
                text = json_get(section, "text");
                assert_string_equal(str(text, "type"), "mrkdwn");
                assert_string_equal(str(text, "text"), lines);
        }
}

static void assert_slack(const char *name, const Fact *fields, const char *lines) {
        _cleanup_(json_object_putp) json_object *body = render_fixture(WEBHOOK_FORMAT_SLACK, name);
        assert_slack_body(body, fixture_summary(name), fields, lines);
}

static void test_names(void **state) {
        assert_string_equal(webhook_format_to_string(WEBHOOK_FORMAT_CLOUDEVENTS), "cloudevents");
        assert_string_equal(webhook_format_to_string(WEBHOOK_FORMAT_TEAMS), "teams");
        assert_string_equal(webhook_format_to_string(WEBHOOK_FORMAT_SLACK), "slack");
        assert_null(webhook_format_to_string(_WEBHOOK_FORMAT_MAX));
        assert_null(webhook_format_to_string(_WEBHOOK_FORMAT_INVALID));
        assert_int_equal(webhook_format_from_string("teams"), WEBHOOK_FORMAT_TEAMS);
        assert_int_equal(webhook_format_from_string("Teams"), _WEBHOOK_FORMAT_INVALID);
        assert_int_equal(webhook_format_from_string(NULL), _WEBHOOK_FORMAT_INVALID);
        assert_string_equal(webhook_format_content_type(WEBHOOK_FORMAT_CLOUDEVENTS),
                            "application/cloudevents+json");
        assert_string_equal(webhook_format_content_type(WEBHOOK_FORMAT_TEAMS), "application/json");
        assert_string_equal(webhook_format_content_type(WEBHOOK_FORMAT_SLACK), "application/json");
}

/* The body is the event exactly as committed and signed, whatever its spacing. */
static void test_cloudevents_copy(void **state) {
        static const char event[] = "{ \"specversion\": \"1.0\", \"id\": \"x\",\n \"type\": \"provwatch.order.recovered\","
                                    " \"data\": {\"customer_id\": \"c\", \"order_id\": \"o\", \"name\": \"\\u00e9/\"} }\n";
        _cleanup_free_ char *body = NULL;

        assert_int_equal(webhook_format_body(WEBHOOK_FORMAT_CLOUDEVENTS, event, "summary", &body), 0);
        assert_memory_equal(body, event, sizeof event);
        assert_ptr_not_equal(body, event);

        _cleanup_(json_object_putp) json_object *e = fixture_event("lineitem-changed");
        _cleanup_free_ char *json = to_json(e), *copy = NULL;
        assert_int_equal(webhook_format_body(WEBHOOK_FORMAT_CLOUDEVENTS, json, NULL, &copy), 0);
        assert_string_equal(copy, json);
}

/* The whole body, byte for byte: compact, keys in a fixed order (the example of provwatch(8)). */
static void test_exact_bodies(void **state) {
        _cleanup_(json_object_putp) json_object *event = fixture_event("lineitem-changed");
        const char *summary = fixture_summary("lineitem-changed");
        _cleanup_free_ char *teams = render_string(WEBHOOK_FORMAT_TEAMS, event, summary);
        _cleanup_free_ char *slack = render_string(WEBHOOK_FORMAT_SLACK, event, summary);
        _cleanup_free_ char *again = render_string(WEBHOOK_FORMAT_TEAMS, event, summary);

        assert_string_equal(
                teams,
                "{\"type\":\"message\",\"attachments\":[{\"contentType\":\"application/vnd.microsoft.card.adaptive\","
                "\"contentUrl\":null,\"content\":{\"type\":\"AdaptiveCard\",\"version\":\"1.4\","
                "\"$schema\":\"http://adaptivecards.io/schemas/adaptive-card.json\",\"body\":["
                "{\"type\":\"TextBlock\",\"text\":\"Order Gx7kq2PzR8vT (Fabrikam Ltd) line item 0 (Microsoft 365 "
                "Business Premium): prefulfillmentpending → fulfilled (fulfilled 3, prefulfillmentpending 2)\","
                "\"wrap\":true,\"weight\":\"bolder\"},"
                "{\"type\":\"FactSet\",\"facts\":["
                "{\"title\":\"Customer\",\"value\":\"Fabrikam Ltd (7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)\"},"
                "{\"title\":\"Order\",\"value\":\"Gx7kq2PzR8vT\"},"
                "{\"title\":\"Line item\",\"value\":\"0 · Microsoft 365 Business Premium\"},"
                "{\"title\":\"Offer\",\"value\":\"CFQ7TTC0LDPB:0001\"},"
                "{\"title\":\"Status\",\"value\":\"prefulfillmentpending → fulfilled\"},"
                "{\"title\":\"Quantities\",\"value\":\"prefulfillmentpending 5 → fulfilled 3, prefulfillmentpending 2\"},"
                "{\"title\":\"Event\",\"value\":\"provwatch.lineitem.changed\"},"
                "{\"title\":\"Time\",\"value\":\"2026-11-23T21:54:16Z\"}]}]}}]}");
        assert_string_equal(teams, again);

        assert_string_equal(
                slack,
                "{\"text\":\"Order Gx7kq2PzR8vT (Fabrikam Ltd) line item 0 (Microsoft 365 Business Premium): "
                "prefulfillmentpending → fulfilled (fulfilled 3, prefulfillmentpending 2)\",\"blocks\":["
                "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":\"Order Gx7kq2PzR8vT (Fabrikam Ltd) line "
                "item 0 (Microsoft 365 Business Premium): prefulfillmentpending → fulfilled (fulfilled 3, "
                "prefulfillmentpending 2)\"}},"
                "{\"type\":\"section\",\"fields\":["
                "{\"type\":\"mrkdwn\",\"text\":\"*Customer*\\nFabrikam Ltd (7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)\"},"
                "{\"type\":\"mrkdwn\",\"text\":\"*Order*\\nGx7kq2PzR8vT\"},"
                "{\"type\":\"mrkdwn\",\"text\":\"*Line item*\\n0 · Microsoft 365 Business Premium\"},"
                "{\"type\":\"mrkdwn\",\"text\":\"*Offer*\\nCFQ7TTC0LDPB:0001\"},"
                "{\"type\":\"mrkdwn\",\"text\":\"*Status*\\nprefulfillmentpending → fulfilled\"},"
                "{\"type\":\"mrkdwn\",\"text\":\"*Quantities*\\nprefulfillmentpending 5 → fulfilled 3, "
                "prefulfillmentpending 2\"},"
                "{\"type\":\"mrkdwn\",\"text\":\"*Event*\\nprovwatch.lineitem.changed\"},"
                "{\"type\":\"mrkdwn\",\"text\":\"*Time*\\n2026-11-23T21:54:16Z\"}]}]}");
}

static const Fact changed_facts[] = {
        { "Customer", "Fabrikam Ltd (7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)" },
        { "Order", "Gx7kq2PzR8vT" },
        { "Line item", "0 · Microsoft 365 Business Premium" },
        { "Offer", "CFQ7TTC0LDPB:0001" },
        { "Status", "prefulfillmentpending → fulfilled" },
        { "Quantities", "prefulfillmentpending 5 → fulfilled 3, prefulfillmentpending 2" },
        { "Event", "provwatch.lineitem.changed" },
        { "Time", "2026-11-23T21:54:16Z" },
        {},
};

static void test_lineitem_changed(void **state) {
        assert_teams("lineitem-changed", NULL, changed_facts);
        assert_slack("lineitem-changed", changed_facts, NULL);
}

/* A configured order: names null. An event of the first release: no name keys at all, and a change of
 * the quantities alone. */
static void test_lineitem_without_names(void **state) {
        static const Fact added[] = {
                { "Customer", "4f8e3a1c-2b7d-4e9a-8c6f-1d2e3f4a5b6c" },
                { "Order", "Hb2mW9sLq4Nc" },
                { "Line item", "1" },
                { "Status", "prefulfillmentpending" },
                { "Quantities", "prefulfillmentpending 5" },
                { "Event", "provwatch.lineitem.added" },
                { "Time", "2026-11-24T00:52:47Z" },
                {},
        };
        static const Fact old_release[] = {
                { "Customer", "4f8e3a1c-2b7d-4e9a-8c6f-1d2e3f4a5b6c" },
                { "Order", "Gx7kq2PzR8vT" },
                { "Line item", "0" },
                { "Status", "prefulfillmentpending" },
                { "Quantities", "prefulfillmentpending 5 → fulfilled 3, prefulfillmentpending 2" },
                { "Event", "provwatch.lineitem.changed" },
                { "Time", "2026-11-24T00:52:47Z" },
                {},
        };
        assert_teams("lineitem-added-configured", NULL, added);
        assert_slack("lineitem-added-configured", added, NULL);
        assert_teams("lineitem-changed-quantities-old-release", NULL, old_release);
        assert_slack("lineitem-changed-quantities-old-release", old_release, NULL);
}

static void test_lineitem_removed(void **state) {
        static const Fact removed[] = {
                { "Customer", "Fabrikam Ltd (7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)" },
                { "Order", "Gx7kq2PzR8vT" },
                { "Line item", "2 · Microsoft Teams Rooms Pro" },
                { "Offer", "CFQ7TTC0QW5P:0002" },
                { "Status", "unfulfilled → removed" },
                { "Event", "provwatch.lineitem.removed" },
                { "Time", "2026-11-23T22:10:00Z" },
                {},
        };
        assert_teams("lineitem-removed", NULL, removed);
        assert_slack("lineitem-removed", removed, NULL);

        /* neither status nor quantities: no empty facts */
        _cleanup_(json_object_putp) json_object *e = fixture_event("lineitem-removed");
        json_object_object_add(json_get(e, "data"), "old", NULL);
        json_object_object_add(json_get(e, "data"), "new", json_object_new_object());
        _cleanup_(json_object_putp) json_object *body = render(WEBHOOK_FORMAT_TEAMS, e, "s");
        assert_teams_facts(teams_card(body), (const Fact[]) {
                                                     removed[0],
                                                     removed[1],
                                                     removed[2],
                                                     removed[3],
                                                     removed[5],
                                                     removed[6],
                                                     {},
                                             });
}

/* Line items: one fact each in Teams, lines of their own section in Slack. */
static void test_order_completed(void **state) {
        static const Fact teams[] = {
                { "Customer", "Fabrikam Ltd (7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)" },
                { "Order", "Gx7kq2PzR8vT" },
                { "Line item 0", "fulfilled (fulfilled 5)" },
                { "Line item 1", "unfulfilled" },
                { "Event", "provwatch.order.completed" },
                { "Time", "2026-11-23T23:02:31Z" },
                {},
        };
        static const Fact slack[] = {
                { "Customer", "Fabrikam Ltd (7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)" },
                { "Order", "Gx7kq2PzR8vT" },
                { "Event", "provwatch.order.completed" },
                { "Time", "2026-11-23T23:02:31Z" },
                {},
        };
        assert_teams("order-completed", NULL, teams);
        assert_slack("order-completed", slack, "*Line item 0*: fulfilled (fulfilled 5)\n*Line item 1*: unfulfilled");

        /* an item of which nothing is known still has its line, a fact without a value none */
        _cleanup_(json_object_putp) json_object *e = fixture_event("order-completed");
        json_object *item = json_object_new_object(), *items = json_object_new_array();
        json_object_object_add(item, "status", json_object_new_string(""));
        json_object_array_add(items, item);
        json_object_object_add(json_get(e, "data"), "line_items", items);
        json_object_object_add(json_get(e, "data"), "order_id", json_object_new_string(""));
        _cleanup_(json_object_putp) json_object *body = render(WEBHOOK_FORMAT_TEAMS, e, "s");
        assert_teams_facts(teams_card(body), (const Fact[]) {
                                                     { "Customer", teams[0].value },
                                                     { "Line item", "unknown" },
                                                     { "Event", "provwatch.order.completed" },
                                                     { "Time", "2026-11-23T23:02:31Z" },
                                                     {},
                                             });
}

static void test_order_discovered(void **state) {
        static const Fact teams[] = {
                { "Customer", "Contoso Pharmacy (2c4e6a8b-0d1f-4e3a-9b5c-7d9e1f3a5b7c)" },
                { "Order", "Mq7sV2xB4nRc" },
                { "Created", "2026-11-24T01:58:44Z" },
                { "Line item 0", "Microsoft 365 Business Premium · quantity 25 · offer CFQ7TTC0LDPB:0001" },
                { "Line item 1", "quantity 1 · offer CFQ7TTC0LH18:0001" },
                { "Event", "provwatch.order.discovered" },
                { "Time", "2026-11-24T02:00:05Z" },
                {},
        };
        static const Fact slack[] = {
                { "Customer", "Contoso Pharmacy (2c4e6a8b-0d1f-4e3a-9b5c-7d9e1f3a5b7c)" },
                { "Order", "Mq7sV2xB4nRc" },
                { "Created", "2026-11-24T01:58:44Z" },
                { "Event", "provwatch.order.discovered" },
                { "Time", "2026-11-24T02:00:05Z" },
                {},
        };
        assert_teams("order-discovered", NULL, teams);
        assert_slack("order-discovered", slack,
                     "*Line item 0*: Microsoft 365 Business Premium · quantity 25 · offer CFQ7TTC0LDPB:0001\n"
                     "*Line item 1*: quantity 1 · offer CFQ7TTC0LH18:0001");
}

static void test_order_stalled(void **state) {
        static const Fact teams[] = {
                { "Customer", "Fabrikam Ltd (7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)" },
                { "Order", "Gx7kq2PzR8vT" },
                { "Unchanged since", "2026-11-22T21:54:16Z" },
                { "Line item 0", "Microsoft 365 Business Premium · prefulfillmentpending (fulfilled 3, "
                                 "prefulfillmentpending 2) · offer CFQ7TTC0LDPB:0001" },
                { "Event", "provwatch.order.stalled" },
                { "Time", "2026-11-23T21:54:16Z" },
                {},
        };
        assert_teams("order-stalled", "warning", teams);
}

static void test_order_alerts(void **state) {
        static const Fact not_found[] = {
                { "Customer", "9b1d5e7f-3a2c-4d6e-8f0a-2b4c6d8e0f1a" },
                { "Order", "Kp5rT8vX1zQa" },
                { "Code", "800007" },
                { "Description", "Order not found." },
                { "Event", "provwatch.order.not_found" },
                { "Time", "2026-11-24T01:12:00Z" },
                {},
        };
        static const Fact fetch_failed[] = {
                { "Customer", "9b1d5e7f-3a2c-4d6e-8f0a-2b4c6d8e0f1a" },
                { "Order", "Kp5rT8vX1zQa" },
                { "HTTP status", "503" },
                { "Reason", "Service Unavailable" },
                { "Correlation id", "c0a8e1f2-3b4d-4c5e-8f6a-7b8c9d0e1f2a" },
                { "Request id", "d1b9f2a3-4c5e-4d6f-9a7b-8c9d0e1f2a3b" },
                { "MS-CV", "Ab3dEf9hIjKlMnOp.0" },
                { "Event", "provwatch.order.fetch_failed" },
                { "Time", "2026-11-24T00:53:21Z" },
                {},
        };
        static const Fact recovered[] = {
                { "Customer", "9b1d5e7f-3a2c-4d6e-8f0a-2b4c6d8e0f1a" },
                { "Order", "Kp5rT8vX1zQa" },
                { "Event", "provwatch.order.recovered" },
                { "Time", "2026-11-24T01:30:00Z" },
                {},
        };
        assert_teams("order-not-found", "attention", not_found);
        assert_teams("order-fetch-failed", "attention", fetch_failed);
        assert_slack("order-fetch-failed", fetch_failed, NULL);
        assert_teams("order-recovered", "good", recovered);

        /* a number as code, no HTTP answer */
        _cleanup_(json_object_putp) json_object *e = fixture_event("order-fetch-failed");
        json_object_object_add(json_get(e, "data"), "http_status", NULL);
        json_object_object_del(json_get(e, "data"), "ms_cv");
        _cleanup_(json_object_putp) json_object *body = render(WEBHOOK_FORMAT_TEAMS, e, "s");
        assert_teams_facts(teams_card(body), (const Fact[]) {
                                                     { "Customer", "9b1d5e7f-3a2c-4d6e-8f0a-2b4c6d8e0f1a" },
                                                     { "Order", "Kp5rT8vX1zQa" },
                                                     { "Reason", "Service Unavailable" },
                                                     { "Correlation id", "c0a8e1f2-3b4d-4c5e-8f6a-7b8c9d0e1f2a" },
                                                     { "Request id", "d1b9f2a3-4c5e-4d6f-9a7b-8c9d0e1f2a3b" },
                                                     { "Event", "provwatch.order.fetch_failed" },
                                                     { "Time", "2026-11-24T00:53:21Z" },
                                                     {},
                                             });
        _cleanup_(json_object_putp) json_object *nf = fixture_event("order-not-found");
        json_object_object_add(json_get(nf, "data"), "code", json_object_new_int(20000));
        _cleanup_(json_object_putp) json_object *nf_body = render(WEBHOOK_FORMAT_TEAMS, nf, "s");
        json_object *nf_facts = json_get(idx(json_get(teams_card(nf_body), "body"), 1), "facts");
        assert_string_equal(str(idx(nf_facts, 2), "value"), "20000");
}

static void test_auth(void **state) {
        static const Fact failed[] = {
                { "Tenant", "0a1b2c3d-1111-2222-3333-444455556666" },
                { "Grant", "refresh_token" },
                { "HTTP status", "400" },
                { "Error", "invalid_grant (AADSTS700082)" },
                { "Description", "AADSTS700082: The refresh token has expired due to inactivity." },
                { "Action", "Obtain a new refresh token by consent and store it as the refresh-token credential." },
                { "Event", "provwatch.auth.failed" },
                { "Time", "2026-11-24T03:00:00Z" },
                {},
        };
        static const Fact recovered[] = {
                { "Tenant", "0a1b2c3d-1111-2222-3333-444455556666" },
                { "Event", "provwatch.auth.recovered" },
                { "Time", "2026-11-24T03:20:00Z" },
                {},
        };
        assert_teams("auth-failed", "attention", failed);
        assert_slack("auth-failed", failed, NULL);
        assert_teams("auth-recovered", "good", recovered);

        /* token file: tenants/-, no Tenant; two codes, no error string; no HTTP answer */
        _cleanup_(json_object_putp) json_object *e = fixture_event("auth-failed");
        json_object *data = json_get(e, "data"), *codes = json_object_new_array();
        json_object_array_add(codes, json_object_new_int(50173));
        json_object_array_add(codes, json_object_new_int(700082));
        json_object_object_add(e, "subject", json_object_new_string("tenants/-"));
        json_object_object_add(data, "grant", json_object_new_string("token_file"));
        json_object_object_add(data, "error_codes", codes);
        json_object_object_add(data, "error", NULL);
        json_object_object_add(data, "http_status", NULL);
        json_object_object_del(data, "action");
        _cleanup_(json_object_putp) json_object *body = render(WEBHOOK_FORMAT_TEAMS, e, NULL);
        json_object *card = teams_card(body);
        assert_teams_summary(card, "provwatch.auth.failed", "attention");
        assert_teams_facts(card, (const Fact[]) {
                                         { "Grant", "token_file" },
                                         { "Error", "AADSTS50173, AADSTS700082" },
                                         { "Description", "AADSTS700082: The refresh token has expired due to "
                                                          "inactivity." },
                                         { "Event", "provwatch.auth.failed" },
                                         { "Time", "2026-11-24T03:00:00Z" },
                                         {},
                                 });
}

/* A type of a later release still shows its summary, subject, type and time. */
static void test_unknown_type(void **state) {
        static const Fact facts[] = {
                { "Customer", "7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59" },
                { "Subject", "customers/7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59/subscriptions/S1" },
                { "Event", "provwatch.subscription.renewed" },
                { "Time", "2026-11-25T00:00:00Z" },
                {},
        };
        assert_teams("unknown-type", NULL, facts);
        assert_slack("unknown-type", facts, NULL);

        /* the least a CloudEvent can be */
        static const char bare[] = "{\"type\":\"x.y\",\"data\":{}}";
        _cleanup_free_ char *out = NULL;
        assert_int_equal(webhook_format_body(WEBHOOK_FORMAT_TEAMS, bare, "", &out), 0);
        _cleanup_(json_object_putp) json_object *body = parse_body(out);
        json_object *card = teams_card(body);
        assert_teams_summary(card, "x.y", NULL);
        assert_teams_facts(card, (const Fact[]) { { "Event", "x.y" }, {} });
}

static void test_malformed(void **state) {
        static const char *const bad[] = {
                "",
                "   ",
                "null",
                "[]",
                "\"provwatch.lineitem.added\"",
                "{",
                "{\"type\":\"provwatch.order.recovered\",\"data\":{}",
                "{\"type\":\"provwatch.order.recovered\",\"data\":{}} {}",
                "{\"type\":\"provwatch.order.recovered\",\"data\":{}}x",
                "{\"data\":{}}",
                "{\"type\":null,\"data\":{}}",
                "{\"type\":\"\",\"data\":{}}",
                "{\"type\":7,\"data\":{}}",
                "{\"type\":\"provwatch.order.recovered\"}",
                "{\"type\":\"provwatch.order.recovered\",\"data\":null}",
                "{\"type\":\"provwatch.order.recovered\",\"data\":[]}",
                "{\"type\":\"provwatch.order.recovered\",\"data\":\"x\"}",
                "{'type':'provwatch.order.recovered','data':{}}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                for (WebhookFormat f = 0; f < _WEBHOOK_FORMAT_MAX; f++) {
                        char *body = (char *) "untouched";
                        assert_int_equal(webhook_format_body(f, bad[i], "s", &body), -EBADMSG);
                        assert_string_equal(body, "untouched");
                }

        static const char good[] = "{\"type\":\"provwatch.order.recovered\",\"data\":{}}\n";
        char *body = NULL;
        assert_int_equal(webhook_format_body(_WEBHOOK_FORMAT_MAX, good, "s", &body), -EINVAL);
        assert_int_equal(webhook_format_body(_WEBHOOK_FORMAT_INVALID, good, "s", &body), -EINVAL);
        assert_int_equal(webhook_format_body(WEBHOOK_FORMAT_TEAMS, NULL, "s", &body), -EINVAL);
        assert_int_equal(webhook_format_body(WEBHOOK_FORMAT_TEAMS, good, "s", NULL), -EINVAL);
        assert_null(body);
        assert_int_equal(webhook_format_body(WEBHOOK_FORMAT_SLACK, good, "s", &body), 0);
        free(body);
}

/* Slack: &, < and > escaped in every inserted string (no link, no @channel from a name); markdown
 * characters stay. Teams: a markdown link broken by U+200B; control characters as spaces in both. */
static void test_escaping(void **state) {
        _cleanup_(json_object_putp) json_object *slack = NULL, *teams = NULL;
        static const Fact slack_fields[] = {
                { "Customer", "A &amp; B &lt;Ltd&gt; [click](https://example.com/x) *bold* _it_  bell (C1)" },
                { "Order", "O&amp;1" },
                { "Line item", "0 · Büro 😀 Suite" },
                { "Offer", "&lt;!channel&gt;" },
                { "Status", "prefulfillmentpending → fulfilled" },
                { "Quantities", "prefulfillmentpending 1 → fulfilled 1" },
                { "Event", "provwatch.lineitem.changed" },
                { "Time", "2026-11-23T21:54:16Z" },
                {},
        };
        static const Fact teams_facts[] = {
                { "Customer", "A & B <Ltd> [click]\u200B(https://example.com/x) *bold* _it_  bell (C1)" },
                { "Order", "O&1" },
                { "Line item", "0 · Büro 😀 Suite" },
                { "Offer", "<!channel>" },
                { "Status", "prefulfillmentpending → fulfilled" },
                { "Quantities", "prefulfillmentpending 1 → fulfilled 1" },
                { "Event", "provwatch.lineitem.changed" },
                { "Time", "2026-11-23T21:54:16Z" },
                {},
        };
        slack = render_fixture(WEBHOOK_FORMAT_SLACK, "hostile-names");
        teams = render_fixture(WEBHOOK_FORMAT_TEAMS, "hostile-names");
        assert_slack_body(slack,
                          "Order &lt;b&gt;O&amp;1&lt;/b&gt; (A &amp; B &lt;Ltd&gt; [click](https://example.com/x)) "
                          "line item 0: prefulfillmentpending → fulfilled",
                          slack_fields, NULL);
        json_object *card = teams_card(teams);
        assert_teams_summary(card,
                             "Order <b>O&1</b> (A & B <Ltd> [click]\u200B(https://example.com/x)) line item 0: "
                             "prefulfillmentpending → fulfilled",
                             NULL);
        assert_teams_facts(card, teams_facts);

        /* nothing but links to break */
        _cleanup_(json_object_putp) json_object *e = fixture_event("order-recovered");
        _cleanup_(json_object_putp) json_object *links = render(WEBHOOK_FORMAT_TEAMS, e, "](](](](](]((");
        assert_teams_summary(teams_card(links),
                             "]\u200B(]\u200B(]\u200B(]\u200B(]\u200B(]\u200B((", "good");
}

/* Bytes that are not UTF-8 (stray continuation, overlong, surrogate, cut sequence) become U+FFFD. */
static void test_invalid_utf8(void **state) {
        _cleanup_(json_object_putp) json_object *e = fixture_event("lineitem-changed");
        json_object_object_add(json_get(e, "data"), "customer_name",
                               json_object_new_string("a\x80" "b\xC0\xAF" "c\xED\xA0\x80" "d\xF0\x9F\x98"));
        for (WebhookFormat f = WEBHOOK_FORMAT_TEAMS; f <= WEBHOOK_FORMAT_SLACK; f++) {
                _cleanup_(json_object_putp) json_object *body = render(f, e, "s\xFF");
                const char *customer, *summary;
                if (f == WEBHOOK_FORMAT_TEAMS) {
                        json_object *card = teams_card(body);
                        customer = str(idx(json_get(idx(json_get(card, "body"), 1), "facts"), 0), "value");
                        summary = str(idx(json_get(card, "body"), 0), "text");
                } else {
                        customer = str(idx(json_get(idx(json_get(body, "blocks"), 1), "fields"), 0), "text");
                        customer += strlen("*Customer*\n");
                        summary = str(body, "text");
                }
                assert_string_equal(customer, "a\uFFFDb\uFFFD\uFFFDc\uFFFD\uFFFD\uFFFDd\uFFFD\uFFFD\uFFFD "
                                              "(7b21c4f0-5a3e-4d2b-9c8f-0e1d2c3b4a59)");
                assert_string_equal(summary, "s\uFFFD");
        }
}

static char *repeat(const char *s, size_t n) {
        size_t l = strlen(s);
        char *r = malloc(l * n + 1);
        assert_non_null(r);
        for (size_t i = 0; i < n; i++)
                memcpy(r + i * l, s, l);
        r[l * n] = 0;
        return r;
}

/* The Customer field with this name, in Slack. */
static char *slack_customer_field(const char *name) {
        _cleanup_(json_object_putp) json_object *e = fixture_event("lineitem-changed");
        json_object_object_add(json_get(e, "data"), "customer_name", json_object_new_string(name));
        json_object_object_add(json_get(e, "data"), "customer_id", json_object_new_string("C1"));
        _cleanup_(json_object_putp) json_object *body = render(WEBHOOK_FORMAT_SLACK, e, "s");
        char *text = strdup(str(idx(json_get(idx(json_get(body, "blocks"), 1), "fields"), 0), "text"));
        assert_non_null(text);
        return text;
}

/* Fields are cut at 2000 UTF-16 code units, texts at 3000, with "…", never inside a character or an
 * entity. */
static void test_slack_truncation(void **state) {
        _cleanup_free_ char *e_acute = repeat("é", 3000), *expected_e = repeat("é", 1988);
        _cleanup_free_ char *field = slack_customer_field(e_acute);
        _cleanup_free_ char *want = strdup_printf("*Customer*\n%s" ELLIPSIS, expected_e);
        assert_string_equal(field, want);
        assert_int_equal(units(field), 2000);

        _cleanup_free_ char *amps = repeat("&", 1000), *expected_amps = repeat("&amp;", 397);
        _cleanup_free_ char *amp_field = slack_customer_field(amps);
        _cleanup_free_ char *amp_want = strdup_printf("*Customer*\n%s" ELLIPSIS, expected_amps);
        assert_string_equal(amp_field, amp_want);

        /* 😀 is two UTF-16 code units */
        _cleanup_free_ char *emoji = repeat("😀", 1500), *expected_emoji = repeat("😀", 994);
        _cleanup_free_ char *emoji_field = slack_customer_field(emoji);
        _cleanup_free_ char *emoji_want = strdup_printf("*Customer*\n%s" ELLIPSIS, expected_emoji);
        assert_string_equal(emoji_field, emoji_want);
        assert_int_equal(units(emoji_field), 2000);

        /* exactly at the limit: untouched (11 + 1984 + " (C1)") */
        _cleanup_free_ char *fits = repeat("x", 1984);
        _cleanup_free_ char *fits_field = slack_customer_field(fits);
        assert_int_equal(units(fits_field), 2000);
        assert_false(ends_with(fits_field, ELLIPSIS));

        /* the summary, in text and in the first section; Teams cuts it the same way */
        _cleanup_free_ char *summary = repeat("<", 4000), *expected_summary = repeat("&lt;", 749);
        _cleanup_(json_object_putp) json_object *e = fixture_event("order-recovered");
        _cleanup_(json_object_putp) json_object *body = render(WEBHOOK_FORMAT_SLACK, e, summary);
        _cleanup_free_ char *summary_want = strdup_printf("%s" ELLIPSIS, expected_summary);
        assert_string_equal(str(body, "text"), summary_want);
        assert_string_equal(str(json_get(idx(json_get(body, "blocks"), 0), "text"), "text"), summary_want);

        _cleanup_free_ char *long_summary = repeat("a", 4000), *expected_a = repeat("a", 2999);
        _cleanup_(json_object_putp) json_object *teams = render(WEBHOOK_FORMAT_TEAMS, e, long_summary);
        _cleanup_free_ char *a_want = strdup_printf("%s" ELLIPSIS, expected_a);
        assert_teams_summary(teams_card(teams), a_want, "good");
}

/* At most 25 line items are listed; Slack's line section stays within 3000 code units. */
static void test_many_line_items(void **state) {
        _cleanup_(json_object_putp) json_object *e = fixture_event("order-discovered");
        json_object *items = json_object_new_array();
        _cleanup_free_ char *name = repeat("n", 200);

        for (int i = 0; i < 40; i++) {
                json_object *item = json_object_new_object();
                json_object_object_add(item, "line_item_number", json_object_new_int(i));
                json_object_object_add(item, "offer_id", json_object_new_string("CFQ7TTC0LDPB:0001"));
                json_object_object_add(item, "friendly_name", json_object_new_string(name));
                json_object_object_add(item, "quantity", json_object_new_int(1));
                json_object_array_add(items, item);
        }
        json_object_object_add(json_get(e, "data"), "line_items", items);

        _cleanup_(json_object_putp) json_object *teams = render(WEBHOOK_FORMAT_TEAMS, e, "s");
        json_object *facts = json_get(idx(json_get(teams_card(teams), "body"), 1), "facts");
        assert_int_equal(len(facts), 3 + 25 + 1 + 2);
        assert_string_equal(str(idx(facts, 3), "title"), "Line item 0");
        assert_string_equal(str(idx(facts, 27), "title"), "Line item 24");
        assert_string_equal(str(idx(facts, 28), "title"), "More");
        assert_string_equal(str(idx(facts, 28), "value"), "15 more line items");
        assert_string_equal(str(idx(facts, 29), "title"), "Event");

        _cleanup_(json_object_putp) json_object *slack = render(WEBHOOK_FORMAT_SLACK, e, "s");
        const char *lines = str(json_get(idx(json_get(slack, "blocks"), 2), "text"), "text");
        assert_int_equal(units(lines), 3000);
        assert_true(ends_with(lines, ELLIPSIS));
        assert_int_equal(strncmp(lines, "*Line item 0*: nnn", 18), 0);
}

/* Every fixture, every format: valid UTF-8 JSON within Slack's limits, the summary first. */
static void test_every_fixture(void **state) {
        json_object_object_foreach(fixtures, name, f) {
                _cleanup_(json_object_putp) json_object *teams = render_fixture(WEBHOOK_FORMAT_TEAMS, name);
                _cleanup_(json_object_putp) json_object *slack = render_fixture(WEBHOOK_FORMAT_SLACK, name);
                json_object *card = teams_card(teams), *blocks = json_get(slack, "blocks");

                assert_true(json_object_is_type(json_get(f, "event"), json_type_object));
                assert_string_equal(str(idx(json_get(card, "body"), 0), "type"), "TextBlock");
                assert_true(len(json_get(idx(json_get(card, "body"), 1), "facts")) >= 2);
                assert_true(units(str(slack, "text")) <= 3000);
                assert_true(len(blocks) >= 2 && len(blocks) <= 3);
                for (size_t i = 0; i < len(blocks); i++) {
                        json_object *block = idx(blocks, i), *fields = json_get(block, "fields");
                        assert_string_equal(str(block, "type"), "section");
                        if (!fields) {
                                assert_true(units(str(json_get(block, "text"), "text")) <= 3000);
                                continue;
                        }
                        assert_true(len(fields) >= 1 && len(fields) <= 10);
                        for (size_t j = 0; j < len(fields); j++)
                                assert_true(units(str(idx(fields, j), "text")) <= 2000);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_cloudevents_copy),
                cmocka_unit_test(test_exact_bodies),
                cmocka_unit_test(test_lineitem_changed),
                cmocka_unit_test(test_lineitem_without_names),
                cmocka_unit_test(test_lineitem_removed),
                cmocka_unit_test(test_order_completed),
                cmocka_unit_test(test_order_discovered),
                cmocka_unit_test(test_order_stalled),
                cmocka_unit_test(test_order_alerts),
                cmocka_unit_test(test_auth),
                cmocka_unit_test(test_unknown_type),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_invalid_utf8),
                cmocka_unit_test(test_slack_truncation),
                cmocka_unit_test(test_many_line_items),
                cmocka_unit_test(test_every_fixture),
        };
        return cmocka_run_group_tests(tests, load_fixtures, free_fixtures);
}
