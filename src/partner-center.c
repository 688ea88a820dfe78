/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "alloc-util.h"
#include "http-syntax.h"
#include "partner-center.h"
#include "provisioning-scan.h"
#include "strv.h"
#include "json-util.h"

/* Ten years, a sanity bound for expires_in. */
#define TOKEN_EXPIRES_MAX_SEC ((uint64_t) 10 * 366 * 24 * 3600)

static _Thread_local char reason_buffer[256];

_printf_(1, 2) static const char *reasonf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason_buffer, sizeof reason_buffer, fmt, ap);
        va_end(ap);
        return reason_buffer;
}

static bool is_json_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Body → JSON object: size limit, BOM, NUL bytes, syntax, trailing garbage. */
/* A token answer's strings are secrets: wiped in the tree, and in the tokener's buffer that held
 * them while parsing, before the memory goes back. */
static void json_wipe_strings(json_object *o) {
        if (json_object_is_type(o, json_type_string)) {
                explicit_bzero((char *) json_object_get_string(o), (size_t) json_object_get_string_len(o));
        } else if (json_object_is_type(o, json_type_object)) {
                json_object_object_foreach(o, k, v) {
                        (void) k;
                        json_wipe_strings(v);
                }
        } else if (json_object_is_type(o, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        json_wipe_strings(json_object_array_get_idx(o, i));
        }
}

static void json_object_wipe_putp(json_object **o) {
        json_wipe_strings(*o);
        json_object_put(*o);
}

static void json_tokener_wipe_free(json_tokener *tok) {
        /* json-c 0.16 has no API for this; the struct is public, its fields documented as private. */
        if (tok->pb && tok->pb->buf)
                explicit_bzero(tok->pb->buf, (size_t) tok->pb->size);
        json_tokener_free(tok);
}

static int json_parse_body(const char *body, size_t size, bool sensitive, json_object **ret,
                           const char **reason) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        enum json_tokener_error err;
        json_tokener *tok;
        size_t end;

        if (size > PC_MAX_BODY) {
                *reason = "body is larger than 8 MiB";
                return -E2BIG;
        }
        if (size > 0 && !body)
                return -EINVAL;
        if (size >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0) {
                body += 3;
                size -= 3;
        }
        size_t start = 0;
        while (start < size && is_json_space(body[start]))
                start++;
        if (start == size) {
                *reason = "empty body";
                return -EBADMSG;
        }
        if (memchr(body, 0, size)) {
                *reason = "body contains a NUL byte";
                return -EBADMSG;
        }

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, body, (int) size);
        err = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        if (sensitive)
                json_tokener_wipe_free(tok);
        else
                json_tokener_free(tok);

        if (err == json_tokener_continue) {
                *reason = "truncated JSON";
                return -EBADMSG;
        }
        if (err == json_tokener_error_depth) {
                *reason = "JSON nested too deeply";
                return -EBADMSG;
        }
        if (err != json_tokener_success) {
                *reason = reasonf("invalid JSON at byte %zu: %s", end, json_tokener_error_desc(err));
                return -EBADMSG;
        }
        for (; end < size; end++)
                if (!is_json_space(body[end])) {
                        *reason = "trailing garbage after JSON";
                        return -EBADMSG;
                }
        if (!json_object_is_type(o, json_type_object)) {
                if (sensitive)
                        json_wipe_strings(o);
                *reason = "body is not a JSON object";
                return -EBADMSG;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int parse_quantities(json_object *a, size_t i, const char **q_status, int64_t *q_quantity, size_t n,
                            const char **reason) {
        for (size_t j = 0; j < n; j++) {
                json_object *q = json_object_array_get_idx(a, j), *v;
                int r;

                if (!json_object_is_type(q, json_type_object)) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu] is not an object", i, j);
                        return -EBADMSG;
                }
                v = json_get(q, "quantity");
                if (!v) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu].quantity is missing", i, j);
                        return -EBADMSG;
                }
                r = json_get_int64(v, &q_quantity[j]);
                if (r == -ERANGE) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu].quantity is out of range", i, j);
                        return -EBADMSG;
                }
                if (r < 0) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu].quantity is not an integer", i, j);
                        return -EBADMSG;
                }
                if (q_quantity[j] < 0) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu].quantity is negative", i, j);
                        return -EBADMSG;
                }
                v = json_get(q, "status");
                if (!v) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu].status is missing", i, j);
                        return -EBADMSG;
                }
                q_status[j] = json_get_cstring(v);
                if (!q_status[j]) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu].status is not a string", i, j);
                        return -EBADMSG;
                }
                if (!status_is_valid(q_status[j])) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation[%zu].status is not a valid status", i, j);
                        return -EBADMSG;
                }
        }
        return 0;
}

