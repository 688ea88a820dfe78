/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "config-values.h"
#include "config.h"
#include "http-syntax.h"
#include "parse-util.h"
#include "strv.h"

_printf_(2, 3) static int value_error(char **ret_error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(ret_error, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

static int set_string(char **field, const char *v) {
        char *s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static bool api_version_is_valid(const char *s) {
        size_t a = strspn(s, "0123456789");
        if (a == 0 || strlen(s) > 16)
                return false;
        if (s[a] == 0)
                return true;
        if (s[a] != '.')
                return false;
        size_t b = strspn(s + a + 1, "0123456789");
        return b > 0 && s[a + 1 + b] == 0;
}

bool tenant_id_is_valid(const char *s) {
        return !isempty(s) && strlen(s) <= 255 && ascii_alnum_or_in(s, strlen(s), ".-");
}

static int set_url(char **field, const char *v, bool endpoint, char **ret_error) {
        char buf[ESCAPE_BUF];

        if (!url_is_valid(v, endpoint)) {
                _cleanup_free_ char *masked = url_mask(v);
                if (!masked)
                        return -ENOMEM;
                return value_error(ret_error, "%s is not an http:// or https:// URL with a host%s",
                                   escape_message(buf, masked, true),
                                   endpoint ? " (and without query or fragment)" : "");
        }
        if (set_string(field, v) < 0)
                return -ENOMEM;
        if (endpoint) {
                size_t l = strlen(*field);
                while (l > 0 && (*field)[l - 1] == '/')
                        (*field)[--l] = 0;
        }
        return 0;
}

static int set_timespan(uint64_t *field, const ValueRange *range, const char *v, char **ret_error) {
        char buf[ESCAPE_BUF], max[FORMAT_TIMESPAN_MAX];
        uint64_t usec;

        if (parse_timespan(v, &usec) < 0)
                return value_error(ret_error, "%s is not a time span", escape_message(buf, v, true));
        if (usec == 0 && range->min > 0)
                return value_error(ret_error, "%s must be greater than zero", escape_message(buf, v, true));
        if (range->max_usec > 0 && usec > range->max_usec)
                return value_error(ret_error, "%s is more than the maximum of %s", escape_message(buf, v, true),
                                   format_timespan(max, sizeof max, range->max_usec));
        *field = usec;
        return 0;
}

static int add_words(char ***l, const char *v, bool replace, char **ret_error) {
        char buf[ESCAPE_BUF];

        if (has_control_chars(v))
                return value_error(ret_error, "%s contains control characters", escape_message(buf, v, true));
        if (replace) {
                _cleanup_(strv_freep) char **words = NULL;
                if (strv_split_extend(&words, v, WHITESPACE) < 0)
                        return -ENOMEM;
                for (char **w = words; w && *w; w++)
                        ascii_strlower(*w);
                strv_free(*l);
                *l = TAKE_PTR(words);
                return 0;
        }
        return strv_split_extend(l, v, WHITESPACE);
}

static int add_header(char ***headers, const char *v, char **ret_error) {
        static const char *const reserved[] = {
                "content-type",      "content-length",    "host", "transfer-encoding", "webhook-id",
                "webhook-timestamp", "webhook-signature",
        };
        char buf[ESCAPE_BUF];

        /* never quote the value: it is likely a credential */
        const char *colon = strchr(v, ':');
        if (!colon)
                return value_error(ret_error, "expected \"NAME: VALUE\"");
        _cleanup_free_ char *name = strndup(v, (size_t) (colon - v));
        if (!name)
                return -ENOMEM;
        char *n = strip(name);
        if (!http_header_name_is_valid(n))
                return value_error(ret_error, "%s is not a valid header name", escape_message(buf, n, true));
        for (size_t i = 0; i < ELEMENTSOF(reserved); i++)
                if (strcasecmp(n, reserved[i]) == 0)
                        return value_error(ret_error, "header %s is set by provwatch", escape_message(buf, n, true));
        const char *value = colon + 1 + strspn(colon + 1, WHITESPACE);
        if (!*value)
                return value_error(ret_error, "header %s has an empty value", escape_message(buf, n, true));
        if (!http_header_value_is_valid(value))
                return value_error(ret_error, "value of header %s contains control characters",
                                   escape_message(buf, n, true));
        if (!*headers) {
                *headers = strv_new_empty();
                if (!*headers)
                        return -ENOMEM;
        }
        return strv_consume(headers, strdup_printf("%s: %s", n, value));
}

/* Space-separated customer IDs, checked like those of "order =". */
static int add_customers(char ***l, const char *v, char **ret_error) {
        char buf[ESCAPE_BUF];
        _cleanup_(strv_freep) char **ids = NULL;

        if (strv_split_extend(&ids, v, WHITESPACE) < 0)
                return -ENOMEM;
        for (char **id = ids; *id; id++)
                if (!order_ref_id_is_valid(*id, strlen(*id)))
                        return value_error(ret_error, "%s is not a valid customer ID (" ORDER_REF_ID_RULE ")",
                                           escape_message(buf, *id, true));
        for (char **id = ids; *id; id++)
                if (strv_consume(l, strdup(*id)) < 0)
                        return -ENOMEM;
        return 0;
}

static int set_auth(AuthMode *m, const char *v, char **ret_error) {
        char buf[ESCAPE_BUF];

        for (AuthMode a = 0; a <= AUTH_TOKEN_FILE; a++)
                if (streq(v, auth_mode_to_string(a))) {
                        *m = a;
                        return 0;
                }
        return value_error(ret_error, "%s is not one of refresh-token, client-credentials, token-file",
                           escape_message(buf, v, true));
}

static int set_journal(JournalMode *m, const char *v, char **ret_error) {
        char buf[ESCAPE_BUF];
        int r;

        if (strcasecmp(v, "auto") == 0)
                *m = JOURNAL_AUTO;
        else if ((r = parse_boolean(v)) >= 0)
                *m = r ? JOURNAL_YES : JOURNAL_NO;
        else
                return value_error(ret_error, "%s is not auto or a boolean (yes, no, true, false, 1, 0)",
                                   escape_message(buf, v, true));
        return 0;
}

int value_set(ValueType type, const ValueRange *range, void *field, const char *v, char **ret_error) {
        char buf[ESCAPE_BUF];
        unsigned u;
        int r;

        *ret_error = NULL;
        switch (type) {
        case VALUE_STRING:
                if (has_space_or_control_chars(v))
                        return value_error(ret_error, "%s contains spaces or control characters",
                                           escape_message(buf, v, true));
                return set_string(field, v);

        case VALUE_PATH:
        case VALUE_SECRET_FILE:
                if (has_control_chars(v))
                        return value_error(ret_error, "%s contains control characters", escape_message(buf, v, true));
                return set_string(field, v);

        case VALUE_URL:
        case VALUE_ENDPOINT:
                return set_url(field, v, type == VALUE_ENDPOINT, ret_error);

        case VALUE_API_VERSION:
                if (!api_version_is_valid(v))
                        return value_error(ret_error, "%s is not an API version such as 1",
                                           escape_message(buf, v, true));
                return set_string(field, v);

        case VALUE_AUTH:
                return set_auth(field, v, ret_error);

        case VALUE_TENANT_ID:
                if (!tenant_id_is_valid(v))
                        return value_error(ret_error, "%s is not a tenant ID (a GUID or a domain name)",
                                           escape_message(buf, v, true));
                return set_string(field, v);

        case VALUE_CLIENT_ID:
                if (!order_ref_id_is_valid(v, strlen(v)))
                        return value_error(ret_error, "%s is not a client ID (such as a GUID)",
                                           escape_message(buf, v, true));
                return set_string(field, v);

        case VALUE_LOCALE:
                if (strlen(v) > 35 || !ascii_alnum_or_in(v, strlen(v), "-"))
                        return value_error(ret_error, "%s is not a locale such as en-US", escape_message(buf, v, true));
                return set_string(field, v);

        case VALUE_TIMESPAN:
                return set_timespan(field, range, v, ret_error);

        case VALUE_UNSIGNED:
                if (parse_unsigned(v, range->max, &u) < 0 || u < range->min)
                        return value_error(ret_error, "%s is not a number between %u and %u",
                                           escape_message(buf, v, true), range->min, range->max);
                *(unsigned *) field = u;
                return 0;

        case VALUE_BOOLEAN:
                if ((r = parse_boolean(v)) < 0)
                        return value_error(ret_error, "%s is not a boolean (yes, no, true, false, 1, 0)",
                                           escape_message(buf, v, true));
                *(bool *) field = r;
                return 0;

        case VALUE_JOURNAL:
                return set_journal(field, v, ret_error);

        case VALUE_WEBHOOK_FORMAT: {
                WebhookFormat f = webhook_format_from_string(v);
                if (f < 0)
                        return value_error(ret_error, "%s is not one of cloudevents, teams, slack",
                                           escape_message(buf, v, true));
                *(WebhookFormat *) field = f;
                return 0;
        }

        case VALUE_STATUSES:
        case VALUE_EVENTS:
                return add_words(field, v, type == VALUE_STATUSES, ret_error);

        case VALUE_HEADER:
                return add_header(field, v, ret_error);

        case VALUE_CUSTOMERS:
                return add_customers(field, v, ret_error);

        case VALUE_ORDER:
                break;
        }
        return -EINVAL;
}
