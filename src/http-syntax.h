/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* What provwatch accepts as URLs and HTTP header fields (pure checks, no I/O). */

/* An http:// or https:// URL with a host (a name or [IPv6]) and an optional port 1..65535, of
 * printable ASCII without the characters RFC 3986 never allows. no_query: also without "?" or
 * "#" (a base URL that paths are appended to). */
bool url_is_valid(const char *url, bool no_query);

/* A URL as logs, messages and summaries show it: whatever may be a credential masked, the rest kept
 * so that the URL can still be recognized. The password of the user information becomes "***"; a
 * user name or path segment that looks like a token (long, letters mixed with digits, or mixed
 * case) "..."; the query "?..." and the fragment "#...". The host stays. For instance
 *   https://user:pass@host/x                            → https://user:***@host/x
 *   https://hooks.slack.com/services/T0AB12/B0CD34/Xyz... → https://hooks.slack.com/services/.../.../...
 *   https://h.logic.azure.com:443/workflows/0123abcd.../triggers/manual/paths/invoke?api-version=1&sig=...
 *                          → https://h.logic.azure.com:443/workflows/.../triggers/manual/paths/invoke?...
 * Also for text that is not a URL at all. NULL on ENOMEM. */
char *url_mask(const char *url);

/* A header name: one or more token characters (RFC 9110 §5.6.2). */
bool http_header_name_is_valid(const char *s);

/* A header value without CR, LF or other control characters (tab allowed): it cannot split a
 * header. */
bool http_header_value_is_valid(const char *s);