static int parse_item(json_object *o, size_t i, LineItem *ret, const char **reason) {
        json_object *v;
        int64_t number, olid = 0;
        bool has_olid = false;
        const char *status;
        int r;

        if (!json_object_is_type(o, json_type_object)) {
                *reason = reasonf("items[%zu] is not an object", i);
                return -EBADMSG;
        }

        v = json_get(o, "lineItemNumber");
        if (!v) {
                *reason = reasonf("items[%zu].lineItemNumber is missing", i);
                return -EBADMSG;
        }
        r = json_get_int64(v, &number);
        if (r < 0) {
                *reason = reasonf(r == -ERANGE ? "items[%zu].lineItemNumber is out of range"
                                               : "items[%zu].lineItemNumber is not an integer", i);
                return -EBADMSG;
        }

        v = json_get(o, "orderLineItemId");
        if (v) {
                r = json_get_int64(v, &olid);
                if (r < 0) {
                        *reason = reasonf(r == -ERANGE ? "items[%zu].orderLineItemId is out of range"
                                                       : "items[%zu].orderLineItemId is not an integer", i);
                        return -EBADMSG;
                }
                has_olid = true;
        }

        v = json_get(o, "status");
        if (!v) {
                *reason = reasonf("items[%zu].status is missing", i);
                return -EBADMSG;
        }
        status = json_get_cstring(v);
        if (!status) {
                *reason = reasonf("items[%zu].status is not a string", i);
                return -EBADMSG;
        }
        if (!status_is_valid(status)) {
                *reason = reasonf("items[%zu].status is not a valid status", i);
                return -EBADMSG;
        }

        size_t n_q = 0;
        v = json_get(o, "quantityProvisioningInformation");
        if (v) {
                if (!json_object_is_type(v, json_type_array)) {
                        *reason = reasonf("items[%zu].quantityProvisioningInformation is not an array", i);
                        return -EBADMSG;
                }
                n_q = json_object_array_length(v);
        }
        _cleanup_free_ const char **q_status = n_q > 0 ? calloc(n_q, sizeof(char *)) : NULL;
        _cleanup_free_ int64_t *q_quantity = n_q > 0 ? calloc(n_q, sizeof(int64_t)) : NULL;
        if (n_q > 0 && (!q_status || !q_quantity))
                return -ENOMEM;
        r = parse_quantities(v, i, q_status, q_quantity, n_q, reason);
        if (r < 0)
                return r;

        r = line_item_init(ret, number, has_olid, olid, status, q_status, q_quantity, n_q);
        if (r == -EOVERFLOW) {
                *reason = reasonf("items[%zu].quantityProvisioningInformation: sum of quantities overflows", i);
                return -EBADMSG;
        }
        if (r == -EINVAL) {
                *reason = reasonf("items[%zu] is invalid", i);
                return -EBADMSG;
        }
        return r;
}

static bool uri_is_valid(const char *s) {
        if (s[0] != '/')
                return false;
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (c <= ' ' || c >= 0x7f)
                        return false;
        }
        return true;
}

