/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
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

/* Slack's limits, counted in UTF-16 code units (what Slack counts, at most), and how many line items
 * a card lists. Teams has no per-text limit, but a message must stay under about 28 KB, so its texts
 * are cut at the same lengths. */
#define TEXT_MAX 3000
#define FIELD_MAX 2000
#define FIELDS_MAX 10
#define ITEMS_MAX 25

#define ADAPTIVE_CARD_SCHEMA "http://adaptivecards.io/schemas/adaptive-card.json"
#define ADAPTIVE_CARD_CONTENT_TYPE "application/vnd.microsoft.card.adaptive"
#define ELLIPSIS "\xE2\x80\xA6"          /* … */
#define ZERO_WIDTH_SPACE "\xE2\x80\x8B"  /* U+200B */
#define REPLACEMENT_CHAR "\xEF\xBF\xBD"  /* U+FFFD */

/* ---- text ---- */


/* Text from the event as one clean line of UTF-8: control characters (C0, DEL, C1) become spaces, so a
 * name cannot break a line; bytes that are not UTF-8 become U+FFFD, so the body stays valid JSON text. */
static char *text_clean(const char *s) {
        char *buf = malloc(strlen(s) * 3 + 1), *o = buf;

        if (!buf)
                return NULL;
        while (*s) {
                uint32_t cp;
                size_t n = utf8_decode(s, &cp);
                if (n == 0) {
                        o = stpcpy(o, REPLACEMENT_CHAR);
                        s++;
                } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
                        *o++ = ' ';
                        s += n;
                } else {
                        memcpy(o, s, n);
                        o += n;
                        s += n;
                }
        }
        *o = 0;
        return buf;
}

/* Adaptive Card text is markdown: "[text](url)" in a customer name would be a link. A zero-width space
 * between "]" and "(" breaks it invisibly. Backslash escapes are not used: the shared renderer of the
 * mobile clients shows the backslash. */
static char *teams_escape(const char *s) {
        /* at most one U+200B (3 bytes) for every 2 bytes "](" */
        char *buf = malloc(strlen(s) / 2 * 3 + strlen(s) + 1), *o = buf;

        if (!buf)
                return NULL;
        for (; *s; s++) {
                *o++ = *s;
                if (s[0] == ']' && s[1] == '(')
                        o = stpcpy(o, ZERO_WIDTH_SPACE);
        }
        *o = 0;
        return buf;
}

/* Slack's three control characters, the only escaping its mrkdwn knows. */
static char *slack_escape(const char *s) {
        char *buf = malloc(strlen(s) * 5 + 1), *o = buf;

        if (!buf)
                return NULL;
        for (; *s; s++)
                switch (*s) {
                case '&':
                        o = stpcpy(o, "&amp;");
                        break;
                case '<':
                        o = stpcpy(o, "&lt;");
                        break;
                case '>':
                        o = stpcpy(o, "&gt;");
                        break;
                default:
                        *o++ = *s;
                }
        *o = 0;
        return buf;
}

/* Bytes and UTF-16 code units of the character or entity ("&amp;", counted as its five characters)
 * at s, which text_clean() has made valid UTF-8. */
static size_t text_atom(const char *s, size_t *units) {
        if (*s == '&') {
                const char *semicolon = strchr(s, ';');
                if (semicolon && semicolon - s <= 5) {
                        *units = (size_t) (semicolon - s) + 1;
                        return *units;
                }
        }
        uint32_t cp = 0;
        size_t n = utf8_decode(s, &cp);
        *units = cp >= 0x10000 ? 2 : 1;
        return n > 0 ? n : 1;
}

/* Takes s; returns it, or when longer than max UTF-16 code units, its longest head of whole characters
 * and entities that fits with "…" after it. */
