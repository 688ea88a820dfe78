/* SPDX-License-Identifier: MIT */
/* The direct JSON writer must print what json-c prints: every byte in a string, keys, nesting. */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json-writer.h"
#include "util.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static void check_string(const char *s) {
        json_object *o = json_object_new_string(s);
        JsonWriter w = {};
        json_writer_string(&w, s);
        _cleanup_free_ char *ours = json_writer_finish(&w);
        assert_non_null(ours);
        assert_string_equal(ours, json_object_to_json_string_ext(o, FLAGS));
        json_object_put(o);
}

static void test_every_byte(void **state) {
        char s[4];
        for (int c = 1; c < 256; c++) {
                snprintf(s, sizeof s, "a%cb", c);
                check_string(s);
        }
        check_string("");
        check_string("Pending Activation = café / \"quoted\" \\ \x01\x1f\x7f\t\n\r\b\f");
        check_string("€ 𝄞 Ünïcödé");
}

/* Strings are scanned 8 bytes at a time: every byte value at every position of a word, and
 * lengths around the word size, with the rest plain or made of bytes that are close calls
 * (0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xff). */
static void test_every_position(void **state) {
        static const char fill[] = {'x', ' ', '!', '[', ']', 0x7f, (char) 0x80, (char) 0xff};
        char s[40];
        for (size_t f = 0; f < sizeof fill; f++)
                for (size_t len = 1; len < 26; len++)
                        for (size_t pos = 0; pos < len; pos++)
                                for (int c = 1; c < 256; c += (c < 0x30 || c > 0x58 ? 1 : 7)) {
                                        memset(s, fill[f], len);
                                        s[len] = 0;
                                        s[pos] = (char) c;
                                        check_string(s);
                                }
}

static void test_integers(void **state) {
        static const int64_t values[] = { 0, 1, -1, 9, 10, -10, 99, 100, 12345, -987654321, INT32_MAX, INT32_MIN,
                                          INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1 };
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
                json_object *o = json_object_new_int64(values[i]);
                JsonWriter w = {};
                json_writer_int(&w, values[i]);
                _cleanup_free_ char *ours = json_writer_finish(&w);
                assert_non_null(ours);
                assert_string_equal(ours, json_object_to_json_string_ext(o, FLAGS));
                json_object_put(o);
        }
}

static void test_structure(void **state) {
        json_object *o = json_object_new_object(), *a = json_object_new_array(), *inner = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string("x"));
        json_object_object_add(o, "n", json_object_new_int64(INT64_MIN + 1));
        json_object_object_add(o, "nothing", NULL);
        json_object_object_add(o, "we\"ird\nkey", json_object_new_int64(7));
        json_object_array_add(a, json_object_new_int64(1));
        json_object_array_add(a, inner);
        json_object_object_add(inner, "q", json_object_new_object());
        json_object_array_add(a, json_object_new_array());
        json_object_object_add(o, "list", a);

        JsonWriter w = {};
        json_writer_open(&w, '{');
        json_writer_member_string(&w, "id", "x");
        json_writer_member_int(&w, "n", INT64_MIN + 1);
        json_writer_member_string(&w, "nothing", NULL);
        json_writer_key_string(&w, "we\"ird\nkey");
        json_writer_int(&w, 7);
        json_writer_key(&w, "list");
        json_writer_open(&w, '[');
        json_writer_next(&w);
        json_writer_int(&w, 1);
        json_writer_next(&w);
        json_writer_open(&w, '{');
        json_writer_key(&w, "q");
        json_writer_open(&w, '{');
        json_writer_close(&w, '}');
        json_writer_close(&w, '}');
        json_writer_next(&w);
        json_writer_open(&w, '[');
        json_writer_close(&w, ']');
        json_writer_close(&w, ']');
        json_writer_close(&w, '}');
        _cleanup_free_ char *ours = json_writer_finish(&w);
        assert_string_equal(ours, json_object_to_json_string_ext(o, FLAGS));
        json_object_put(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_byte),
                cmocka_unit_test(test_every_position),
                cmocka_unit_test(test_integers),
                cmocka_unit_test(test_structure),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