static int parse_next_headers(json_object *a, char ***ret, const char **reason) {
        size_t n = a ? json_object_array_length(a) : 0;
        _cleanup_(strv_freep) char **l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;

        for (size_t j = 0; j < n; j++) {
                json_object *h = json_object_array_get_idx(a, j);
                const char *key, *value;

                if (!json_object_is_type(h, json_type_object)) {
                        *reason = reasonf("links.next.headers[%zu] is not an object", j);
                        return -EBADMSG;
                }
                key = json_get_cstring(json_get(h, "key"));
                if (!key) {
                        *reason = reasonf("links.next.headers[%zu].key is not a string", j);
                        return -EBADMSG;
                }
                if (!http_header_name_is_valid(key)) {
                        *reason = reasonf("links.next.headers[%zu].key is not a valid header name", j);
                        return -EBADMSG;
                }
                value = json_get_cstring(json_get(h, "value"));
                if (!value) {
                        *reason = reasonf("links.next.headers[%zu].value is not a string", j);
                        return -EBADMSG;
                }
                if (!http_header_value_is_valid(value)) {
                        *reason = reasonf("links.next.headers[%zu].value contains control characters", j);
                        return -EBADMSG;
                }
                l[j] = strdup_printf("%s: %s", key, value);
                if (!l[j])
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int parse_links(json_object *root, PcPage *ret, const char **reason) {
        _cleanup_(pc_page_done) PcPage p = {};
        json_object *links, *next, *v;
        const char *uri;
        int r;

        links = json_get(root, "links");
        if (!links)
                goto done;
        if (!json_object_is_type(links, json_type_object)) {
                *reason = "links is not an object";
                return -EBADMSG;
        }
        next = json_get(links, "next");
        if (!next)
                goto done;
        if (!json_object_is_type(next, json_type_object)) {
                *reason = "links.next is not an object";
                return -EBADMSG;
        }
        v = json_get(next, "uri");
        if (!v) {
                *reason = "links.next.uri is missing";
                return -EBADMSG;
        }
        uri = json_get_cstring(v);
        if (!uri) {
                *reason = "links.next.uri is not a string";
                return -EBADMSG;
        }
        if (!uri_is_valid(uri)) {
                *reason = "links.next.uri is not a path starting with '/'";
                return -EBADMSG;
        }
        v = json_get(next, "headers");
        if (v && !json_object_is_type(v, json_type_array)) {
                *reason = "links.next.headers is not an array";
                return -EBADMSG;
        }
        r = parse_next_headers(v, &p.next_headers, reason);
        if (r < 0)
                return r;
        p.next_uri = strdup(uri);
        if (!p.next_uri)
                return -ENOMEM;
done:
        *ret = p;
        p = (PcPage) {};
        return 0;
}

void pc_page_done(PcPage *p) {
        if (!p)
                return;
        free(p->next_uri);
        strv_free(p->next_headers);
        *p = (PcPage) {};
}

int pc_parse_collection(const char *body, size_t size, json_object **ret_root, json_object **ret_items, PcPage *page,
                        const char **reason) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(pc_page_done) PcPage p = {};
        json_object *v, *items;
        int r;

        r = json_parse_body(body, size, false, &root, reason);
        if (r < 0)
                return r;
        v = json_get(root, "totalCount");
        if (v) {
                int64_t total;
                r = json_get_int64(v, &total);
                if (r < 0) {
                        *reason = r == -ERANGE ? "totalCount is out of range" : "totalCount is not an integer";
                        return -EBADMSG;
                }
        }
        if (!json_object_object_get_ex(root, "items", &items)) {
                *reason = "missing items";
                return -EBADMSG;
        }
        if (!json_object_is_type(items, json_type_array)) {
                *reason = "items is not an array";
                return -EBADMSG;
        }
        r = parse_links(root, &p, reason);
        if (r < 0)
                return r;
        *ret_items = items;
        *ret_root = TAKE_PTR(root);
        if (page) {
                *page = p;
                p = (PcPage) {};
        }
        return 0;
}

static int parse_provisioning_page(const char *body, size_t size, Snapshot *snap, PcPage *page, const char **reason) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(line_item_array_done) LineItemArray a = {};
        _cleanup_(pc_page_done) PcPage p = {};
        json_object *items;
        int64_t dup;
        int r;

        r = pc_parse_collection(body, size, &root, &items, &p, reason);
        if (r < 0)
                return r;

        size_t n = json_object_array_length(items);
        if (n > 0) {
                a.items = calloc(n, sizeof(LineItem));
                if (!a.items)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = parse_item(json_object_array_get_idx(items, i), i, &a.items[i], reason);
                if (r < 0)
                        return r;
                a.n++;
        }

        r = snapshot_merge_items(snap, a.items, a.n, &dup);
        if (r == -EEXIST) {
                *reason = reasonf("duplicate lineItemNumber %" PRIi64, dup);
                return r;
        }
        if (r < 0)
                return r;

        if (page) {
                *page = p;
                p = (PcPage) {};
        }
        return 0;
}