static char *text_truncate(char *s, size_t max) {
        size_t units = 0, cut = 0;
        bool cut_set = false;

        if (!s)
                return NULL;
        for (const char *p = s; *p;) {
                size_t u, n = text_atom(p, &u);
                if (!cut_set && units + u > max - 1) {
                        cut = (size_t) (p - s);
                        cut_set = true;
                }
                units += u;
                if (units > max) {
                        char *t = malloc(cut + strlen(ELLIPSIS) + 1);
                        if (t)
                                strcpy(mempcpy(t, s, cut), ELLIPSIS);
                        free(s);
                        return t;
                }
                p += n;
        }
        return s;
}

static char *teams_text(const char *s, size_t max) {
        return text_truncate(teams_escape(s), max);
}

static char *slack_text(const char *s, size_t max) {
        return text_truncate(slack_escape(s), max);
}

/* ---- the card: a summary and facts, taken from the CloudEvent ---- */

typedef struct Fact {
        char *title;
        char *value;
        bool item; /* one line item of a list (order.completed, .discovered, .stalled) */
} Fact;

typedef struct Card {
        char *summary;
        const char *color; /* of the summary in Teams; NULL = default */
        Fact *facts;
        size_t n_facts;
} Card;

static void card_done(Card *c) {
        free(c->summary);
        for (size_t i = 0; i < c->n_facts; i++) {
                free(c->facts[i].title);
                free(c->facts[i].value);
        }
        free(c->facts);
}

/* Takes title and value (NULL = out of memory); an empty value adds no fact. */
static int card_add_take(Card *c, bool item, char *title, char *value) {
        _cleanup_free_ char *t = title, *v = value, *clean = NULL;
        Fact *facts;

        if (!t || !v)
                return -ENOMEM;
        if (!*v)
                return 0;
        clean = text_clean(v);
        if (!clean)
                return -ENOMEM;
        facts = realloc(c->facts, (c->n_facts + 1) * sizeof(Fact));
        if (!facts)
                return -ENOMEM;
        c->facts = facts;
        c->facts[c->n_facts++] = (Fact) { .title = TAKE_PTR(t), .value = TAKE_PTR(clean), .item = item };
        return 0;
}

/* A fact whose value is s; none when s is NULL or empty. */
static int card_add(Card *c, const char *title, const char *s) {
        return card_add_take(c, false, strdup(title), strdup(s ?: ""));
}

static const char *jstr(json_object *o, const char *key) {
        return json_get_cstring(json_get(o, key));
}

static bool jint(json_object *o, const char *key, int64_t *ret) {
        return json_get_int64(json_get(o, key), ret) >= 0;
}

/* Closes f, the open_memstream() of *buf; -ENOMEM (and *buf freed) when writing failed. */
static int memstream_close(FILE *f, char **buf) {
        bool failed = ferror(f);
        if (fclose(f) != 0 || failed) {
                *buf = mfree(*buf);
                return -ENOMEM;
        }
        return 0;
}

/* "fulfilled 3, prefulfillmentpending 2", in the event's order; nothing for {} or a non-object. */
static void fput_quantities(FILE *f, json_object *q) {
        bool first = true;

        if (!json_object_is_type(q, json_type_object))
                return;
        json_object_object_foreach(q, status, n) {
                int64_t v;
                if (json_get_int64(n, &v) < 0)
                        continue;
                fprintf(f, "%s%s %" PRIi64, first ? "" : ", ", status, v);
                first = false;
        }
}

static char *quantities_string(json_object *q) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        fput_quantities(f, q);
        return memstream_close(f, &buf) < 0 ? NULL : buf;
}

/* "Fabrikam Ltd (ID)", or whichever of the two the event has. */
static int card_add_customer(Card *c, json_object *data) {
        const char *name = jstr(data, "customer_name"), *id = jstr(data, "customer_id");

        if (!isempty(name) && !isempty(id))
                return card_add_take(c, false, strdup("Customer"), strdup_printf("%s (%s)", name, id));
        return card_add(c, "Customer", isempty(name) ? id : name);
}

static int card_add_order(Card *c, json_object *data) {
        int r = card_add_customer(c, data);
        return r < 0 ? r : card_add(c, "Order", jstr(data, "order_id"));
}

