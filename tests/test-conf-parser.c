/* SPDX-License-Identifier: MIT */
/* The INI syntax of SPEC §2: every rule of conf-parser.h, line numbers, and the limits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf-parser.h"
#include "util.h"

/* What the parser said, one line per callback. */
typedef struct Transcript {
        FILE *f;
        char *text;
        size_t size;
        unsigned stop_at; /* a callback on this line returns -ECANCELED */
} Transcript;

static int stop(Transcript *t, unsigned line) {
        return t->stop_at == line ? -ECANCELED : 0;
}

static int on_section(void *userdata, unsigned line, const char *name) {
        Transcript *t = userdata;
        fprintf(t->f, "%u [%s]\n", line, name);
        return stop(t, line);
}

static int on_assignment(void *userdata, unsigned line, const char *key, const char *value) {
        Transcript *t = userdata;
        fprintf(t->f, "%u <%s>=<%s>\n", line, key, value);
        return stop(t, line);
}

static int on_syntax_error(void *userdata, unsigned line, ConfSyntaxError error) {
        Transcript *t = userdata;
        fprintf(t->f, "%u error: %s\n", line, conf_syntax_error_to_string(error));
        return stop(t, line);
}

static const ConfParserOps ops = {
        .section = on_section,
        .assignment = on_assignment,
        .syntax_error = on_syntax_error,
};

/* Parses size bytes of data and returns the transcript (to be freed). */
static char *parse_n(const char *data, size_t size, unsigned stop_at, int expected_r) {
        Transcript t = { .stop_at = stop_at };
        t.f = open_memstream(&t.text, &t.size);
        assert_non_null(t.f);
        /* an exact-size copy, so that reading past the end is caught under valgrind and ASan */
        char *copy = malloc(size ? size : 1);
        assert_non_null(copy);
        memcpy(copy, data, size);
        assert_int_equal(conf_parse(copy, size, &ops, &t), expected_r);
        free(copy);
        assert_int_equal(fclose(t.f), 0);
        return t.text;
}

static void check(const char *data, const char *expected) {
        char *got = parse_n(data, strlen(data), 0, 0);
        if (strcmp(got, expected) != 0)
                fail_msg("input:\n%s\ngot:\n%s\nexpected:\n%s", data, got, expected);
        free(got);
}

static void test_empty(void **state) {
        check("", "");
        check("\n\n\n", "");
        check("   \n\t\n", "");
}

static void test_comments(void **state) {
        check("# a\n; b\n   # indented\n\t; tab\n#[x]\n;k=v\n", "");
        /* inline: ";" after white space, anywhere; "#" is literal inside a value */
        check("[s] ; comment\n[t] # comment\n[u];x\n", "1 [s]\n2 [t]\n3 [u]\n");
        check("k = v ; c\nk = v;c\nk = a#b\nk = x\t;tab\nk = ;all comment\nk =;x\n",
              "1 <k>=<v>\n2 <k>=<v;c>\n3 <k>=<a#b>\n4 <k>=<x>\n5 <k>=<>\n6 <k>=<;x>\n");
        /* a ";" comment before the "=" leaves no assignment */
        check("a ; b = c\n", "1 error: expected \"KEY = VALUE\", a [section] header or a comment\n");
}

static void test_sections(void **state) {
        check("[poll]\n[ webhook  ops ]\n[]\n[POLL]\n", "1 [poll]\n2 [webhook  ops]\n3 []\n4 [POLL]\n");
        /* not cut at 49 bytes as inih does */
        check("[0123456789012345678901234567890123456789012345678901234567890123456789]\n",
              "1 [0123456789012345678901234567890123456789012345678901234567890123456789]\n");
        check("[poll\n[poll] trailing\n[a ; b]\n[x]]\n",
              "1 error: section header without closing \"]\"\n"
              "2 error: unexpected text after section header\n"
              "3 error: section header without closing \"]\"\n"
              "4 error: unexpected text after section header\n");
        check("[a;b]\n", "1 [a;b]\n");
}

