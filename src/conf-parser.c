/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "conf-parser.h"
#include "string-util.h"

static const char *const syntax_errors[_CONF_SYNTAX_ERROR_MAX] = {
        [CONF_LINE_TOO_LONG] = "line is longer than 199 characters; put long values such as tokens in files",
        [CONF_LINE_HAS_NUL] = "line contains a NUL byte",
        [CONF_SECTION_UNCLOSED] = "section header without closing \"]\"",
        [CONF_SECTION_TRAILING_TEXT] = "unexpected text after section header",
        [CONF_NOT_AN_ASSIGNMENT] = "expected \"KEY = VALUE\", a [section] header or a comment",
};

const char *conf_syntax_error_to_string(ConfSyntaxError e) {
        return e >= 0 && e < _CONF_SYNTAX_ERROR_MAX ? syntax_errors[e] : NULL;
}

/* inih's rule: stop at one of chars, or at ';' preceded by white space (an inline comment). */
static char *find_chars_or_comment(char *s, const char *chars) {
        bool was_space = false;
        while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
                was_space = isspace((unsigned char) *s);
                s++;
        }
        return s;
}

static int parse_section(char *line, unsigned n, const ConfParserOps *ops, void *userdata) {
        char *end = find_chars_or_comment(line + 1, "]");
        if (*end != ']')
                return ops->syntax_error(userdata, n, CONF_SECTION_UNCLOSED);
        *end = 0;
        const char *rest = end + 1 + strspn(end + 1, WHITESPACE);
        if (*rest && *rest != ';' && *rest != '#')
                return ops->syntax_error(userdata, n, CONF_SECTION_TRAILING_TEXT);
        return ops->section(userdata, n, strip(line + 1));
}

static int parse_assignment(char *line, unsigned n, const ConfParserOps *ops, void *userdata) {
        char *end = find_chars_or_comment(line, "=:");
        if (*end != '=' && *end != ':')
                return ops->syntax_error(userdata, n, CONF_NOT_AN_ASSIGNMENT);
        *end = 0;
        char *value = end + 1;
        *find_chars_or_comment(value, "") = 0;
        return ops->assignment(userdata, n, strip(line), strip(value));
}

int conf_parse(const char *data, size_t size, const ConfParserOps *ops, void *userdata) {
        char line[CONF_LINE_MAX + 1];
        unsigned n = 0;

        for (size_t pos = 0; pos < size;) {
                const char *s = data + pos;
                const char *nl = memchr(s, '\n', size - pos);
                size_t len = nl ? (size_t) (nl - s) : size - pos;
                int r = 0;

                pos += nl ? len + 1 : len;
                n++;

                if (n == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
                        s += 3;
                        len -= 3;
                }
                if (len > 0 && s[len - 1] == '\r')
                        len--;
                if (len > CONF_LINE_MAX)
                        r = ops->syntax_error(userdata, n, CONF_LINE_TOO_LONG);
                else if (memchr(s, 0, len))
                        r = ops->syntax_error(userdata, n, CONF_LINE_HAS_NUL);
                else {
                        memcpy(line, s, len);
                        line[len] = 0;
                        char *start = line + strspn(line, " \t\v\f\r");
                        if (*start == '[')
                                r = parse_section(start, n, ops, userdata);
                        else if (*start && *start != '#' && *start != ';')
                                r = parse_assignment(start, n, ops, userdata);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}