static int card_add_int(Card *c, const char *title, json_object *data, const char *key) {
        int64_t v;
        if (!jint(data, key, &v))
                return 0;
        return card_add_take(c, false, strdup(title), strdup_printf("%" PRIi64, v));
}

/* "0 · Microsoft 365 Business Premium", "0" or the name. */
static int card_add_line_item(Card *c, json_object *data) {
        const char *name = jstr(data, "friendly_name");
        int64_t number;

        if (!jint(data, "line_item_number", &number))
                return card_add(c, "Line item", name);
        if (isempty(name))
                return card_add_take(c, false, strdup("Line item"), strdup_printf("%" PRIi64, number));
        return card_add_take(c, false, strdup("Line item"),
                             strdup_printf("%" PRIi64 " · %s", number, name));
}

/* "old → new", or one of them when the other is missing or the same. */
static char *transition_string(const char *old, const char *new) {
        if (old && new && !streq(old, new))
                return strdup_printf("%s → %s", old, new);
        return strdup(new ?: old ?: "");
}

/* Status and quantities of a lineitem.* event: "prefulfillmentpending → fulfilled" and
 * "prefulfillmentpending 5 → fulfilled 3, prefulfillmentpending 2" (the quantities alone when they did
 * not change); a removed line item goes to "removed". */
static int card_add_lineitem_states(Card *c, json_object *data) {
        json_object *old = json_get(data, "old"), *new = json_get(data, "new");
        _cleanup_free_ char *old_q = NULL, *new_q = NULL;
        const char *old_status, *new_status;
        bool removed;
        int r;

        if (!json_object_is_type(old, json_type_object))
                old = NULL;
        if (!json_object_is_type(new, json_type_object))
                new = NULL;
        removed = old && !new;
        old_status = jstr(old, "status");
        new_status = removed ? "removed" : jstr(new, "status");
        r = card_add_take(c, false, strdup("Status"), transition_string(old_status, new_status));
        if (r < 0)
                return r;

        old_q = old ? quantities_string(json_get(old, "quantities")) : strdup("");
        new_q = new ? quantities_string(json_get(new, "quantities")) : strdup("");
        if (!old_q || !new_q)
                return -ENOMEM;
        if (old && new && !streq(old_q, new_q))
                return card_add_take(c, false, strdup("Quantities"),
                                     strdup_printf("%s → %s", isempty(old_q) ? "none" : old_q,
                                                   isempty(new_q) ? "none" : new_q));
        return card_add(c, "Quantities", new ? new_q : old_q);
}

static int facts_lineitem(Card *c, json_object *event, json_object *data) {
        int r = card_add_order(c, data);
        if (r >= 0)
                r = card_add_line_item(c, data);
        if (r >= 0)
                r = card_add(c, "Offer", jstr(data, "offer_id"));
        if (r >= 0)
                r = card_add_lineitem_states(c, data);
        return r;
}

/* One line item of a list: "Microsoft 365 Business Premium · fulfilled (fulfilled 3) · quantity 5 ·
 * offer CFQ7TTC0LDPB:0001", with the parts the event has; "unknown" when it has none. */
static char *item_string(json_object *item) {
        const char *name = jstr(item, "friendly_name"), *status = jstr(item, "status"),
                   *offer = jstr(item, "offer_id");
        _cleanup_free_ char *q = quantities_string(json_get(item, "quantities"));
        char *buf = NULL;
        size_t size = 0;
        const char *sep = "";
        int64_t quantity;
        FILE *f;

        if (!q)
                return NULL;
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        if (!isempty(name)) {
                fputs(name, f);
                sep = " · ";
        }
        if (!isempty(status)) {
                fprintf(f, "%s%s", sep, status);
                if (!isempty(q))
                        fprintf(f, " (%s)", q);
                sep = " · ";
        }
        if (jint(item, "quantity", &quantity)) {
                fprintf(f, "%squantity %" PRIi64, sep, quantity);
                sep = " · ";
        }
        if (!isempty(offer))
                fprintf(f, "%soffer %s", sep, offer);
        else if (isempty(sep))
                fputs("unknown", f); /* an item of a newer or broken event: still one per line item */
        return memstream_close(f, &buf) < 0 ? NULL : buf;
}