/* Every failure comes with a reason, even those that are not the body's fault. */
static const char *reason_for(int r) {
        return r == -ENOMEM ? "out of memory" : "invalid argument";
}

static int parse_page(const char *body, size_t size, Snapshot *snap, PcPage *page, const char **reason, bool fast) {
        const char *why = NULL;
        int r = fast ? provisioning_scan_page(body, size, snap, page) : -EAGAIN;
        if (r == -EAGAIN)
                r = parse_provisioning_page(body, size, snap, page, &why);
        if (reason)
                *reason = r < 0 ? (why ?: reason_for(r)) : NULL;
        return r;
}

int pc_parse_provisioning_page(const char *body, size_t size, Snapshot *snap, PcPage *page, const char **reason) {
        return parse_page(body, size, snap, page, reason, true);
}

int pc_parse_provisioning_page_full(const char *body, size_t size, Snapshot *snap, PcPage *page, const char **reason) {
        return parse_page(body, size, snap, page, reason, false);
}

static int error_field_to_string(json_object *v, char **ret) {
        const char *s;

        if (!v) {
                *ret = NULL;
                return 0;
        }
        if (json_object_is_type(v, json_type_int)) {
                *ret = strdup_printf("%" PRIi64, json_object_get_int64(v));
                return *ret ? 1 : -ENOMEM;
        }
        s = json_get_cstring(v);
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 1 : -ENOMEM;
}

int pc_parse_error(const char *body, size_t size, char **ret_code, char **ret_description) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_free_ char *code = NULL, *description = NULL;
        json_object *nested;
        const char *reason;
        int r;

        r = json_parse_body(body, size, false, &root, &reason);
        if (r < 0)
                return r == -ENOMEM || r == -E2BIG ? r : -EBADMSG;

        r = error_field_to_string(json_get(root, "code"), &code);
        if (r >= 0 && !code)
                r = error_field_to_string(json_get(root, "statusCode"), &code);
        if (r >= 0)
                r = error_field_to_string(json_get(root, "description"), &description);
        if (r >= 0 && !description)
                r = error_field_to_string(json_get(root, "message"), &description);

        nested = json_get(root, "error");
        if (r >= 0 && !code && !description && json_object_is_type(nested, json_type_object)) {
                r = error_field_to_string(json_get(nested, "code"), &code);
                if (r >= 0)
                        r = error_field_to_string(json_get(nested, "message"), &description);
        }
        if (r < 0)
                return r;
        if (!code && !description)
                return -EBADMSG;

        if (ret_code)
                *ret_code = TAKE_PTR(code);
        if (ret_description)
                *ret_description = TAKE_PTR(description);
        return 0;
}

void token_response_done(TokenResponse *t) {
        if (!t)
                return;
        erase_and_free_string(t->access_token);
        erase_and_free_string(t->refresh_token);
        free(t->error);
        free(t->error_description);
        free(t->error_codes);
        *t = (TokenResponse) {};
}

static bool token_is_valid(const char *s) {
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f)
                        return false;
        return true;
}

