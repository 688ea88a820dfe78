/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* What provwatch accepts as URLs and HTTP header fields (pure checks, no I/O). */

/* An http:// or https:// URL with a host (a name or [IPv6]) and an optional port 1..65535, of
 * printable ASCII without the characters RFC 3986 never allows. no_query: also without "?" or
 * "#" (a base URL that paths are appended to). */
bool url_is_valid(const char *url, bool no_query);

/* "https://user:pass@host/x" → "https://user:***@host/x", for messages and summaries. NULL on
 * ENOMEM. */
char *url_mask_password(const char *url);

/* A header name: one or more token characters (RFC 9110 §5.6.2). */
bool http_header_name_is_valid(const char *s);

/* A header value without CR, LF or other control characters (tab allowed): it cannot split a
 * header. */
bool http_header_value_is_valid(const char *s);