/* data.line_items as one fact each, "Line item N", at most ITEMS_MAX of them. */
static int card_add_items(Card *c, json_object *data) {
        json_object *items = json_get(data, "line_items");
        size_t n;

        if (!json_object_is_type(items, json_type_array))
                return 0;
        n = json_object_array_length(items);
        for (size_t i = 0; i < n && i < ITEMS_MAX; i++) {
                json_object *item = json_object_array_get_idx(items, i);
                int64_t number;
                char *title = jint(item, "line_item_number", &number)
                                    ? strdup_printf("Line item %" PRIi64, number)
                                    : strdup("Line item");
                int r = card_add_take(c, true, title, item_string(item));
                if (r < 0)
                        return r;
        }
        if (n > ITEMS_MAX)
                return card_add_take(c, true, strdup("More"),
                                     strdup_printf("%zu more line items", n - ITEMS_MAX));
        return 0;
}

static int facts_completed(Card *c, json_object *event, json_object *data) {
        int r = card_add_order(c, data);
        return r < 0 ? r : card_add_items(c, data);
}

static int facts_discovered(Card *c, json_object *event, json_object *data) {
        int r = card_add_order(c, data);
        if (r >= 0)
                r = card_add(c, "Created", jstr(data, "operation_date"));
        return r < 0 ? r : card_add_items(c, data);
}

static int facts_stalled(Card *c, json_object *event, json_object *data) {
        int r = card_add_order(c, data);
        if (r >= 0)
                r = card_add(c, "Unchanged since", jstr(data, "since"));
        return r < 0 ? r : card_add_items(c, data);
}

static int facts_order(Card *c, json_object *event, json_object *data) {
        return card_add_order(c, data);
}

/* Partner Center's error code is a number or a string. */
static int facts_not_found(Card *c, json_object *event, json_object *data) {
        int r = card_add_order(c, data);
        if (r >= 0)
                r = json_object_is_type(json_get(data, "code"), json_type_int)
                            ? card_add_int(c, "Code", data, "code")
                            : card_add(c, "Code", jstr(data, "code"));
        if (r >= 0)
                r = card_add(c, "Description", jstr(data, "description"));
        return r;
}

static int facts_fetch_failed(Card *c, json_object *event, json_object *data) {
        int r = card_add_order(c, data);
        if (r >= 0)
                r = card_add_int(c, "HTTP status", data, "http_status");
        if (r >= 0)
                r = card_add(c, "Reason", jstr(data, "reason"));
        if (r >= 0)
                r = card_add(c, "Correlation id", jstr(data, "correlation_id"));
        if (r >= 0)
                r = card_add(c, "Request id", jstr(data, "request_id"));
        if (r >= 0)
                r = card_add(c, "MS-CV", jstr(data, "ms_cv"));
        return r;
}

/* The tenant of subject "tenants/TENANT"; none for "tenants/-" (token file). */
static int card_add_tenant(Card *c, json_object *event) {
        const char *subject = jstr(event, "subject");

        if (!subject || strncmp(subject, "tenants/", strlen("tenants/")) != 0)
                return 0;
        subject += strlen("tenants/");
        return streq(subject, "-") ? 0 : card_add(c, "Tenant", subject);
}

/* "invalid_grant (AADSTS700082, AADSTS50173)": Entra's codes as people search for them. */
static char *auth_error_string(json_object *data) {
        const char *error = jstr(data, "error");
        json_object *codes = json_get(data, "error_codes");
        size_t n = json_object_is_type(codes, json_type_array) ? json_object_array_length(codes) : 0;
        const char *sep = "";
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        if (!isempty(error)) {
                fputs(error, f);
                sep = " (";
        }
        for (size_t i = 0; i < n; i++) {
                int64_t code;
                if (json_get_int64(json_object_array_get_idx(codes, i), &code) < 0)
                        continue;
                fprintf(f, "%sAADSTS%" PRIi64, sep, code);
                sep = ", ";
        }
        if (!isempty(error) && !streq(sep, " ("))
                fputc(')', f);
        return memstream_close(f, &buf) < 0 ? NULL : buf;
}