static int parse_expires_in(json_object *v, uint64_t *ret, const char **reason) {
        uint64_t sec;

        if (!v) {
                *reason = "expires_in is missing";
                return -EBADMSG;
        }
        if (json_object_is_type(v, json_type_int)) {
                int64_t i = json_object_get_int64(v);
                if (i < 1 || (uint64_t) i > TOKEN_EXPIRES_MAX_SEC) {
                        *reason = "expires_in is out of range";
                        return -EBADMSG;
                }
                sec = (uint64_t) i;
        } else if (json_object_is_type(v, json_type_double)) {
                double d = json_object_get_double(v);
                if (!isfinite(d) || d < 1 || d > (double) TOKEN_EXPIRES_MAX_SEC) {
                        *reason = "expires_in is out of range";
                        return -EBADMSG;
                }
                sec = (uint64_t) d;
        } else if (json_object_is_type(v, json_type_string)) {
                const char *s = json_get_cstring(v);
                size_t n = s ? strlen(s) : 0;
                if (n == 0 || n > 19 || strspn(s, "0123456789") != n) {
                        *reason = "expires_in is not a number";
                        return -EBADMSG;
                }
                sec = strtoull(s, NULL, 10);
                if (sec < 1 || sec > TOKEN_EXPIRES_MAX_SEC) {
                        *reason = "expires_in is out of range";
                        return -EBADMSG;
                }
        } else {
                *reason = "expires_in is not a number";
                return -EBADMSG;
        }
        *ret = sec * USEC_PER_SEC;
        return 0;
}

static int dup_optional_string(json_object *v, char **ret) {
        const char *s = json_get_cstring(v);
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int parse_token_response(const char *body, size_t size, TokenResponse *t, const char **reason) {
        _cleanup_(json_object_wipe_putp) json_object *root = NULL;
        _cleanup_(token_response_done) TokenResponse tr = {};
        const char *s;
        json_object *v;
        int r;

        r = json_parse_body(body, size, true, &root, reason);
        if (r < 0)
                return r;

        v = json_get(root, "error");
        if (v) {
                s = json_get_cstring(v);
                if (isempty(s)) {
                        *reason = "error is not a non-empty string";
                        return -EBADMSG;
                }
                tr.error = strdup(s);
                if (!tr.error)
                        return -ENOMEM;
                r = dup_optional_string(json_get(root, "error_description"), &tr.error_description);
                if (r < 0)
                        return r;
                /* Entra's error_codes: numbers that say more than error does; others are ignored */
                json_object *codes = json_get(root, "error_codes");
                size_t n = json_object_is_type(codes, json_type_array) ? json_object_array_length(codes) : 0;
                if (n > 16)
                        n = 16;
                if (n > 0 && !(tr.error_codes = calloc(n, sizeof *tr.error_codes)))
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        int64_t c;
                        if (json_get_int64(json_object_array_get_idx(codes, i), &c) >= 0)
                                tr.error_codes[tr.n_error_codes++] = c;
                }
                goto done;
        }

        v = json_get(root, "access_token");
        if (!v) {
                *reason = "access_token is missing";
                return -EBADMSG;
        }
        s = json_get_cstring(v);
        if (!s) {
                *reason = "access_token is not a string";
                return -EBADMSG;
        }
        if (!token_is_valid(s)) {
                *reason = "access_token is empty or has invalid characters";
                return -EBADMSG;
        }
        tr.access_token = strdup(s);
        if (!tr.access_token)
                return -ENOMEM;

        v = json_get(root, "refresh_token");
        if (v) {
                s = json_get_cstring(v);
                if (!s) {
                        *reason = "refresh_token is not a string";
                        return -EBADMSG;
                }
                if (!token_is_valid(s)) {
                        *reason = "refresh_token is empty or has invalid characters";
                        return -EBADMSG;
                }
                tr.refresh_token = strdup(s);
                if (!tr.refresh_token)
                        return -ENOMEM;
        }

        r = parse_expires_in(json_get(root, "expires_in"), &tr.expires_in_usec, reason);
        if (r < 0)
                return r;
done:
        *t = tr;
        tr = (TokenResponse) {};
        return 0;
}

