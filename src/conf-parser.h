/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* The INI syntax of provwatch.conf (SPEC §2), line by line; what the sections and keys mean is
 * the caller's business. The rules are those of inih as Debian 12 builds it (libinih 55):
 *   - "#" or ";" first on a line (after white space) makes a comment;
 *   - "[NAME]" starts a section; after "]" only white space or a comment may follow;
 *   - "KEY = VALUE" or "KEY: VALUE" (the first "=" or ":"), both stripped of white space;
 *   - ";" after white space starts an inline comment, anywhere; "#" inside a value is literal;
 *   - a line holds at most 199 characters (inih's 200-byte line buffer on Debian);
 *   - a UTF-8 byte order mark before the first line and CR before LF are ignored.
 * Unlike inih, an indented line is a line like any other (never a continuation of the value
 * above), section names are not cut at 49 bytes, every bad line is reported (not just the
 * first), with its kind, and text after "]" is an error rather than ignored. */

#define CONF_LINE_MAX 199

typedef enum ConfSyntaxError {
        CONF_LINE_TOO_LONG,
        CONF_LINE_HAS_NUL,
        CONF_SECTION_UNCLOSED,
        CONF_SECTION_TRAILING_TEXT,
        CONF_NOT_AN_ASSIGNMENT,
        _CONF_SYNTAX_ERROR_MAX,
} ConfSyntaxError;

/* The message for a syntax error, e.g. "section header without closing \"]\"". */
const char *conf_syntax_error_to_string(ConfSyntaxError e);

/* Called in file order, with 1-based line numbers. A negative return stops the parse. */
typedef struct ConfParserOps {
        /* "[NAME]": NAME without surrounding white space; may be empty or hold spaces. */
        int (*section)(void *userdata, unsigned line, const char *name);
        /* KEY (may be empty) and VALUE (may be empty), stripped, the inline comment cut off. */
        int (*assignment)(void *userdata, unsigned line, const char *key, const char *value);
        /* A line that is none of the above; parsing goes on with the next one. */
        int (*syntax_error)(void *userdata, unsigned line, ConfSyntaxError error);
} ConfParserOps;

/* Parses size bytes of data (NUL bytes in it are reported, not taken as the end). Returns 0, or
 * the first negative return of a callback. */
int conf_parse(const char *data, size_t size, const ConfParserOps *ops, void *userdata);