static int facts_auth_failed(Card *c, json_object *event, json_object *data) {
        _cleanup_free_ char *error = NULL;
        int r = card_add_tenant(c, event);

        if (r >= 0)
                r = card_add(c, "Grant", jstr(data, "grant"));
        if (r >= 0)
                r = card_add_int(c, "HTTP status", data, "http_status");
        if (r < 0)
                return r;
        error = auth_error_string(data);
        if (!error)
                return -ENOMEM;
        r = card_add(c, "Error", error);
        if (r >= 0)
                r = card_add(c, "Description", jstr(data, "description"));
        if (r >= 0)
                r = card_add(c, "Action", jstr(data, "action"));
        return r;
}

static int facts_auth(Card *c, json_object *event, json_object *data) {
        return card_add_tenant(c, event);
}

/* A type of a later release: what every event has. */
static int facts_unknown(Card *c, json_object *event, json_object *data) {
        int r = card_add_order(c, data);
        return r < 0 ? r : card_add(c, "Subject", jstr(event, "subject"));
}

typedef int (*FactsFunc)(Card *c, json_object *event, json_object *data);

static const struct {
        const char *type;
        const char *color; /* Adaptive Card TextBlock color of the summary */
        FactsFunc facts;
} card_types[] = {
        { "provwatch.lineitem.added", NULL, facts_lineitem },
        { "provwatch.lineitem.changed", NULL, facts_lineitem },
        { "provwatch.lineitem.removed", NULL, facts_lineitem },
        { "provwatch.order.completed", NULL, facts_completed },
        { "provwatch.order.not_found", "attention", facts_not_found },
        { "provwatch.order.fetch_failed", "attention", facts_fetch_failed },
        { "provwatch.order.recovered", "good", facts_order },
        { "provwatch.order.discovered", NULL, facts_discovered },
        { "provwatch.order.stalled", "warning", facts_stalled },
        { "provwatch.auth.failed", "attention", facts_auth_failed },
        { "provwatch.auth.recovered", "good", facts_auth },
};

static int card_build(json_object *event, const char *summary, Card *c) {
        const char *type = jstr(event, "type");
        json_object *data = json_get(event, "data");
        FactsFunc facts = facts_unknown;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(card_types); i++)
                if (streq(type, card_types[i].type)) {
                        facts = card_types[i].facts;
                        c->color = card_types[i].color;
                        break;
                }
        c->summary = text_clean(isempty(summary) ? type : summary);
        if (!c->summary)
                return -ENOMEM;
        r = facts(c, event, data);
        if (r >= 0)
                r = card_add(c, "Event", type);
        if (r >= 0)
                r = card_add(c, "Time", jstr(event, "time"));
        return r;
}

/* ---- JSON ---- */

/* Appends v to the array a, taking it; -ENOMEM when v is NULL or cannot be added. */
static int json_append(json_object *a, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(a, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* Takes s (NULL = out of memory) and returns it as a JSON string. */
static json_object *json_string_take(char *s) {
        _cleanup_free_ char *t = s;
        return t ? json_object_new_string(t) : NULL;
}

static json_object *teams_fact(const Fact *fact) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o || json_add(o, "title", json_string_take(teams_text(fact->title, FIELD_MAX))) < 0 ||
            json_add(o, "value", json_string_take(teams_text(fact->value, FIELD_MAX))) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static json_object *teams_summary(const Card *c) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o || json_add(o, "type", json_object_new_string("TextBlock")) < 0 ||
            json_add(o, "text", json_string_take(teams_text(c->summary, TEXT_MAX))) < 0 ||
            json_add(o, "wrap", json_object_new_boolean(true)) < 0 ||
            json_add(o, "weight", json_object_new_string("bolder")) < 0 ||
            (c->color && json_add(o, "color", json_object_new_string(c->color)) < 0))
                return NULL;
        return TAKE_PTR(o);
}