int pc_parse_token_response(const char *body, size_t size, TokenResponse *t, const char **reason) {
        const char *why = NULL;
        int r = parse_token_response(body, size, t, &why);
        if (reason)
                *reason = r < 0 ? (why ?: reason_for(r)) : NULL;
        return r;
}

/* RFC 3986's unreserved characters, by table: every poll's URL goes through it. */
static const bool unreserved[256] = {
        ['0' ... '9'] = true, ['a' ... 'z'] = true, ['A' ... 'Z'] = true,
        ['-'] = true,         ['.'] = true,         ['_'] = true,         ['~'] = true,
};

static bool char_is_unreserved(char c) {
        return unreserved[(unsigned char) c];
}

static void fputs_escaped(FILE *f, const char *s) {
        for (const char *p = s; *p; p++) {
                if (char_is_unreserved(*p))
                        fputc(*p, f);
                else
                        fprintf(f, "%%%02X", (unsigned char) *p);
        }
}

/* Closes f (which updates *buf and *size); the buffer on success, NULL (buffer wiped and freed)
 * on failure. */
static char *memstream_finish(FILE *f, char **buf, size_t *size) {
        bool failed = ferror(f);
        if (fclose(f) != 0 || failed) {
                *buf = erase_and_free(*buf, *size);
                return NULL;
        }
        return *buf;
}

char *pc_token_request_body(const char *grant_type, const char *refresh_token, const char *client_id,
                            const char *client_secret, const char *resource) {
        const struct {
                const char *name, *value;
        } fields[] = {
                { "grant_type", grant_type },       { "refresh_token", refresh_token },
                { "client_id", client_id },         { "client_secret", client_secret },
                { "resource", resource },
        };
        char *buf = NULL;
        size_t size = 0;
        bool first = true;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (!fields[i].value)
                        continue;
                fprintf(f, "%s%s=", first ? "" : "&", fields[i].name);
                fputs_escaped(f, fields[i].value);
                first = false;
        }
        return memstream_finish(f, &buf, &size);
}

static size_t escaped_size(const char *s) {
        size_t n = 0;
        for (const char *p = s; *p; p++)
                n += char_is_unreserved(*p) ? 1 : 3;
        return n;
}

static char *put_escaped(char *out, const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        for (const char *p = s; *p; p++) {
                if (char_is_unreserved(*p))
                        *out++ = *p;
                else {
                        *out++ = '%';
                        *out++ = hex[(unsigned char) *p >> 4];
                        *out++ = hex[(unsigned char) *p & 15];
                }
        }
        return out;
}

static char *put_string(char *out, const char *s, size_t n) {
        memcpy(out, s, n);
        return out + n;
}

/* Built once per poll, so without stdio. */
char *pc_provisioning_url(const char *endpoint, const char *api_version, const char *customer_id,
                          const char *order_id) {
        static const char customers[] = "/customers/", orders[] = "/orders/", tail[] = "/provisioningstatus";
        size_t n = strlen(endpoint);

        while (n > 0 && endpoint[n - 1] == '/')
                n--;
        size_t size = n + 2 + escaped_size(api_version) + sizeof customers - 1 + escaped_size(customer_id) +
                      sizeof orders - 1 + escaped_size(order_id) + sizeof tail;
        char *buf = malloc(size), *p = buf;
        if (!buf)
                return NULL;
        p = put_string(p, endpoint, n);
        p = put_string(p, "/v", 2);
        p = put_escaped(p, api_version);
        p = put_string(p, customers, sizeof customers - 1);
        p = put_escaped(p, customer_id);
        p = put_string(p, orders, sizeof orders - 1);
        p = put_escaped(p, order_id);
        p = put_string(p, tail, sizeof tail); /* with the NUL */
        return buf;
}
