/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

/* Partner Center wire formats: pure parsing of bodies, no I/O. */

#define PC_MAX_BODY (8u * 1024u * 1024u)

typedef struct PcPage {
        /* Link to the next page, if any: the uri (to be appended to {endpoint}/v{api-version}) and
         * its headers as "Key: value" lines, NULL-terminated. */
        char *next_uri;
        char **next_headers;
} PcPage;

void pc_page_done(PcPage *p);

/* Reasons (*reason below) are human readable, name the field, e.g. "items[2].status is not a
 * string", and need no freeing. They point either to a constant or to a thread-local buffer that
 * the next failing call of this module in the same thread overwrites: copy one to keep it. */

/* Parses one provisioningstatus page (a UTF-8 BOM is skipped; body need not be NUL-terminated)
 * and adds its line items to snap (which may already hold earlier pages). On failure returns
 * -EBADMSG (or -EEXIST for a line item number seen twice, also across pages, -E2BIG over
 * PC_MAX_BODY, -ENOMEM) with *reason set, and leaves snap and page untouched. On success *page
 * (may be NULL) is overwritten without being freed: next_uri is NULL on the last page, and
 * next_headers is non-NULL (maybe empty) whenever next_uri is. */
int pc_parse_provisioning_page(const char *body, size_t size, Snapshot *snap, PcPage *page, const char **reason);
/* The same without the fast path for plain answers (every body through json-c): what the fast path
 * must agree with, for the tests and the fuzz target that compare the two. */
int pc_parse_provisioning_page_full(const char *body, size_t size, Snapshot *snap, PcPage *page, const char **reason);

/* Any Partner Center collection page: the body parsed like every answer (a BOM is skipped, strict
 * JSON, at most PC_MAX_BODY), an "items" array required and links.next read into *page (may be NULL).
 * *ret_root owns *ret_items. -EBADMSG/-E2BIG with *reason, -ENOMEM. */
int pc_parse_collection(const char *body, size_t size, json_object **ret_root, json_object **ret_items, PcPage *page,
                        const char **reason);

/* Partner Center error body {"code": number|string, "description": "..."} or 429 body
 * {"statusCode":429,"message":"..."} (code "429", description = message), or the generic
 * {"error":{"code":…,"message":…}}. Fields absent → NULL. Returns -EBADMSG if not such JSON
 * (not an object, or none of these fields), -E2BIG over PC_MAX_BODY. Outputs (may be NULL) are
 * written only on success. */
int pc_parse_error(const char *body, size_t size, char **ret_code, char **ret_description);

typedef struct TokenResponse {
        char *access_token;
        char *refresh_token; /* NULL when not rotated */
        uint64_t expires_in_usec;
        char *error;             /* OAuth "error" when the answer is an error */
        char *error_description;
        int64_t *error_codes;    /* Entra's "error_codes" (at most 16), NULL when none */
        size_t n_error_codes;
} TokenResponse;

void token_response_done(TokenResponse *t);

/* Parses a token endpoint answer; expires_in may be a number or a numeric string (1s .. 10 years).
 * An OAuth error answer returns 0 with t->error set (access_token may then be absent). Malformed
 * → -EBADMSG with *reason (-E2BIG over PC_MAX_BODY). Tokens must be printable ASCII without
 * spaces, as they end up in HTTP headers. *t is overwritten (not freed) only on success. */
int pc_parse_token_response(const char *body, size_t size, TokenResponse *t, const char **reason);

/* application/x-www-form-urlencoded bodies for the token endpoint (values are escaped, every
 * byte but RFC 3986 unreserved ones as %XX); a NULL value leaves its field out. NULL on ENOMEM. */
char *pc_token_request_body(const char *grant_type, const char *refresh_token, const char *client_id,
                            const char *client_secret, const char *resource);

/* {endpoint}/v{api}/customers/{c}/orders/{o}/provisioningstatus, ids URL-escaped; trailing
 * slashes of endpoint are dropped. NULL on ENOMEM. */
char *pc_provisioning_url(const char *endpoint, const char *api_version, const char *customer_id,
                          const char *order_id);