static json_object *teams_factset(const Card *c) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *facts;

        if (!o || json_add(o, "type", json_object_new_string("FactSet")) < 0 ||
            json_add(o, "facts", json_object_new_array()) < 0)
                return NULL;
        facts = json_get(o, "facts");
        for (size_t i = 0; i < c->n_facts; i++)
                if (json_append(facts, teams_fact(&c->facts[i])) < 0)
                        return NULL;
        return TAKE_PTR(o);
}

/* Adaptive Card 1.4, with nothing outside its schema: the Teams-only "msteams" property (full width)
 * is left out, since the 1.4 schema allows no additional properties on the card. */
static json_object *teams_card(const Card *c) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *body;

        if (!o || json_add(o, "type", json_object_new_string("AdaptiveCard")) < 0 ||
            json_add(o, "version", json_object_new_string("1.4")) < 0 ||
            json_add(o, "$schema", json_object_new_string(ADAPTIVE_CARD_SCHEMA)) < 0 ||
            json_add(o, "body", json_object_new_array()) < 0)
                return NULL;
        body = json_get(o, "body");
        if (json_append(body, teams_summary(c)) < 0 || json_append(body, teams_factset(c)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* {"type":"message","attachments":[{"contentType":…,"contentUrl":null,"content":CARD}]}: what a Teams
 * Workflows "When a Teams webhook request is received" flow posts to a channel. */
static json_object *teams_body(const Card *c) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *attachment = NULL;

        attachment = json_object_new_object();
        if (!o || !attachment ||
            json_add(attachment, "contentType", json_object_new_string(ADAPTIVE_CARD_CONTENT_TYPE)) < 0 ||
            json_object_object_add(attachment, "contentUrl", NULL) < 0 ||
            json_add(attachment, "content", teams_card(c)) < 0 ||
            json_add(o, "type", json_object_new_string("message")) < 0 ||
            json_add(o, "attachments", json_object_new_array()) < 0 ||
            json_append(json_get(o, "attachments"), TAKE_PTR(attachment)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* {"type":"mrkdwn","text":…}, taking text */
static json_object *slack_mrkdwn(char *text) {
        _cleanup_free_ char *t = text;
        _cleanup_(json_object_putp) json_object *o = NULL;

        if (!t)
                return NULL;
        o = json_object_new_object();
        if (!o || json_add(o, "type", json_object_new_string("mrkdwn")) < 0 ||
            json_add(o, "text", json_object_new_string(t)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* {"type":"section","text":{"type":"mrkdwn","text":…}}, taking text */
static json_object *slack_text_section(char *text) {
        _cleanup_(json_object_putp) json_object *t = slack_mrkdwn(text), *o = NULL;

        o = json_object_new_object();
        if (!t || !o || json_add(o, "type", json_object_new_string("section")) < 0 ||
            json_add(o, "text", TAKE_PTR(t)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* Facts go into the fields of a section, Slack's two columns, up to FIELDS_MAX of them; line items
 * (and facts beyond the fields) go into the lines of one more section. */
static bool slack_is_field(const Card *c, size_t i) {
        size_t before = 0;

        if (c->facts[i].item)
                return false;
        for (size_t j = 0; j < i; j++)
                before += !c->facts[j].item;
        return before < FIELDS_MAX;
}

/* "*Title*\nvalue", escaped and cut at FIELD_MAX */
static char *slack_field_text(const Fact *fact) {
        _cleanup_free_ char *value = slack_escape(fact->value);
        return value ? text_truncate(strdup_printf("*%s*\n%s", fact->title, value), FIELD_MAX) : NULL;
}

/* Appends {"type":"section","fields":[…]} to blocks, unless there are no fields. */
static int slack_add_fields(json_object *blocks, const Card *c) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *fields;
        size_t n = 0;

        for (size_t i = 0; i < c->n_facts; i++)
                n += slack_is_field(c, i);
        if (n == 0)
                return 0;
        o = json_object_new_object();
        if (!o || json_add(o, "type", json_object_new_string("section")) < 0 ||
            json_add(o, "fields", json_object_new_array()) < 0)
                return -ENOMEM;
        fields = json_get(o, "fields");
        for (size_t i = 0; i < c->n_facts; i++)
                if (slack_is_field(c, i) &&
                    json_append(fields, slack_mrkdwn(slack_field_text(&c->facts[i]))) < 0)
                        return -ENOMEM;
        return json_append(blocks, TAKE_PTR(o));
}

/* "*Line item 0*: value" lines, escaped and cut at TEXT_MAX; "" when there are none. */
static char *slack_lines(const Card *c) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        bool first = true;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; i < c->n_facts; i++) {
                if (slack_is_field(c, i))
                        continue;
                _cleanup_free_ char *value = slack_escape(c->facts[i].value);
                if (!value) {
                        fclose(f);
                        return NULL;
                }
                fprintf(f, "%s*%s*: %s", first ? "" : "\n", c->facts[i].title, value);
                first = false;
        }
        if (memstream_close(f, &buf) < 0)
                return NULL;
        return text_truncate(TAKE_PTR(buf), TEXT_MAX);
}

/* {"text": SUMMARY, "blocks": [...]} for a Slack incoming webhook; "text" is what notifications show. */
static json_object *slack_body(const Card *c) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_free_ char *lines = slack_lines(c);
        json_object *blocks;

        if (!o || !lines || json_add(o, "text", json_string_take(slack_text(c->summary, TEXT_MAX))) < 0 ||
            json_add(o, "blocks", json_object_new_array()) < 0)
                return NULL;
        blocks = json_get(o, "blocks");
        if (json_append(blocks, slack_text_section(slack_text(c->summary, TEXT_MAX))) < 0)
                return NULL;
        if (slack_add_fields(blocks, c) < 0)
                return NULL;
        if (!isempty(lines) && json_append(blocks, slack_text_section(TAKE_PTR(lines))) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* ---- parsing ---- */

static bool is_json_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The CloudEvent: an object with a non-empty string type and an object data, nothing after it. */
static int event_parse(const char *json, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        size_t len = strlen(json), end;
        enum json_tokener_error err;
        json_tokener *tok;

        if (len > INT_MAX)
                return -EBADMSG;
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, json, (int) len);
        err = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (err != json_tokener_success)
                return -EBADMSG;
        for (; end < len; end++)
                if (!is_json_space(json[end]))
                        return -EBADMSG;
        if (!json_object_is_type(o, json_type_object) || isempty(jstr(o, "type")) ||
            !json_object_is_type(json_get(o, "data"), json_type_object))
                return -EBADMSG;
        *ret = TAKE_PTR(o);
        return 0;
}

int webhook_format_body(WebhookFormat f, const char *event_json, const char *summary, char **ret) {
        _cleanup_(json_object_putp) json_object *event = NULL, *body = NULL;
        _cleanup_(card_done) Card card = {};
        const char *s;
        char *copy;
        int r;

        if (!webhook_format_to_string(f) || !event_json || !ret)
                return -EINVAL;
        r = event_parse(event_json, &event);
        if (r < 0)
                return r;

        if (f == WEBHOOK_FORMAT_CLOUDEVENTS)
                copy = strdup(event_json);
        else {
                r = card_build(event, summary, &card);
                if (r < 0)
                        return r;
                body = f == WEBHOOK_FORMAT_TEAMS ? teams_body(&card) : slack_body(&card);
                if (!body)
                        return -ENOMEM;
                s = json_object_to_json_string_ext(body,
                                                   JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
                copy = s ? strdup(s) : NULL;
        }
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}
