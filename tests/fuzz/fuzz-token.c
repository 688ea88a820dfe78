/* SPDX-License-Identifier: MIT */
/* The token endpoint's answer (pc_parse_token_response()) and Partner Center error bodies
 * (pc_parse_error()) on arbitrary bytes; then the same bytes, cut at NUL bytes into fields, through
 * the form encoder of token requests, which must decode back to the fields. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "partner-center.h"

#define TOKEN_EXPIRES_MAX_USEC ((uint64_t) 10 * 366 * 24 * 3600 * USEC_PER_SEC)

static char sentinel[] = "untouched";

static bool token_is_valid(const char *s) {
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= ' ' || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

static void fuzz_token_response(const char *body, size_t size) {
        TokenResponse t = { .access_token = sentinel };
        const char *reason = "unset";

        int r = pc_parse_token_response(body, size, &t, &reason);
        if (r < 0) {
                fuzz_assert(r == -EBADMSG || r == -E2BIG || r == -ENOMEM);
                fuzz_assert(reason && *reason && !fuzz_has_control_chars(reason, ""));
                fuzz_assert(t.access_token == sentinel && !t.refresh_token && !t.error);
                return;
        }
        fuzz_assert(r == 0 && !reason);
        if (t.error) {
                fuzz_assert(*t.error);
        } else {
                fuzz_assert(token_is_valid(t.access_token));
                fuzz_assert(!t.refresh_token || token_is_valid(t.refresh_token));
                fuzz_assert(t.expires_in_usec >= USEC_PER_SEC && t.expires_in_usec <= TOKEN_EXPIRES_MAX_USEC);
                fuzz_assert(!t.error_description);
        }
        token_response_done(&t);
        fuzz_assert(!t.access_token && !t.refresh_token && !t.error && !t.error_description);
}

static void fuzz_error_body(const char *body, size_t size) {
        char *code = sentinel, *description = sentinel;

        int r = pc_parse_error(body, size, &code, &description);
        fuzz_assert(pc_parse_error(body, size, NULL, NULL) == r);
        if (r < 0) {
                fuzz_assert(r == -EBADMSG || r == -E2BIG || r == -ENOMEM);
                fuzz_assert(code == sentinel && description == sentinel);
                return;
        }
        fuzz_assert(r == 0);
        fuzz_assert(code != sentinel && description != sentinel);
        fuzz_assert(code || description);
        free(code);
        free(description);
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static bool unreserved(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr("-._~", c);
}

/* Decodes "name=value&..." in place and checks it against the fields, in order. */
static void check_form(char *body, const char *const names[], const char *const values[], size_t n) {
        char *p = body;

        for (size_t i = 0; i < n; i++) {
                if (!values[i])
                        continue;
                if (p != body) {
                        fuzz_assert(*p == '&');
                        p++;
                }
                size_t l = strlen(names[i]);
                fuzz_assert(strncmp(p, names[i], l) == 0 && p[l] == '=');
                p += l + 1;
                for (const char *v = values[i]; *v; v++) {
                        if (unreserved(*v)) {
                                fuzz_assert(*p == *v);
                                p++;
                                continue;
                        }
                        fuzz_assert(p[0] == '%' && unhex(p[1]) >= 0 && unhex(p[2]) >= 0);
                        fuzz_assert((unsigned char) (unhex(p[1]) * 16 + unhex(p[2])) == (unsigned char) *v);
                        p += 3;
                }
        }
        fuzz_assert(*p == 0);
}

static void fuzz_form_encoding(const uint8_t *data, size_t size) {
        static const char *const names[] = { "grant_type", "refresh_token", "client_id", "client_secret",
                                             "resource" };
        const char *values[ELEMENTSOF(names)] = {};
        _cleanup_free_ char *copy = malloc(size + 1);
        fuzz_assert(copy);
        if (size > 0)
                memcpy(copy, data, size);
        copy[size] = 0;

        /* fields cut at NUL bytes; an empty field means "left out" */
        char *p = copy;
        for (size_t i = 0; i < ELEMENTSOF(names) && p <= copy + size; i++) {
                values[i] = *p ? p : NULL;
                p += strlen(p) + 1;
        }
        _cleanup_free_ char *body = pc_token_request_body(values[0], values[1], values[2], values[3], values[4]);
        fuzz_assert(body);
        check_form(body, names, values, ELEMENTSOF(names));

        if (values[0] && values[1] && values[2] && values[3]) {
                _cleanup_free_ char *url = pc_provisioning_url(values[0], values[1], values[2], values[3]);
                fuzz_assert(url);
                size_t l = strlen(url), s = strlen("/provisioningstatus");
                fuzz_assert(l >= s && strcmp(url + l - s, "/provisioningstatus") == 0);
                fuzz_assert(strstr(url, "/customers/") && strstr(url, "/orders/"));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_token_response((const char *) data, size);
        fuzz_error_body((const char *) data, size);
        if (size < 4096)
                fuzz_form_encoding(data, size);
        return 0;
}