static void test_assignments(void **state) {
        check("k=v\nk = v\n  k  =  v  \nk: v\nk : a = b\nk = a: b\n",
              "1 <k>=<v>\n2 <k>=<v>\n3 <k>=<v>\n4 <k>=<v>\n5 <k>=<a = b>\n6 <k>=<a: b>\n");
        check("k =\nk=\n = v\n=\n:x\n", "1 <k>=<>\n2 <k>=<>\n3 <>=<v>\n4 <>=<>\n5 <>=<x>\n");
        check("two words = x y\tz\n", "1 <two words>=<x y\tz>\n");
        check("just words\n-\n", "1 error: expected \"KEY = VALUE\", a [section] header or a comment\n"
                                 "2 error: expected \"KEY = VALUE\", a [section] header or a comment\n");
        /* an indented line is a line of its own, never a continuation of the value above */
        check("[s]\nk = v\n  other = w\n\tcontinued\n",
              "1 [s]\n2 <k>=<v>\n3 <other>=<w>\n"
              "4 error: expected \"KEY = VALUE\", a [section] header or a comment\n");
}

static void test_line_ends(void **state) {
        check("\xef\xbb\xbf[s]\r\nk = v\r\n\r\nlast = x", "1 [s]\n2 <k>=<v>\n4 <last>=<x>\n");
        /* a byte order mark only counts before the first line */
        check("k = 1\n\xef\xbb\xbf[s]\n", "1 <k>=<1>\n2 error: expected \"KEY = VALUE\", a [section] header or a comment\n");
        /* CR elsewhere is white space, at the end of a value too */
        check("k = a\rb\r\r\n", "1 <k>=<a\rb>\n");
}

static void test_long_lines(void **state) {
        char buf[1024];

        /* 199 characters, and 199 with CRLF, with a BOM before (not counted) */
        memset(buf, 'x', sizeof buf);
        memcpy(buf, "\xef\xbb\xbfk = ", 7);
        buf[7 + 195] = '\r';
        buf[7 + 196] = '\n';
        char *got = parse_n(buf, 7 + 197, 0, 0);
        assert_int_equal(strlen(got), strlen("1 <k>=<>\n") + 195);
        free(got);

        /* 200 are too many; the next line is read normally */
        memset(buf, 'y', sizeof buf);
        memcpy(buf, "# ", 2);
        buf[200] = '\n';
        memcpy(buf + 201, "k = v\n", 6);
        got = parse_n(buf, 207, 0, 0);
        assert_string_equal(got, "1 error: line is longer than 199 characters; put long values such as tokens in "
                                 "files\n2 <k>=<v>\n");
        free(got);

        /* far longer, without a newline at the end */
        memset(buf, 'z', sizeof buf);
        got = parse_n(buf, sizeof buf, 0, 0);
        assert_string_equal(got, "1 error: line is longer than 199 characters; put long values such as tokens in "
                                 "files\n");
        free(got);
}

static void test_nul(void **state) {
        static const char data[] = "[s]\nk\0 = v\nk = v\n\0\n";
        char *got = parse_n(data, sizeof data - 1, 0, 0);
        assert_string_equal(got, "1 [s]\n2 error: line contains a NUL byte\n3 <k>=<v>\n4 error: line contains a NUL byte\n");
        free(got);
}

static void test_stop(void **state) {
        char *got = parse_n("[a]\nk = v\n[b]\nx\n", 15, 2, -ECANCELED);
        assert_string_equal(got, "1 [a]\n2 <k>=<v>\n");
        free(got);
        got = parse_n("[a]\nk = v\n[b]\nx\n", 15, 4, -ECANCELED);
        assert_string_equal(got, "1 [a]\n2 <k>=<v>\n3 [b]\n4 error: expected \"KEY = VALUE\", a [section] header or a comment\n");
        free(got);
}

static void test_error_strings(void **state) {
        for (ConfSyntaxError e = 0; e < _CONF_SYNTAX_ERROR_MAX; e++)
                assert_non_null(conf_syntax_error_to_string(e));
        assert_null(conf_syntax_error_to_string(_CONF_SYNTAX_ERROR_MAX));
        assert_null(conf_syntax_error_to_string((ConfSyntaxError) -1));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_comments),
                cmocka_unit_test(test_sections),
                cmocka_unit_test(test_assignments),
                cmocka_unit_test(test_line_ends),
                cmocka_unit_test(test_long_lines),
                cmocka_unit_test(test_nul),
                cmocka_unit_test(test_stop),
                cmocka_unit_test(test_error_strings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
